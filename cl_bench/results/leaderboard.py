"""`cl-bench-leaderboard RUN_DIR... [--out DIR]`: leaderboards from results.json files found under
the given folders (Hydra sweep folders, single runs, or several).

Runs are grouped per scenario by their configuration without the seed, and aggregated over seeds
(mean ± std, number of seeds). Without --out one markdown table goes to stdout; with --out, per
scenario: <scenario>.md and <scenario>.csv (ACC, forgetting, min-ACC, WC-ACC, WF^10, wall time,
memory, the command that reproduces the row and the commit it ran on) and <scenario>_first_task.png
(accuracy on the first task against training iteration, one line per row: the stability gap side
by side). A diverged run makes its row read "diverged"; failed runs never enter a table.

    cl-bench-leaderboard multirun/2026-11-23/10-00-00 --out leaderboards/
    cl-bench-leaderboard DIR --metrics acc,min_acc --group-by scenario.name,scenario.angle_step,strategy.name
"""
from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from cl_bench.results.run_folder import CURVES, FINISHED, all_results, flatten, is_setting_key

DEFAULT_GROUP_BY = ("scenario.name", "strategy.name")
DEFAULT_METRICS = ("acc", "forgetting", "bwt")
OUT_METRICS = ("acc", "forgetting", "min_acc", "wc_acc", "wf10")
LABELS = {"acc": "ACC", "forgetting": "forgetting", "bwt": "BWT", "min_acc": "min-ACC", "wc_acc": "WC-ACC",
          "wf10": "WF10", "wf100": "WF100"}


def collect(dirs: list[Path]) -> list[dict]:
    """Completed and diverged runs (failed or unfinished ones have no numbers to show)."""
    runs = []
    for d in dirs:
        for folder, results in all_results(d):
            if results.get("status") in FINISHED:
                results["_dir"] = str(folder)
                runs.append(results)
    return runs


def config_value(results: dict, dotted: str):
    node = results["config"]
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def setting_of(results: dict) -> tuple:
    flat = flatten(results["config"])
    return tuple(sorted((k, json.dumps(v) if isinstance(v, list) else str(v)) for k, v in flat.items() if is_setting_key(k)))


def _cell(runs: list[dict], metric: str) -> str:
    diverged = sum(r["status"] == "diverged" for r in runs)
    if diverged:
        return f"diverged ({diverged}/{len(runs)})"
    values = [r["metrics"].get(metric) for r in runs]
    if any(v is None for v in values):
        return "n/a"
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {std:.1f}"


def _check_metrics(groups: dict, metrics) -> None:
    for key, rs in groups.items():
        ok = [r for r in rs if r["status"] == "completed"]
        missing = [m for m in metrics if ok and m not in ok[0]["metrics"]]
        if missing:
            raise ValueError(f"metric {', '.join(missing)} not in results of {'/'.join(map(str, key))}; "
                             f"available: {', '.join(ok[0]['metrics'])}")


def _order(metric):
    def key(item):
        k, rs = item
        values = [r["metrics"].get(metric) for r in rs if r["status"] == "completed"]
        values = [v for v in values if v is not None]
        return (str(k[0]), -statistics.fmean(values) if values else float("inf"), str(k))
    return key


def table(runs: list[dict], group_by=DEFAULT_GROUP_BY, metrics=DEFAULT_METRICS) -> str:
    """Rows grouped by config values, best mean of the first metric first within a scenario."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[tuple(str(config_value(r, key)) for key in group_by)].append(r)
    _check_metrics(groups, metrics)
    header = [k.split(".")[0] if k.endswith(".name") else k for k in group_by]
    lines = ["| " + " | ".join([*header, "seeds", *(f"{m} (%)" for m in metrics), "train time (s)"]) + " |",
             "|" + "---|" * (len(group_by) + len(metrics) + 2)]
    for key, rs in sorted(groups.items(), key=_order(metrics[0])):
        cells = [_cell(rs, m) for m in metrics]
        times = [r["train_time_s"] for r in rs if "train_time_s" in r]
        seconds = f"{statistics.fmean(times):.1f}" if times else "n/a"
        lines.append("| " + " | ".join([*key, str(len(rs)), *cells, seconds]) + " |")
    return "\n".join(lines)


# --- per-scenario leaderboards (--out) ----------------------------------------------------------

def reproduce_command(runs: list[dict]) -> str:
    """The sweep command for a row: one run's overrides with the seeds of all of them."""
    seeds = ",".join(str(s) for s in sorted({r["seed"] for r in runs}))
    overrides = runs[0].get("overrides")
    hydra_record = Path(runs[0]["_dir"]) / ".hydra" / "overrides.yaml"
    if overrides is None and hydra_record.is_file():  # Hydra keeps each job's overrides there too
        import yaml

        overrides = yaml.safe_load(hydra_record.read_text()) or []
    if overrides is None:  # a run made outside the CLI: spell out what it chose
        overrides = [f"{k.removesuffix('.name')}={v}" for k, v in setting_of(runs[0]) if k.endswith(".name")]
    kept = [o for o in overrides if not re.match(r"^\+{0,2}seed=", o)]
    return " ".join(["cl-bench", "-m", *kept, f"seed={seeds}"])


def _differing_keys(groups: dict) -> list[str]:
    """Config keys whose value differs between rows of one scenario: what the rows compare.
    A strategy's own hyperparameters count only when rows of that same strategy differ in them."""
    settings = [dict(s) for s in groups]
    keys = sorted({k for d in settings for k in d if k != "strategy.name"})

    def differs(key: str) -> bool:
        if key.startswith("strategy."):
            by_strategy = defaultdict(set)
            for d in settings:
                if key in d:
                    by_strategy[d.get("strategy.name")].add(d[key])
            return any(len(v) > 1 for v in by_strategy.values())
        return len({d.get(key) for d in settings}) > 1

    return [k for k in keys if differs(k)]


def scenario_tables(runs: list[dict], metrics=OUT_METRICS) -> dict[str, tuple[list[str], list[list[str]]]]:
    by_scenario: dict[str, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        by_scenario[r["scenario"]["name"]][setting_of(r)].append(r)
    out = {}
    for scenario, groups in sorted(by_scenario.items()):
        _check_metrics(groups, metrics)
        differing = _differing_keys(groups)
        header = ["strategy", "setting", "seeds", *(f"{LABELS.get(m, m)} (%)" for m in metrics),
                  "wall time (s)", "held memory (MB)", "peak RSS (MB)", "command", "commit"]
        rows = []
        for setting, rs in sorted(groups.items(), key=_order(metrics[0])):
            d = dict(setting)
            held = [r.get("held_memory_bytes", {}).get("total") for r in rs]
            rss = [r.get("peak_memory", {}).get("host_rss_mb") for r in rs]
            commits = sorted({(r.get("git_commit") or "unknown")[:10] for r in rs})
            rows.append([
                d.get("strategy.name", "?"), " ".join(f"{k}={d[k]}" for k in differing if k in d) or "-", str(len(rs)),
                *(_cell(rs, m) for m in metrics),
                f"{statistics.fmean(r['wall_time_s'] for r in rs):.1f}",
                f"{statistics.fmean(held) / 2**20:.2f}" if None not in held else "n/a",
                f"{max(rss):.0f}" if None not in rss else "n/a",
                reproduce_command(rs), ",".join(commits),
            ])
        out[scenario] = (header, rows, groups)
    return out


def first_task_curves(run: dict):
    """(iterations, accuracies) on task 0 from the run's curves.csv, or None without one."""
    path = Path(run["_dir"]) / CURVES
    if not path.is_file():
        return None
    points = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if row["task"] == "0":
                points[int(row["iteration"])] = float(row["accuracy"])
    return (sorted(points), [points[i] for i in sorted(points)]) if points else None


def plot_first_task(scenario: str, rows, groups, path: Path, order_by: str = OUT_METRICS[0]) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=150)
    drew = False
    for row, (setting, rs) in zip(rows, sorted(groups.items(), key=_order(order_by))):
        curves = [c for c in (first_task_curves(r) for r in rs if r["status"] == "completed") if c]
        if not curves:
            continue
        iters = curves[0][0]
        same = [c for c in curves if c[0] == iters]  # seeds of one setting share the schedule
        mean = 100 * np.mean([c[1] for c in same], axis=0)
        label = row[0] if row[1] == "-" else f"{row[0]} {row[1]}"
        ax.plot(iters, mean, lw=1.0, label=f"{label} ({len(same)} seeds)")
        drew = True
    if drew:
        ax.set(xlabel="training iteration (optimizer updates)", ylabel="accuracy on the first task (%)",
               ylim=(0, 101), title=f"{scenario}: first task, mean over seeds")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
        fig.tight_layout()
        fig.savefig(path)
    plt.close(fig)
    return drew


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def write_leaderboards(runs: list[dict], out: Path, metrics=OUT_METRICS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for scenario, (header, rows, groups) in scenario_tables(runs, metrics).items():
        stem = out / _safe(scenario)
        with open(stem.with_suffix(".csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        figure = stem.parent / f"{stem.name}_first_task.png"
        has_figure = plot_first_task(scenario, rows, groups, figure, order_by=metrics[0])
        md = [f"# {scenario}", "",
              "Mean ± std over seeds; columns are explained in leaderboards/README.md.", "",
              "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        md += ["| " + " | ".join(c if i != len(header) - 2 else f"`{c}`" for i, c in enumerate(row)) + " |" for row in rows]
        if has_figure:
            md += ["", f"![first-task accuracy]({figure.name})"]
        stem.with_suffix(".md").write_text("\n".join(md) + "\n")
        written += [stem.with_suffix(".md"), stem.with_suffix(".csv")] + ([figure] if has_figure else [])
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cl-bench-leaderboard", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="write <scenario>.md, .csv and _first_task.png here")
    parser.add_argument("--metrics", default=None, help="comma-separated keys of results' metrics "
                        f"(default: {','.join(DEFAULT_METRICS)}; with --out {','.join(OUT_METRICS)})")
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
        if args.out:
            for path in write_leaderboards(runs, args.out, args.metrics.split(",") if args.metrics else OUT_METRICS):
                print(path)
        else:
            print(table(runs, args.group_by.split(","), (args.metrics or ",".join(DEFAULT_METRICS)).split(",")))
    except ValueError as exc:
        print(f"cl-bench-leaderboard: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
