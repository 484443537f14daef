"""`cl-bench-leaderboard RUN_DIR...`: a markdown table, mean ± std over seeds, from results.json
files found under the given folders (a Hydra sweep folder, or several).

    cl-bench-leaderboard multirun/2026-11-23/10-00-00
    cl-bench-leaderboard --metrics acc,min_acc,wc_acc,wf10 --group-by scenario.name,scenario.angle_step,strategy.name DIR
"""
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


DEFAULT_GROUP_BY = ("scenario.name", "strategy.name")
DEFAULT_METRICS = ("acc", "forgetting", "bwt")


def config_value(results: dict, dotted: str):
    node = results["config"]
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def table(runs: list[dict], group_by=DEFAULT_GROUP_BY, metrics=DEFAULT_METRICS) -> str:
    """Rows grouped by config values, best mean of the first metric first within a scenario."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[tuple(str(config_value(r, key)) for key in group_by)].append(r)
    for key, rs in groups.items():
        missing = [m for m in metrics if m not in rs[0]["metrics"]]
        if missing:
            raise ValueError(f"metric {', '.join(missing)} not in results of {'/'.join(key)}; "
                             f"available: {', '.join(rs[0]['metrics'])}")
    header = [k.split(".")[0] if k.endswith(".name") else k for k in group_by]
    lines = ["| " + " | ".join([*header, "seeds", *(f"{m} (%)" for m in metrics), "train time (s)"]) + " |",
             "|" + "---|" * (len(group_by) + len(metrics) + 2)]
    first = metrics[0]

    def order(item):
        key, rs = item
        values = [r["metrics"][first] for r in rs if r["metrics"][first] is not None]
        return (key[0], -statistics.fmean(values) if values else 0.0, key)

    for key, rs in sorted(groups.items(), key=order):
        cells = [_cell([r["metrics"][m] for r in rs]) for m in metrics]
        seconds = statistics.fmean(r["train_time_s"] for r in rs)
        lines.append("| " + " | ".join([*key, str(len(rs)), *cells, f"{seconds:.1f}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cl-bench-leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated keys of results' metrics")
    parser.add_argument("--group-by", default=",".join(DEFAULT_GROUP_BY), help="comma-separated config keys")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.dirs if not d.is_dir()]
    if missing:
        print(f"cl-bench-leaderboard: error: not a folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    runs = collect(args.dirs)
    if not runs:
        print(f"cl-bench-leaderboard: error: no completed results.json under {', '.join(map(str, args.dirs))}", file=sys.stderr)
        return 2
    try:
        print(table(runs, args.group_by.split(","), args.metrics.split(",")))
    except ValueError as exc:
        print(f"cl-bench-leaderboard: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
