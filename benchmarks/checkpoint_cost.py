"""What checkpoints inside an experience cost, against a run without them, in one process.

Split-MNIST, ER (the default strategy), 1 epoch, batch 32 (375 updates per experience), continual
evaluation on. Settings, each run --repeats times, interleaved:
  no midway     the fetch log off (a patched MidwayCheckpoints) and no checkpoint inside experiences:
                the baseline, only boundary checkpoints, as before checkpoints inside experiences
  default       checkpoint.every_seconds=60 (the default)
  every N       checkpoint.every_updates=N for each N in --every
Printed per setting: checkpoint writes, the seconds spent writing them and logging the loader's
fetches (both measured inside the run, so they do not depend on the machine's run-to-run noise)
and their share of the baseline's training time, bytes per checkpoint, and the median training
seconds with their ratio to the baseline's (end to end, as noisy as the machine); and the time a
resumed run spends getting back to a checkpoint (fetching the batches again).

    python benchmarks/checkpoint_cost.py --data-root ../shared/data     # ~6 min on 2 CPU cores
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

JOB = ["scenario=split_mnist", "strategy=replay", "train.epochs=1", "train.batch_size=32", "logger=none", "device=cpu",
       "eval.plot=false"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from cl_bench.cli import CONFIG_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def one_run(overrides: list[str], fetch_log: bool) -> dict:
    from cl_bench import midway
    from cl_bench.run import run

    original = midway.MidwayCheckpoints.before_training_epoch
    if not fetch_log:
        midway.MidwayCheckpoints.before_training_epoch = lambda self, strategy, **kw: None
    try:
        with tempfile.TemporaryDirectory() as folder:
            results = run(compose(overrides), Path(folder) / "run")
    finally:
        midway.MidwayCheckpoints.before_training_epoch = original
    assert results["status"] == "completed", results.get("error")
    return {"train_s": results["train_time_s"], **results["checkpoints"], "acc_matrix": results["acc_matrix"]}


def resume_cost(overrides: list[str], kill_at: int, every: int) -> dict:
    """Seconds from a resumed run's start to its first update after the checkpoint, against the
    seconds the first run took from its start to the same update (the batches before it are
    fetched again, not trained)."""
    from cl_bench.divergence import DivergenceGuard
    from cl_bench.run import run

    class Stop(BaseException):
        pass

    marks: dict[int, float] = {}
    original = DivergenceGuard.before_backward

    def mark(self, strategy, **kwargs):
        marks.setdefault(strategy.clock.train_iterations, time.perf_counter())
        if strategy.clock.train_iterations == kill_at and stopping:
            raise Stop
        original(self, strategy, **kwargs)

    DivergenceGuard.before_backward = mark
    try:
        with tempfile.TemporaryDirectory() as folder:
            cfg = compose([*overrides, "checkpoint.every_seconds=null", f"checkpoint.every_updates={every}"])
            stopping, t0 = True, time.perf_counter()
            try:
                run(cfg, Path(folder) / "run")
            except Stop:
                pass
            first = {k: v - t0 for k, v in marks.items()}
            marks.clear()
            stopping, t0 = False, time.perf_counter()
            results = run(cfg, Path(folder) / "run")
            (at,) = results["resumed_at_update"]
            back = marks[at] - t0
    finally:
        DivergenceGuard.before_backward = original
    assert results["status"] == "completed" and at <= kill_at
    return {"resumed_at_update": at, "straight_s": first[at], "resume_to_checkpoint_s": back}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", default="100,25", help="checkpoint.every_updates values to time")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "output" / "checkpoint_cost.json")
    args = parser.parse_args()
    base = [*JOB, f"data.root={args.data_root}", "data.download=false"]
    settings = {"no midway": ([*base, "checkpoint.every_seconds=null"], False),
                "default (every 60 s)": (base, True)}
    for n in args.every.split(","):
        settings[f"every {n} updates"] = ([*base, "checkpoint.every_seconds=null", f"checkpoint.every_updates={n}"], True)
    runs = {name: [] for name in settings}
    for _ in range(args.repeats):
        for name, (overrides, fetch_log) in settings.items():
            runs[name].append(one_run(overrides, fetch_log))
            print(json.dumps({"setting": name, **{k: v for k, v in runs[name][-1].items() if k != "acc_matrix"}}), flush=True)
    reference = runs["no midway"][0]["acc_matrix"]
    assert all(r["acc_matrix"] == reference for rs in runs.values() for r in rs), "checkpoints changed the results"
    baseline = statistics.median(r["train_s"] for r in runs["no midway"])
    rows = []
    for name, rs in runs.items():
        train = statistics.median(r["train_s"] for r in rs)
        write_s = statistics.median(r["seconds"] for r in rs)
        log_s = statistics.median(r["fetch_log_s"] for r in rs)
        rows.append({"setting": name, "train_s": train, "ratio": train / baseline, "writes": rs[0]["writes"],
                     "write_s": write_s, "fetch_log_s": log_s, "share": (write_s + log_s) / baseline, "bytes": rs[0]["bytes"]})
    resume = resume_cost(base, kill_at=3 * 375 + 300, every=300)  # 300 updates into experience 4
    lines = ["| setting | checkpoint writes | writing s | fetch log s | (writing + log) / training | MB per checkpoint "
             "| train s (median) | vs no midway |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['setting']} | {r['writes']} | {r['write_s']:.2f} | {r['fetch_log_s']:.2f} | {100 * r['share']:.2f}% | "
              f"{r['bytes'] / 1e6:.2f} | {r['train_s']:.1f} | {r['ratio']:.2f}x |" for r in rows]
    lines.append(f"\nResuming at update {resume['resumed_at_update']} (inside experience 4): "
                 f"{resume['resume_to_checkpoint_s']:.1f} s from start to the next update, against "
                 f"{resume['straight_s']:.1f} s to train there from the start.")
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "resume": resume, "runs": {k: [{x: y for x, y in r.items() if x != "acc_matrix"}
                                                                                  for r in v] for k, v in runs.items()}}, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
