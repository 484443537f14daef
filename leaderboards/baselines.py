"""leaderboards/baselines.md from the runs of the `baseline_*` presets: continual-learning-
baselines' target, ours (mean ± std over seeds), delta and verdict, per preset.

    python leaderboards/baselines.py RUN_DIR... > leaderboards/baselines.md

That repository scores the pooled accuracy over the whole test stream after the last experience
(`stream_acc` here; LFL: the lowest final per-task accuracy, which its test bounds), one seed,
and passes a run within 0.03 of the target (0.01 for a few rows); we report our mean over
experiences (`acc`) beside it.
"""
from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cl_bench.results.run_folder import all_results  # noqa: E402

# preset -> (target, what the target measures) from ContinualAI/continual-learning-baselines,
# tests/target_results.csv at commit 4900462 (2024-02-20).
TARGETS = {
    "baseline_si_smnist": (0.97, "stream"), "baseline_si_pmnist": (0.83, "stream"),
    "baseline_ewc_pmnist": (0.83, "stream"), "baseline_agem_pmnist": (0.81, "stream"),
    "baseline_gem_pmnist": (0.93, "stream"), "baseline_lwf_smnist": (0.23, "stream"),
    "baseline_gss_smnist": (0.78, "stream"), "baseline_gdumb_smnist": (0.97, "stream"),
    "baseline_rwalk_smnist": (0.99, "stream"), "baseline_lfl_pmnist": (0.88, "min_task"),
    "baseline_generative_replay_smnist": (0.75, "stream"), "baseline_online_replay_smnist": (0.92, "stream"),
    "baseline_mir_smnist": (0.87, "stream"), "baseline_mir_pmnist": (0.80, "stream"),
    "baseline_cope_smnist": (0.93, "stream"),
    # Rows for a GPU machine with the real datasets (not in ../shared/data); the tests run each
    # preset on fake files in the real format.
    "baseline_agem_scifar100": (0.54, "stream"), "baseline_gem_scifar100": (0.63, "stream"),
    "baseline_icarl_scifar100": (0.44, "stream"), "baseline_er_ace_scifar100": (0.28, "stream"),
    "baseline_er_ace_scifar10": (0.50, "stream"),
    "baseline_lwf_stinyimagenet": (0.44, "stream"), "baseline_mas_stinyimagenet": (0.40, "stream"),
    "baseline_packnet_stinyimagenet": (0.46, "stream"),
}

# What a run of the preset itself may override: which seed, where data lives, where it logs.
# A run that changes anything else is an experiment on the preset (the LwF factorial, a pixel
# check), not the preset, and stays out of its row.
PLAIN_OVERRIDES = ("+experiment", "seed", "logger", "data.root", "data.download")


def preset_of(results: dict) -> str | None:
    """The preset a run is a plain run of, else None."""
    overrides = results.get("overrides") or []
    if any(o.split("=", 1)[0] not in PLAIN_OVERRIDES for o in overrides):
        return None
    for override in overrides:
        if override.startswith("+experiment="):
            return override.split("=", 1)[1]
    return None


def score(results: dict, kind: str) -> float:
    last = results["acc_matrix"][-1]
    if kind == "min_task":
        return min(last)
    sizes = results["scenario"]["test_sizes"]
    return sum(a * n for a, n in zip(last, sizes)) / sum(sizes)


def fmt(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {std:.3f}"


def main(dirs: list[str]) -> None:
    runs = defaultdict(list)
    for d in dirs:
        for _, results in all_results(Path(d)):
            preset = preset_of(results)
            if preset in TARGETS and results.get("status") == "completed":
                runs[preset].append(results)
    print("| preset | target | ours (target's score) | delta | ours: mean over experiences | seeds | verdict | commit |")
    print("|---|---|---|---|---|---|---|---|")
    for preset, (target, kind) in TARGETS.items():
        rs = sorted(runs.get(preset, []), key=lambda r: r["seed"])
        if not rs:
            print(f"| {preset} | {target:.2f} | not run | | | 0 | | |")
            continue
        ours = [score(r, kind) for r in rs]
        delta = statistics.fmean(ours) - target
        verdict = "reproduced" if abs(delta) <= 0.03 else ("above target" if delta > 0 else "below target")
        commits = ",".join(sorted({(r.get("git_commit") or "?")[:10] for r in rs}))
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(f"| {preset} | {target:.2f} | {fmt(ours)} | {delta:+.3f} | {fmt([r['metrics']['acc'] for r in rs])} "
              f"| {seeds} | {verdict} | {commits} |")


if __name__ == "__main__":
    main(sys.argv[1:])
