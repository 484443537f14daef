"""Adam's fused kernel (the `adam` preset's `fused: true`) against torch's for-loop Adam, in cl-bench
runs that differ in nothing else, one process, sides alternating so drift hits both alike.

Jobs: Permuted-MNIST, 2 tasks of 2,560 images, MLP 784-400-400-10, Adam lr 0.001, batch 128,
1 epoch, `eval=off`. MER (its YAML defaults: 5 inner passes of one optimizer step per sample over
the minibatch and 10 memory samples, so ~690 batch-1 steps per minibatch) and fine-tuning (one
batch-128 step per minibatch).

    python benchmarks/adam_kernel.py --repeats 3        # CPU, one thread, data from ../shared/data
Prints one JSON line per run and one ratio line per strategy (for-loop / fused seconds); the
accuracies show both kernels train alike (they differ by float rounding).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

JOB = ["scenario=permuted_mnist", "scenario.n_experiences=2", "scenario.train_per_experience=2560", "model=mlp",
       "optimizer=adam", "train.epochs=1", "train.batch_size=128", "eval=off", "logger=none", "data.download=false"]


def run(strategy: str, fused: bool, data_root: Path, seed: int, out: Path) -> dict:
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.run import run as run_cl_bench

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*JOB, f"strategy={strategy}", f"optimizer.fused={fused}",
                                                       f"data.root={data_root}", f"seed={seed}"])
    t0 = time.perf_counter()
    results = run_cl_bench(cfg, out)
    if results["status"] != "completed":
        sys.exit(f"adam_kernel: {strategy} ended {results['status']}: {results.get('error')}")
    return {"seconds": time.perf_counter() - t0, "acc": results["metrics"]["acc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; the median is compared")
    parser.add_argument("--strategies", default="mer,naive")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.data_root / "MNIST" / "raw").is_dir():
        sys.exit(f"adam_kernel: MNIST not found in {args.data_root / 'MNIST' / 'raw'}; pass --data-root")
    torch.set_num_threads(1)  # as the zoo's runs: one thread each

    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.strategies.split(","):
            times: dict[bool, list[float]] = {False: [], True: []}
            for i in range(args.repeats):
                for fused in (False, True):
                    r = run(name, fused, args.data_root, args.seed, Path(tmp) / f"{name}{i}{fused}")
                    times[fused].append(r["seconds"])
                    print(json.dumps({"strategy": name, "fused": fused, "repeat": i, **r}), flush=True)
            loop, fused = statistics.median(times[False]), statistics.median(times[True])
            lines.append(f"{name}: for-loop/fused = {loop / fused:.2f}x  (for-loop {loop:.1f} s, fused {fused:.1f} s, "
                         f"median of {args.repeats})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
