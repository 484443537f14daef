"""`cl-bench-leaderboard RUN_DIR...`: a markdown table, mean ± std over seeds, from results.json
files found under the given folders (a Hydra sweep folder, or several)."""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def collect(dirs: list[Path]) -> list[dict]:
    runs = []
    for d in dirs:
        for path in sorted(Path(d).rglob("results.json")):
            results = json.loads(path.read_text())
            if results.get("status") == "completed":  # failed or running runs never enter a table
                runs.append(results)
    return runs


def _cell(values: list[float]) -> str:
    if any(v is None for v in values):
        return "n/a"
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def table(runs: list[dict]) -> str:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[(r["scenario"]["name"], r["strategy"])].append(r)
    lines = ["| scenario | strategy | seeds | ACC (%) | forgetting (%) | BWT (%) | train time (s) |",
             "|---|---|---|---|---|---|---|"]
    for (scenario, strategy), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], -statistics.fmean(r["metrics"]["acc"] for r in kv[1]))):
        metric = lambda k: [r["metrics"][k] for r in rs]  # noqa: E731
        seconds = statistics.fmean(r["train_time_s"] for r in rs)
        lines.append(f"| {scenario} | {strategy} | {len(rs)} | {_cell(metric('acc'))} | "
                     f"{_cell(metric('forgetting'))} | {_cell(metric('bwt'))} | {seconds:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cl-bench-leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"cl-bench-leaderboard: error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = collect(args.dirs)
    if not runs:
        print(f"cl-bench-leaderboard: error: no completed results.json under {', '.join(map(str, args.dirs))}", file=sys.stderr)
        return 2
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
