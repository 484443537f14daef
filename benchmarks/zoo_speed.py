"""Three representative zoo strategies (GEM, DER++, SI) in cl-bench against the same job in plain
Avalanche 0.6.0, one process, sides alternating so drift hits both alike.

Job: Split-MNIST 5 x 2 classes, MLP 784-400-400-10, SGD lr 0.01 momentum 0.9, batch 128, 1 epoch
per experience, task-end evaluation on the full test stream after every experience (cl-bench
`eval=off`; Avalanche with the least evaluator that yields stream accuracy). Hyperparameters:
GEM 256 patterns per experience, memory strength 0.5; DER++ 500 samples, alpha 0.1, beta 0.5;
SI lambda 1, eps 0.001, importance clip 0.001. Both sides are timed from data loading to the last evaluation.

    python benchmarks/zoo_speed.py --repeats 3           # CPU, data from ../shared/data
    python benchmarks/zoo_speed.py --device cuda         # on a GPU machine
Prints one JSON line per measured run and one ratio line per strategy (Avalanche / cl-bench).
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

JOBS = {
    "gem": (["strategy=gem", "strategy.patterns_per_experience=256", "strategy.memory_strength=0.5"],
            lambda avl, kw: avl.GEM(patterns_per_exp=256, memory_strength=0.5, **kw)),
    "der": (["strategy=der", "strategy.mem_size=500", "strategy.alpha=0.1", "strategy.beta=0.5"],
            lambda avl, kw: avl.DER(mem_size=500, alpha=0.1, beta=0.5, **kw)),
    # importance_clip 0.001 is Avalanche's hard-coded clip: the same penalty on both sides (without
    # it, cl-bench's SI, whose importances are not zero on CPU as Avalanche 0.6.0's are, diverges
    # at this learning rate and would stop early).
    "si": (["strategy=si", "strategy.si_lambda=1.0", "strategy.eps=0.001", "strategy.importance_clip=0.001"],
           lambda avl, kw: avl.SynapticIntelligence(si_lambda=1.0, eps=0.001, **kw)),
}


def run_cl_bench(name: str, data_root: Path, device: str, seed: int, out: Path) -> dict:
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.run import run

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "scenario=split_mnist", f"data.root={data_root}", "data.download=false", *JOBS[name][0],
            "model=mlp", "optimizer=sgd", "optimizer.lr=0.01", "optimizer.momentum=0.9", "train.epochs=1",
            "train.batch_size=128", "train.eval_batch_size=1024", "eval=off", "logger=none",
            f"device={device}", f"seed={seed}",
        ])
    t0 = time.perf_counter()
    results = run(cfg, out)
    if results["status"] != "completed":  # a shorter run is no timing to compare
        sys.exit(f"zoo_speed: cl-bench {name} ended {results['status']}: {results.get('error')}")
    return {"seconds": time.perf_counter() - t0, "acc": results["metrics"]["acc"]}


def run_avalanche(name: str, data_root: Path, device: str, seed: int) -> dict:
    import avalanche.training as avl
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.models import SimpleMLP
    from avalanche.training.plugins import EvaluationPlugin

    torch.manual_seed(seed)
    t0 = time.perf_counter()
    bench = SplitMNIST(5, seed=seed, fixed_class_order=list(range(10)), dataset_root=data_root)
    model = SimpleMLP(num_classes=10, hidden_size=400, hidden_layers=2, drop_rate=0.0)
    strategy = JOBS[name][1](avl, dict(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        criterion=torch.nn.CrossEntropyLoss(), train_mb_size=128, train_epochs=1, eval_mb_size=1024,
        device=device, evaluator=EvaluationPlugin(accuracy_metrics(stream=True), loggers=[])))
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
    parser.add_argument("--strategies", default=",".join(JOBS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    raw = args.data_root / "MNIST" / "raw"
    if not raw.is_dir():
        sys.exit(f"zoo_speed: MNIST not found in {raw}; pass --data-root")
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        avalanche_root = Path(tmp) / "avalanche"  # torchvision extracts next to the archives: a copy
        shutil.copytree(raw, avalanche_root / "MNIST" / "raw")
        for name in args.strategies.split(","):
            times: dict[str, list[float]] = {"avalanche": [], "cl_bench": []}
            for i in range(args.repeats):
                for side in ("avalanche", "cl_bench"):
                    r = (run_avalanche(name, avalanche_root, args.device, args.seed) if side == "avalanche"
                         else run_cl_bench(name, args.data_root, args.device, args.seed, Path(tmp) / f"{name}{i}"))
                    times[side].append(r["seconds"])
                    print(json.dumps({"strategy": name, "side": side, "repeat": i, "device": args.device, **r}), flush=True)
            a, c = statistics.median(times["avalanche"]), statistics.median(times["cl_bench"])
            lines.append(f"{name}: avalanche/cl-bench = {a / c:.2f}x  (avalanche {a:.1f} s, cl-bench {c:.1f} s, "
                         f"median of {args.repeats}, device {args.device})")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
