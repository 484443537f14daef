"""One run: build everything from the config, train experience by experience, evaluate on every
experience's full test set after each, and write results.json (atomically) into the run folder."""
from __future__ import annotations

import platform
import random
import resource
import subprocess
import time
import traceback
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from cl_bench.evaluation.accuracy import evaluate_experiences
from cl_bench.evaluation.task_end import task_end_metrics
from cl_bench.registry import MODELS, SCENARIOS, STRATEGIES
from cl_bench.results.files import append_jsonl, write_json_atomic
from cl_bench.results.summary import format_summary

RESULTS_FILE = "results.json"
PROGRESS_FILE = "progress.jsonl"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' requested but CUDA is not available; use device=auto or device=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got '{name}'") from None


def build_optimizer(cfg: DictConfig, params) -> torch.optim.Optimizer:
    from hydra.utils import instantiate

    return instantiate(cfg, params=params, _convert_="all")


def quiet_evaluator():
    """Avalanche's default evaluator computes and prints metrics every epoch; we evaluate
    ourselves, so the strategy gets an evaluator with no metrics and no loggers."""
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No loggers specified": intended
        return EvaluationPlugin(loggers=[])


def package_versions() -> dict:
    names = ("torch", "torchvision", "avalanche-lib", "hydra-core", "omegaconf", "cl-bench")
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = version(name)
        except Exception:
            out[name] = None
    return out


def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
    except Exception:
        return None


def peak_memory_mb(device: torch.device) -> dict:
    out = {"host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    if device.type == "cuda":
        out["cuda_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def run(cfg: DictConfig, output_dir: Path) -> dict:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {
        "status": "running",
        "config": OmegaConf.to_container(cfg, resolve=True),
        "seed": int(cfg.seed),
        "strategy": cfg.strategy.name,
        "scenario": {"name": cfg.scenario.name},
        "acc_matrix": [],
        "versions": package_versions(),
        "git_commit": git_commit(),
    }
    device = resolve_device(str(cfg.device))
    try:
        seed_everything(int(cfg.seed))
        scenario = SCENARIOS.build(cfg.scenario.name, cfg.scenario, cfg.data.root, int(cfg.seed))
        results["scenario"] = scenario.describe()
        model = MODELS.build(cfg.model.name, cfg.model, scenario.n_classes, scenario.input_shape, scenario.n_heads)
        optimizer = build_optimizer(cfg.optimizer, model.parameters())
        strategy = STRATEGIES.build(
            cfg.strategy.name, cfg.strategy, model, optimizer, torch.nn.CrossEntropyLoss(),
            train_mb_size=int(cfg.train.batch_size), train_epochs=int(cfg.train.epochs),
            eval_mb_size=int(cfg.train.eval_batch_size), device=device, evaluator=quiet_evaluator(),
        )
        train_stream = scenario.benchmark.train_stream
        from avalanche.training.supervised import JointTraining

        # Joint training is offline: one call on the whole stream, one row of results.
        steps = [list(train_stream)] if isinstance(strategy, JointTraining) else list(train_stream)
        train_time = 0.0
        for step in steps:
            t0 = time.perf_counter()
            strategy.train(step, eval_streams=[])
            train_time += time.perf_counter() - t0
            row = evaluate_experiences(model, scenario.experiences, device, int(cfg.train.eval_batch_size))
            results["acc_matrix"].append(row)
            append_jsonl(output_dir / PROGRESS_FILE, {"experience": len(results["acc_matrix"]) - 1, "accuracy": row})
        results["metrics"] = task_end_metrics(results["acc_matrix"])
        results["status"] = "completed" if np.isfinite(results["acc_matrix"][-1]).all() else "diverged"
        results["train_time_s"] = train_time
    except BaseException as exc:
        results["status"] = "failed"
        results["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise
    finally:
        results["wall_time_s"] = time.perf_counter() - started
        results["peak_memory"] = peak_memory_mb(device)
        write_json_atomic(output_dir / RESULTS_FILE, results)
    print(format_summary(results))
    return results
