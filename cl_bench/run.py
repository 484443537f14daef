"""One run: build everything from the config, train experience by experience (continual
evaluation rides along as a plugin), evaluate on every experience's full test set after each,
checkpoint at each experience boundary, and write results.json (atomically), the curves, their
plot and the final weights into the run folder. A checkpoint in the run folder means an earlier
attempt was killed: the run resumes from it."""
from __future__ import annotations

import functools
import json
import os
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

from cl_bench import checkpoint
from cl_bench.checkpoint import CHECKPOINT_FILE
from cl_bench.evaluation.accuracy import evaluate_experiences
from cl_bench.evaluation.task_end import task_end_metrics
from cl_bench.divergence import Diverged, DivergenceGuard
from cl_bench.progress import ProgressBar
from cl_bench.registry import ADDONS, LOGGERS, MODELS, SCENARIOS, STRATEGIES
from cl_bench.results.files import append_jsonl, json_safe, write_json_atomic
from cl_bench.results.footprint import held_memory_bytes
from cl_bench.results.summary import format_summary
from cl_bench.tracking.base import SafeTrackers, run_info

RESULTS_FILE = "results.json"
PROGRESS_FILE = "progress.jsonl"
CURVES_FILE = "curves.csv"
PLOT_FILE = "curves.png"
ACCURACY_PLOT_FILE = "accuracy.png"
MODEL_FILE = "model.pt"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def use_deterministic_kernels() -> None:
    """`deterministic=true`: bitwise-repeatable GPU runs at some speed cost. CPU runs are
    deterministic already; on CUDA, cuBLAS needs a fixed workspace and cuDNN must not autotune."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


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


@functools.cache  # the commit of the code this process loaded, not of whatever HEAD is later
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


def epochs_per_experience(epochs, n_experiences: int) -> list[int]:
    """`train.epochs` is one number for every experience, or a list with one per experience."""
    values = list(epochs) if OmegaConf.is_list(epochs) else [epochs] * n_experiences
    if len(values) != n_experiences or any(int(e) < 1 for e in values):
        raise ValueError(f"train.epochs must be an int >= 1 or a list of {n_experiences} of them, got {epochs}")
    return [int(e) for e in values]


def build_continual_evaluation(cfg: DictConfig, scenario, device, output_dir: Path):
    if cfg.eval.name == "off":
        return None
    if cfg.eval.name != "continual":
        raise ValueError(f"eval must be continual or off, got '{cfg.eval.name}'")
    from cl_bench.evaluation.continual import ContinualEvaluationPlugin

    e = cfg.eval
    return ContinualEvaluationPlugin(
        scenario.evaluation_sets, device, samples_per_task=int(e.samples_per_task), period=int(e.period),
        include_unseen=bool(e.include_unseen), resample_each_eval=bool(e.resample_each_eval),
        batch_size=int(cfg.train.eval_batch_size), seed=int(e.subset_seed), curves_path=output_dir / CURVES_FILE,
    )


def finished_run(output_dir: Path, config: dict) -> dict | None:
    """The results of a run that already finished in this folder (completed or diverged) with
    this config: running the same command again, e.g. a sweep restarted after a kill, does not
    train it again. Another config there is refused rather than overwriting it."""
    path = output_dir / RESULTS_FILE
    if (output_dir / CHECKPOINT_FILE).exists() or not path.exists():
        return None
    try:
        previous = json.loads(path.read_text())
    except ValueError:
        return None  # never written completely: not a finished run
    if previous.get("status") not in ("completed", "diverged"):
        return None
    checkpoint.check_same_config(path, previous.get("config", {}), json_safe(config))
    return previous


def write_checkpoint(output_dir: Path, strategy, progress: dict, config: dict, started: float, writes: dict) -> None:
    t0 = time.perf_counter()
    progress = {**progress, "wall_time_s": progress["wall_time_s"] + t0 - started}
    size = checkpoint.save(output_dir / CHECKPOINT_FILE, checkpoint.capture(strategy, progress, config))
    writes.update(writes=writes["writes"] + 1, seconds=writes["seconds"] + time.perf_counter() - t0, bytes=size)


def resume(saved: dict, strategy, device, continual, trackers: SafeTrackers, output_dir: Path) -> dict:
    """Restore the strategy from a checkpoint and bring the run folder and the trackers back to
    that boundary: a kill after it may have left later lines, and a tracker starts a new run."""
    checkpoint.restore(strategy, saved, device)
    progress = saved["progress"]
    done = len(progress["acc_matrix"])
    progress["resumed_from"] = [*progress["resumed_from"], done]
    progress["commits"] = [*progress["commits"], git_commit()]
    if len(set(progress["commits"])) > 1:
        print(f"cl-bench: warning: this run was started at commit {progress['commits'][0]} and resumes at "
              f"{progress['commits'][-1]}; results.json lists the commit of every attempt", flush=True)
    curve_rows = continual.rows if continual else []
    for k, row in enumerate(progress["acc_matrix"]):
        append_jsonl(output_dir / PROGRESS_FILE, {"experience": k, "accuracy": row})
        trackers.log_experience(k, [r for r in curve_rows if r[1] == k], row)
    print(f"cl-bench: resuming {output_dir} after experience {done} of its checkpoint", flush=True)
    return progress


def _title(cfg: DictConfig) -> str:
    return f"{cfg.scenario.name} / {cfg.strategy.name} / seed {cfg.seed}"


def finish_continual_evaluation(cfg: DictConfig, continual, results: dict, output_dir: Path, all_seen: bool) -> None:
    from cl_bench.evaluation.plots import plot_curves
    from cl_bench.evaluation.stability import continual_metrics

    e = cfg.eval
    curves = continual.curves()
    # The stability metrics follow one task from its training on; test sets that are not one
    # per training experience (SCoLe's per-class sets) only get their curves recorded.
    if not all_seen:
        results["metrics"].update(continual_metrics(
            curves, windows=tuple(int(w) for w in e.windows), beta=int(e.lca_beta), eps=float(e.recovery_eps)))
    # The metrics depend on all of these: record them with the numbers.
    results["continual_evaluation"] = {
        "period": int(e.period), "samples_per_task": continual.sizes, "subset_seed": int(e.subset_seed),
        "resample_each_eval": bool(e.resample_each_eval), "include_unseen": bool(e.include_unseen),
        "windows": [int(w) for w in e.windows], "lca_beta": int(e.lca_beta), "recovery_eps": float(e.recovery_eps),
        "indexing": "after every period-th update, plus one before each experience's first update",
        "evaluations": len(curves.iteration), "eval_time_s": continual.seconds,
        "curves_file": CURVES_FILE,
    }
    if e.plot:
        plot_curves(curves, output_dir / PLOT_FILE, _title(cfg), all_seen=all_seen)


git_commit()  # at import: a long sweep keeps reporting the commit it started from


def run(cfg: DictConfig, output_dir: Path) -> dict:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = finished_run(output_dir, config)
    if previous is not None:
        print(f"cl-bench: {output_dir} already holds this run ({previous['status']}); "
              f"use another run directory to run it again", flush=True)
        return previous
    results: dict = {
        "status": "running",
        "config": config,
        "seed": int(cfg.seed),
        "strategy": cfg.strategy.name,
        "scenario": {"name": cfg.scenario.name},
        "acc_matrix": [],
        "versions": package_versions(),
        "git_commit": git_commit(),
    }
    device = torch.device("cpu")
    trackers = SafeTrackers([])
    progress = {"wall_time_s": 0.0}
    kernels = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    failed = True
    try:
        device = resolve_device(str(cfg.device))
        saved = None
        if (output_dir / CHECKPOINT_FILE).exists():  # a run killed in this folder: resume it
            saved = checkpoint.load(output_dir / CHECKPOINT_FILE, device)
            checkpoint.check_same_config(output_dir / CHECKPOINT_FILE, saved["config"], results["config"])
        trackers = SafeTrackers([LOGGERS.build(name, c) for name, c in (cfg.get("logger") or {}).items()])
        info = run_info(int(cfg.seed), output_dir)
        results["overrides"] = info.overrides  # with the commit, what reproduces this run
        trackers.start(results["config"], info)
        seed_everything(int(cfg.seed))
        if cfg.get("deterministic", False):
            use_deterministic_kernels()  # undone in `finally`: sweep jobs share the process
        scenario = SCENARIOS.build(cfg.scenario.name, cfg.scenario, cfg.data.root, int(cfg.seed))
        results["scenario"] = scenario.describe()
        model = MODELS.build(cfg.model.name, cfg.model, scenario.n_classes, scenario.input_shape, scenario.n_heads)
        optimizer = build_optimizer(cfg.optimizer, model.parameters())
        epochs = epochs_per_experience(cfg.train.epochs, scenario.n_experiences)
        continual = build_continual_evaluation(cfg, scenario, device, output_dir)
        addons = [ADDONS.build(name, addon_cfg, seed=int(cfg.seed)) for name, addon_cfg in cfg.get("addons", {}).items()]
        strategy = STRATEGIES.build(
            cfg.strategy.name, cfg.strategy, model, optimizer, torch.nn.CrossEntropyLoss(),
            train_mb_size=int(cfg.train.batch_size), train_epochs=epochs[0],
            eval_mb_size=int(cfg.train.eval_batch_size), device=device, evaluator=quiet_evaluator(),
            plugins=[*addons, *([continual] if continual else []), ProgressBar(scenario.n_experiences),
                     DivergenceGuard()],
        )
        train_stream = scenario.benchmark.train_stream
        from avalanche.training.supervised import JointTraining

        # Joint training is offline: one call on the whole stream, one row of results.
        offline = isinstance(strategy, JointTraining)
        steps = [list(train_stream)] if offline else list(train_stream)
        if continual:
            continual.all_tasks_seen = offline or scenario.evaluates_all_from_start
        progress = {"acc_matrix": [], "train_time_s": 0.0, "wall_time_s": 0.0, "resumed_from": [],
                    "commits": [git_commit()]}
        writes = results["checkpoints"] = {"writes": 0, "seconds": 0.0, "bytes": 0}  # by this process
        (output_dir / PROGRESS_FILE).unlink(missing_ok=True)  # rewritten from what this run keeps
        if saved is not None:
            progress = resume(saved, strategy, device, continual, trackers, output_dir)
        results["acc_matrix"] = progress["acc_matrix"]
        logged_rows = len(continual.rows) if continual else 0
        for k in range(len(progress["acc_matrix"]), len(steps)):
            strategy.train_epochs = epochs[k]
            t0 = time.perf_counter()
            strategy.train(steps[k], eval_streams=[])
            progress["train_time_s"] += time.perf_counter() - t0
            row = evaluate_experiences(model, scenario.evaluation_sets, device, int(cfg.train.eval_batch_size))
            results["acc_matrix"].append(row)
            append_jsonl(output_dir / PROGRESS_FILE, {"experience": k, "accuracy": row})
            new_rows = continual.rows[logged_rows:] if continual else []
            logged_rows += len(new_rows)
            trackers.log_experience(k, new_rows, row)
            if k + 1 < len(steps):
                write_checkpoint(output_dir, strategy, progress, results["config"], started, writes)
        results["metrics"] = task_end_metrics(results["acc_matrix"])
        results["train_time_s"] = progress["train_time_s"]
        if progress["resumed_from"]:
            results["resumed_from"] = progress["resumed_from"]  # experiences done when each resumption began
            if len(set(progress["commits"])) > 1:  # code changed between attempts: say so with the numbers
                results["git_commits"] = progress["commits"]
        if continual:
            finish_continual_evaluation(cfg, continual, results, output_dir, scenario.evaluates_all_from_start)
        if scenario.evaluates_all_from_start:
            from cl_bench.evaluation.plots import plot_accuracy_over_experiences

            plot_accuracy_over_experiences(results["acc_matrix"], output_dir / ACCURACY_PLOT_FILE, _title(cfg))
        results["held_memory_bytes"] = held_memory_bytes(strategy)
        torch.save(model.state_dict(), output_dir / MODEL_FILE)
        finite = all(torch.isfinite(p).all() for p in model.parameters())  # the last step's loss was finite; its update may not be
        results["status"] = "completed" if finite else "diverged"
        trackers.log_summary(results, {"curves_plot": output_dir / PLOT_FILE, "results": output_dir / RESULTS_FILE})
        failed = False
    except Diverged as exc:
        # Not an error of the code or the config's form: a result ("this setting diverges").
        # No metrics: rows measured before the blow-up must not read as a finished run.
        results.update(status="diverged", diverged_at=exc.where, error=str(exc), metrics={})
        trackers.log_summary(results, {})
        failed = False
    except BaseException as exc:
        results["status"] = "failed"
        results["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        raise
    finally:
        results["wall_time_s"] = progress["wall_time_s"] + time.perf_counter() - started
        if not failed:  # a finished run (completed or diverged) is not resumed; a failed one can be
            (output_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        torch.use_deterministic_algorithms(kernels[0])
        torch.backends.cudnn.benchmark = kernels[1]
        results["peak_memory"] = peak_memory_mb(device)
        write_json_atomic(output_dir / RESULTS_FILE, results)
        trackers.finish(failed)
    if results["metrics"]:  # a run stopped by divergence has no table to show
        print(format_summary(results))
    return results
