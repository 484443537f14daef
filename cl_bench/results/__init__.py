"""Run outputs: results.json written atomically, per-experience progress as JSON lines."""
