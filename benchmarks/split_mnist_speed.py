"""Split-MNIST end to end: cl-bench against plain Avalanche 0.6.0 on the same job, one process.

Job: 5 x 2 classes, MLP 784-400-400-10, SGD lr 0.01 momentum 0.9, batch 128, 1 epoch per
experience, replay with 2000 memory (experience-balanced, Avalanche's default), evaluation on the
full test stream after every experience (task-end only: eval=off). Both sides are timed from data loading to the last
evaluation. The Avalanche side gets the least evaluator that still yields the accuracies (no
loggers, no loss metrics), so the ratio is not inflated by its progress bars.

    python benchmarks/split_mnist_speed.py                 # CPU, data from ../shared/data
    python benchmarks/split_mnist_speed.py --device cuda   # on a GPU machine
    python benchmarks/split_mnist_speed.py --precisions fp32,bf16 --repeats 3   # cl-bench in both, alternating
Prints one JSON line per measured run and a final ratio line (Avalanche time / cl-bench time), and
with two precisions the bf16 / fp32 ratio of cl-bench's times.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_cl_bench(data_root: Path, device: str, seed: int, out: Path, precision: str = "fp32") -> dict:
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.run import run

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "scenario=split_mnist", f"data.root={data_root}", "data.download=false",
            "strategy=replay", "strategy.mem_size=2000", "model=mlp", "optimizer=sgd",
            "optimizer.lr=0.01", "optimizer.momentum=0.9", "train.epochs=1", "train.batch_size=128",
            "train.eval_batch_size=1024", "eval=off", f"device={device}", f"seed={seed}",
            f"train.precision={precision}", "logger=none",
        ])
    t0 = time.perf_counter()
    results = run(cfg, out)
    return {"seconds": time.perf_counter() - t0, "acc": results["metrics"]["acc"]}


def run_avalanche(data_root: Path, device: str, seed: int) -> dict:
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.models import SimpleMLP
    from avalanche.training import Replay
    from avalanche.training.plugins import EvaluationPlugin

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    bench = SplitMNIST(5, seed=seed, fixed_class_order=list(range(10)), dataset_root=data_root)
    model = SimpleMLP(num_classes=10, hidden_size=400, hidden_layers=2, drop_rate=0.0)
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])
    strategy = Replay(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        criterion=torch.nn.CrossEntropyLoss(), mem_size=2000, train_mb_size=128, train_epochs=1,
        eval_mb_size=1024, device=device, evaluator=evaluator,
    )
    for exp in bench.train_stream:
        strategy.train(exp, eval_streams=[])
        metrics = strategy.eval(bench.test_stream)
    acc = next(v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream"))
    return {"seconds": time.perf_counter() - t0, "acc": acc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="runs per side; the median is compared")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precisions", default="fp32", help="cl-bench's train.precision values, comma-separated")
    args = parser.parse_args()
    precisions = args.precisions.split(",")

    raw = args.data_root / "MNIST" / "raw"
    if not raw.is_dir():
        sys.exit(f"split_mnist_speed: MNIST not found in {raw}; pass --data-root")
    with tempfile.TemporaryDirectory() as tmp:
        # torchvision (Avalanche's loader) extracts the archives next to them: give it a copy.
        avalanche_root = Path(tmp) / "avalanche"
        shutil.copytree(raw, avalanche_root / "MNIST" / "raw")
        sides = ["avalanche", *precisions]
        times: dict[str, list[float]] = {side: [] for side in sides}
        for i in range(args.repeats):
            for side in sides:  # alternate, so drift hits every side alike
                if side == "avalanche":
                    r = run_avalanche(avalanche_root, args.device, args.seed)
                else:
                    r = run_cl_bench(args.data_root, args.device, args.seed, Path(tmp) / f"run{i}_{side}", side)
                times[side].append(r["seconds"])
                print(json.dumps({"side": side if side == "avalanche" else f"cl_bench {side}", "repeat": i,
                                  "device": args.device, **r}), flush=True)
    a, c = statistics.median(times["avalanche"]), statistics.median(times[precisions[0]])
    print(f"ratio avalanche/cl-bench = {a / c:.2f}x  (avalanche {a:.1f} s, cl-bench {precisions[0]} {c:.1f} s, "
          f"median of {args.repeats}, device {args.device})")
    for other in precisions[1:]:
        o = statistics.median(times[other])
        print(f"cl-bench {other} / {precisions[0]} = {o / c:.2f}x  ({o:.1f} s vs {c:.1f} s, median of {args.repeats})")


if __name__ == "__main__":
    main()
