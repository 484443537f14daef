"""`logger=csv`: plain files beside results.json for spreadsheet and pandas users:
task_end.csv (experience, task, accuracy) and summary.csv (metric, value). The continual curves
are always in curves.csv."""
from __future__ import annotations

import csv

from cl_bench.registry import register_logger
from cl_bench.tracking.base import RunInfo, Tracker


class CSVTracker(Tracker):
    name = "csv"

    def start(self, config: dict, info: RunInfo) -> None:
        self.dir = info.output_dir
        with open(self.dir / "task_end.csv", "w", newline="") as f:
            csv.writer(f).writerow(["experience", "task", "accuracy"])

    def log_experience(self, experience, curve_rows, task_end) -> None:
        with open(self.dir / "task_end.csv", "a", newline="") as f:
            csv.writer(f).writerows([experience, task, f"{acc:.6g}"] for task, acc in enumerate(task_end))

    def log_summary(self, results, files) -> None:
        with open(self.dir / "summary.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["metric", "value"])
            w.writerows([k, "" if v is None else v] for k, v in results["metrics"].items()
                        if v is None or isinstance(v, (int, float)))


@register_logger("csv")
def build(cfg) -> CSVTracker:
    return CSVTracker()
