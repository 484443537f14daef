"""Peak host memory of a rehearsal environment (power_law.py) that holds its rehearsed samples as
indices, against the same environment with every phase's samples copied into one tensor (how
cl-bench built it before), measured in the same run, each in a fresh process.

Stream: 10-task Permuted-MNIST (60,000 training images per task), the rehearsal schedules of
`conf/experiment/power_law_permuted_mnist.yaml`: `full` (every old sample at every phase, 2.7M
rehearsed images) and power law with a 60,000-image total budget. Each process builds the
scenario, then reads every phase's training set once through a DataLoader (batch 128, shuffled),
as training does; the copy baseline also materialises each phase as `torch.cat` of its samples.

    python benchmarks/rehearsal_memory.py                   # data from ../shared/data
    python benchmarks/rehearsal_memory.py --schedules full
Prints one JSON line per measurement and a ratio line per schedule (copies / indices).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCHEDULES = {"full": [], "power_law": ["scenario.schedule.total_budget=60000"]}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def build(schedule: str, data_root: str):
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.data import DataSource
    from cl_bench.registry import SCENARIOS

    overrides = ["scenario=power_law_rehearsal", "scenario.base.n_experiences=10",
                 f"scenario.schedule.kind={schedule}", "scenario.schedule.total_budget=null", *SCHEDULES[schedule]]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides).scenario
    SCENARIOS.check("power_law_rehearsal", cfg, "scenario")
    return SCENARIOS.build("power_law_rehearsal", cfg, DataSource(data_root, download=False), 0)


def copies(scenario):
    """Every phase as one tensor of its samples, held together, as the environment used to be built."""
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset

    datasets = []
    for e in scenario.experiences:
        x = torch.cat([e.x_train, *[scenario.experiences[i].x_train[idx] for i, idx in e.rehearsal]])
        y = torch.cat([e.y_train, *[scenario.experiences[i].y_train[idx] for i, idx in e.rehearsal]])
        datasets.append(_make_taskaware_tensor_classification_dataset(x, y, task_labels=e.task_label))
    return datasets


def measure(schedule: str, mode: str, data_root: str) -> dict:
    t0 = time.perf_counter()
    scenario = build(schedule, data_root)
    built_mb = peak_rss_mb()
    datasets = copies(scenario) if mode == "copies" else [e.dataset for e in scenario.benchmark.train_stream]
    samples = 0
    for dataset in datasets:
        for x, _, _ in torch.utils.data.DataLoader(dataset, batch_size=128, shuffle=True):
            samples += len(x)
    return {"schedule": schedule, "mode": mode, "samples_read": samples, "peak_rss_mb": round(peak_rss_mb()),
            "peak_rss_after_build_mb": round(built_mb), "seconds": round(time.perf_counter() - t0, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--schedules", default=",".join(SCHEDULES))
    parser.add_argument("--child", nargs=2, metavar=("SCHEDULE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.data_root)))
        return
    for schedule in args.schedules.split(","):
        if schedule not in SCHEDULES:
            sys.exit(f"rehearsal_memory: --schedules: unknown '{schedule}'; allowed: {', '.join(SCHEDULES)}")
        rows = {}
        for mode in ("indices", "copies"):  # one fresh process each: peak RSS is per process
            out = subprocess.run([sys.executable, __file__, "--data-root", args.data_root, "--child", schedule, mode],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"rehearsal_memory: {schedule}/{mode} failed:\n{out.stderr[-2000:]}")
            rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(rows[mode]), flush=True)
        assert rows["indices"]["samples_read"] == rows["copies"]["samples_read"]
        print(f"{schedule}: peak RSS copies / indices = {rows['copies']['peak_rss_mb'] / rows['indices']['peak_rss_mb']:.2f}x "
              f"({rows['copies']['peak_rss_mb']} MB -> {rows['indices']['peak_rss_mb']} MB), "
              f"time copies / indices = {rows['copies']['seconds'] / rows['indices']['seconds']:.2f}x", flush=True)


if __name__ == "__main__":
    main()
