"""Cost of continual (per-iteration) evaluation, against plain Avalanche and against bare forwards.

Job: Split-MNIST 5 x 2, MLP 784-400-400-10, SGD lr 0.01 momentum 0.9, batch 128, 1 epoch per
experience, replay memory 2000. Measured in one process and printed:

1. end to end, accuracy on the FULL test sets of all seen experiences after every update:
   cl-bench (eval.samples_per_task=-1) vs plain Avalanche 0.6.0 (`eval_every=1,
   peval_mode="iteration"`, eval_streams = the seen test experiences), plus the floor
   cl-bench's own training time with evaluation off + a bare forward over the same samples;
2. one evaluation of all 5 full test sets by the evaluator vs a bare `inference_mode` forward
   over the same tensors in the same batch size;
3. the default protocol (1000 samples per seen task) over training with evaluation off.

    python benchmarks/continual_eval_speed.py                 # all three (plain Avalanche ~8 min)
    python benchmarks/continual_eval_speed.py --skip-avalanche
    python benchmarks/continual_eval_speed.py --skip-avalanche --precision bf16   # everything in bf16 autocast
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

JOB = ["scenario=split_mnist", "data.download=false", "strategy=replay", "strategy.mem_size=2000",
       "model=mlp", "optimizer.lr=0.01", "optimizer.momentum=0.9", "train.epochs=1",
       "train.batch_size=128", "train.eval_batch_size=1024"]


def report(**fields):
    print(json.dumps(fields), flush=True)


def cl_bench_run(data_root: Path, device: str, out: Path, extra: list[str]) -> dict:
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR
    from cl_bench.run import run

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*JOB, f"data.root={data_root}", f"device={device}", *extra])
    t0 = time.perf_counter()
    results = run(cfg, out)
    results["seconds"] = time.perf_counter() - t0
    return results


def scenario_and_model(data_root: Path, device: str):
    from omegaconf import OmegaConf

    from cl_bench.data import DataSource
    from cl_bench.registry import MODELS, SCENARIOS

    scenario = SCENARIOS.build("split_mnist", OmegaConf.create({"n_experiences": 5}), DataSource(str(data_root), download=False), 0)
    model = MODELS.build("mlp", OmegaConf.create({"hidden_sizes": [400, 400]}), 10, scenario.input_shape, None)
    return scenario, model.to(device)


@torch.inference_mode()
def bare_forward(model, x: torch.Tensor, batch_size: int) -> None:
    for start in range(0, len(x), batch_size):
        model(x[start:start + batch_size])


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_forward_seconds(scenario, model, device: str, evaluations_per_exp: list[int], batch_size: int) -> float:
    """Time the forwards that per-iteration evaluation of the full seen test sets needs."""
    model.eval()
    total = 0.0
    for k, n_evals in enumerate(evaluations_per_exp):
        x = torch.cat([e.x_test for e in scenario.experiences[:k + 1]]).to(device)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(n_evals):
            bare_forward(model, x, batch_size)
        sync(device)
        total += time.perf_counter() - t0
    return total


def avalanche_periodic_eval(avalanche_root: Path, device: str) -> dict:
    from avalanche.benchmarks.classic import SplitMNIST
    from avalanche.evaluation.metrics import accuracy_metrics
    from avalanche.models import SimpleMLP
    from avalanche.training import Replay
    from avalanche.training.plugins import EvaluationPlugin

    torch.manual_seed(0)
    t0 = time.perf_counter()
    bench = SplitMNIST(5, seed=0, fixed_class_order=list(range(10)), dataset_root=avalanche_root)
    model = SimpleMLP(num_classes=10, hidden_size=400, hidden_layers=2, drop_rate=0.0)
    strategy = Replay(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
        criterion=torch.nn.CrossEntropyLoss(), mem_size=2000, train_mb_size=128, train_epochs=1,
        eval_mb_size=1024, device=device, eval_every=1, peval_mode="iteration",
        evaluator=EvaluationPlugin(accuracy_metrics(experience=True, stream=True), loggers=[]),
    )
    for k, exp in enumerate(bench.train_stream):
        strategy.train(exp, eval_streams=[bench.test_stream[:k + 1]])
    return {"seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-avalanche", action="store_true", help="skip the ~8 minute plain-Avalanche run")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    from cl_bench.run import autocast

    with autocast(args.precision, torch.device(args.device)):  # every forward here, Avalanche's too
        measure(args)


def measure(args) -> None:
    device = args.device
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        off = cl_bench_run(args.data_root, device, tmp / "off", ["eval=off", f"train.precision={args.precision}"])
        full = cl_bench_run(args.data_root, device, tmp / "full", ["eval.samples_per_task=-1", "eval.plot=false", f"train.precision={args.precision}"])
        default = cl_bench_run(args.data_root, device, tmp / "default", ["eval.plot=false", f"train.precision={args.precision}"])
        report(run="cl-bench eval=off", seconds=off["seconds"], train_s=off["train_time_s"], acc=off["metrics"]["acc"])
        report(run="cl-bench continual, full seen test sets", seconds=full["seconds"], train_s=full["train_time_s"],
               evaluator_s=full["continual_evaluation"]["eval_time_s"], evaluations=full["continual_evaluation"]["evaluations"])
        report(run="cl-bench continual, 1000 per task (default)", seconds=default["seconds"], train_s=default["train_time_s"],
               evaluator_s=default["continual_evaluation"]["eval_time_s"])

        # 1. the floor: training alone + the forwards the evaluations need
        scenario, model = scenario_and_model(args.data_root, device)
        updates = [-(-n // 128) for n in full["scenario"]["train_sizes"]]
        evaluations = [u + 1 for u in updates]  # after every update, plus one before the first
        assert sum(evaluations) == full["continual_evaluation"]["evaluations"]
        fwd = bare_forward_seconds(scenario, model, device, evaluations, 1024)
        floor = off["train_time_s"] + fwd
        report(run="bare forwards over the evaluated samples", seconds=fwd)
        print(f"[1] cl-bench full-stream continual eval, end to end: {full['seconds']:.1f} s; "
              f"floor (training {off['train_time_s']:.1f} s + bare forwards {fwd:.1f} s) = {floor:.1f} s; "
              f"ratio {full['seconds'] / floor:.2f}x (target <= 1.3x)")
        if not args.skip_avalanche:
            raw = args.data_root / "MNIST" / "raw"
            shutil.copytree(raw, tmp / "avalanche" / "MNIST" / "raw")  # torchvision extracts beside them
            avl = avalanche_periodic_eval(tmp / "avalanche", device)
            report(run="plain Avalanche eval_every=1 peval_mode=iteration", seconds=avl["seconds"])
            print(f"[1] plain Avalanche {avl['seconds']:.1f} s vs cl-bench {full['seconds']:.1f} s: "
                  f"cl-bench {avl['seconds'] / full['seconds']:.1f}x faster (target >= 6x)")

        # 2. one evaluation of everything: evaluator vs bare forward, same tensors, same batches
        from cl_bench.evaluation.continual import ContinualEvaluationPlugin

        plugin = ContinualEvaluationPlugin(scenario.experiences, torch.device(device), samples_per_task=-1,
                                           batch_size=1024, all_tasks_seen=True)
        reps = 30
        for _ in range(3):  # warm-up
            plugin.evaluate(model)
            bare_forward(model, plugin.x, 1024)
        timings = {"evaluator": [], "bare": []}
        for _ in range(reps):  # interleaved, so drift hits both alike
            sync(device); t0 = time.perf_counter(); plugin.evaluate(model).cpu(); timings["evaluator"].append(time.perf_counter() - t0)
            sync(device); t0 = time.perf_counter(); bare_forward(model, plugin.x, 1024); sync(device); timings["bare"].append(time.perf_counter() - t0)
        ev, bare = sorted(timings["evaluator"])[reps // 2], sorted(timings["bare"])[reps // 2]
        print(f"[2] one evaluation of {len(plugin.y)} samples: evaluator {1000 * ev:.1f} ms, bare forward "
              f"{1000 * bare:.1f} ms (medians of {reps}); ratio {ev / bare:.2f}x (target <= 1.25x)")

        # 3. the default protocol's overhead
        print(f"[3] default protocol (1000 per seen task, every update): {default['seconds']:.1f} s vs eval=off "
              f"{off['seconds']:.1f} s end to end = {default['seconds'] / off['seconds']:.2f}x; training loop "
              f"{default['train_time_s']:.1f} s vs {off['train_time_s']:.1f} s = "
              f"{default['train_time_s'] / off['train_time_s']:.2f}x")


if __name__ == "__main__":
    main()
