"""A baseline's reference experiment run in plain Avalanche 0.6.0, outside cl-bench, on the same
MNIST files: for a row of baselines.md whose gap to its target the preset does not explain, this
separates "cl-bench differs from Avalanche" from "Avalanche 0.6.0 here does not reach the target".

Each experiment restates, in our code, what the continual-learning-baselines file does (the file
is named beside it), seeded as that repository's `set_seed` seeds, scored as its tests score
(Top1_Acc_Stream after the last experience: accuracy pooled over the whole test stream).

    python leaderboards/plain_avalanche.py generative_replay_smnist --seed 0 [--data ../shared/data] [--epochs N]

`--epochs N` replaces the reference's epochs per experience (generative replay: the solver's and the
generator's alike, as cl-bench's `train.epochs=N` does), for a cheaper side-by-side check.

Prints Avalanche's progress (the reference's default generator logger), then, as the last line, one
JSON line: the pooled accuracy, the per-experience accuracies and their mean (what
cl-bench's `acc` is), the class order drawn, and the wall time.
"""
from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def mnist_without_writing(data_root: Path, scratch: Path) -> Path:
    """A root for torchvision's MNIST that links the files of `data_root`'s MNIST/raw: torchvision
    extracts archives next to themselves, and the shared data folder must stay as it is."""
    raw = scratch / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for file in sorted((Path(data_root) / "MNIST" / "raw").iterdir()):
        (raw / file.name).symlink_to(file.resolve())
    return scratch


def generative_replay_smnist(data_root: Path, device: str, epochs: int = 10):
    """experiments/split_mnist/generative_replay.py (commit 4900462): Avalanche's GenerativeReplay
    with its default MlpVAE generator; solver MLP 400-400 ReLU, Adam lr 0.001, batch 16, 10 epochs,
    100 generated samples a batch, evaluation batch 128. SplitMNIST gets no seed: its class order
    comes from torch's global generator, seeded just before."""
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.models import SimpleMLP
    from avalanche.training import GenerativeReplay

    with tempfile.TemporaryDirectory() as scratch:  # the datasets are read into memory here
        bench = SplitMNIST(5, return_task_id=False, dataset_root=mnist_without_writing(data_root, Path(scratch)))
    # SimpleMLP is the reference's MLP (Linear-ReLU-Dropout blocks, a linear head) with dropout 0
    model = SimpleMLP(num_classes=10, hidden_size=400, hidden_layers=2, drop_rate=0.0)
    strategy = GenerativeReplay(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.001),
        criterion=torch.nn.CrossEntropyLoss(), train_mb_size=16, train_epochs=epochs, eval_mb_size=128,
        replay_size=100, device=device, evaluator=stream_and_experience_accuracy())
    return bench, strategy


def stream_and_experience_accuracy():
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():  # "no loggers": on purpose, the metrics are returned, not logged
        warnings.simplefilter("ignore", UserWarning)
        return EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[])


EXPERIMENTS = {"generative_replay_smnist": generative_replay_smnist}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, help="instead of the reference's epochs per experience")
    args = parser.parse_args()

    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    start = time.perf_counter()
    seed_everything(args.seed)
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    bench, strategy = EXPERIMENTS[args.experiment](args.data, args.device, **extra)
    for experience in bench.train_stream:
        strategy.train(experience)
    metrics = strategy.eval(bench.test_stream)
    per_experience = [metrics[f"Top1_Acc_Exp/eval_phase/test_stream/Task000/Exp{i:03d}"]
                      for i in range(len(bench.test_stream))]
    print(json.dumps({
        "experiment": args.experiment, "seed": args.seed, "epochs": strategy.train_epochs,
        "pooled_acc": metrics["Top1_Acc_Stream/eval_phase/test_stream/Task000"],
        "per_experience_acc": per_experience, "mean_acc": sum(per_experience) / len(per_experience),
        "class_order": list(bench.classes_order), "seconds": round(time.perf_counter() - start),
    }))


if __name__ == "__main__":
    main()
