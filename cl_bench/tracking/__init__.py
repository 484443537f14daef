"""Experiment trackers (`logger=...`): each receives the resolved config, the continual-evaluation
curves as they arrive, task-end accuracies and the final summary. A tracker that fails never
fails the run: it says so in one line and stops tracking."""
