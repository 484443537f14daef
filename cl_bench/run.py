"""One run: build everything from the config, train experience by experience (continual
evaluation rides along as a plugin), evaluate on every experience's full test set after each,
checkpoint at each experience boundary (and inside experiences, cl_bench/midway.py), and finish
with the metrics, curves, plot and weights.

`run()` is the wrapper (a finished run is not trained again; the results file is written whatever
happens, with the status, times and memory); `train_and_evaluate()` is the run itself, top to
bottom: build, train loop, finish. A checkpoint in the run folder means an earlier attempt was
killed: the run resumes from it (cl_bench/checkpoint.py).
"""
from __future__ import annotations

import math
import os
import random
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from cl_bench import checkpoint, preemption
from cl_bench.data import DataSource
from cl_bench.divergence import Diverged, DivergenceGuard
from cl_bench.errors import ConfigError
from cl_bench.evaluation import continual as continual_evaluation
from cl_bench.evaluation.accuracy import evaluate_experiences
from cl_bench.evaluation.task_end import task_end_metrics
from cl_bench.midway import MidwayCheckpoints
from cl_bench.progress import ProgressBar
from cl_bench.registry import ADDONS, LOGGERS, MODELS, SCENARIOS, STRATEGIES, check_components, check_midway, check_pairing
from cl_bench.results import run_folder as files
from cl_bench.results.footprint import held_memory_bytes
from cl_bench.results.provenance import git_commit, package_versions, peak_memory_mb
from cl_bench.results.summary import format_summary
from cl_bench.rules import check
from cl_bench.schedules import RULES as SCHEDULE_RULES
from cl_bench.schedules import LearningRateSchedule
from cl_bench.tracking.base import SafeTrackers, run_info


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
    """The device's form is validated with the config; here only whether CUDA is there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' requested but CUDA is not available; use device=auto or device=cpu")
    return torch.device(name)


def autocast(precision: str, device: torch.device):
    """`train.precision=bf16`: bfloat16 autocast around everything a strategy runs (forward, loss,
    its own penalties, evaluation); parameters, gradients and optimizer state stay fp32. Wrapping
    the whole `train` call covers every strategy without touching one. The cast cache is off: it
    lives as long as the autocast region, and this one spans many optimizer steps, so cached casts
    would be stale weights (measured: every experience after the first stuck at chance)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def fp32_output(module, inputs, output):
    """Forward hook under bf16: the model's outputs are fp32, so what strategies keep of them
    (stored logits, old-model targets, exemplar features) has the dtype it has in fp32 runs."""
    return output.float() if isinstance(output, torch.Tensor) and output.dtype == torch.bfloat16 else output


def build_optimizer(cfg: DictConfig, params) -> torch.optim.Optimizer:
    import inspect

    from hydra.utils import get_class, instantiate

    # A preset's keys outlive an `optimizer=` switch (an SGD preset's momentum on Adam): name the
    # key instead of letting the constructor fail as an internal error.
    accepted = inspect.signature(get_class(cfg._target_)).parameters
    for key in cfg:
        if key != "_target_" and key not in accepted:
            raise ConfigError(f"optimizer.{key} is not an argument of {cfg._target_}; remove it with ~optimizer.{key}")
    return instantiate(cfg, params=params, _convert_="all")


def quiet_evaluator():
    """Avalanche's default evaluator computes and prints metrics every epoch; we evaluate
    ourselves, so the strategy gets an evaluator with no metrics and no loggers."""
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "No loggers specified": intended
        return EvaluationPlugin(loggers=[])


def epochs_per_experience(epochs, n_experiences: int) -> list[int]:
    """`train.epochs` is one number for every experience, or a list with one per experience."""
    values = list(epochs) if OmegaConf.is_list(epochs) else [epochs] * n_experiences
    if len(values) != n_experiences or any(int(e) < 1 for e in values):
        raise ConfigError(f"train.epochs must be an int >= 1 or a list of {n_experiences} of them, got {epochs}")
    return [int(e) for e in values]


def stream_updates(scenario, epochs: list[int], batch_size: int, offline: bool) -> int:
    """Updates a plain loader makes over the stream (a `stream`-scope schedule's span)."""
    sizes = scenario.describe()["train_sizes"]
    if offline:
        return math.ceil(sum(sizes) / batch_size) * epochs[0]
    return sum(math.ceil(n / batch_size) * e for n, e in zip(sizes, epochs))


def evaluated_model(addons: dict, model: torch.nn.Module) -> torch.nn.Module:
    """What every evaluation classifies with: the trained model, or the one add-on's view of it
    that replaces it (an average of its weights, another classifier on its features)."""
    views = {name: addon for name, addon in addons.items() if hasattr(addon, "evaluated_model")}
    if len(views) > 1:
        raise ConfigError(f"addons {' and '.join(views)} each replace the evaluated model; keep one")
    return next(iter(views.values())).evaluated_model(model) if views else model


def title(cfg: DictConfig) -> str:
    return f"{cfg.scenario.name} / {cfg.strategy.name} / seed {cfg.seed}"


class Attempt:
    """This process's attempt at a run: whatever happens inside, results.json ends up written with
    the status (completed, diverged, failed with the error), times and peak memory, the trackers
    are closed, and the kernel flags a job changed are restored (sweep jobs share a process)."""

    def __init__(self, cfg: DictConfig, config: dict, output_dir: Path):
        self.output_dir = output_dir
        self.started = time.perf_counter()
        self.results: dict = {
            "status": "running", "config": config, "seed": int(cfg.seed), "strategy": cfg.strategy.name,
            "scenario": {"name": cfg.scenario.name}, "acc_matrix": [],
            "versions": package_versions(), "git_commit": git_commit(),
        }
        self.device = torch.device("cpu")
        self.trackers = SafeTrackers([])
        self.progress = {"wall_time_s": 0.0}  # replaced by the run's (or the checkpoint's) progress

    def __enter__(self) -> Attempt:
        self.kernels = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        results = self.results
        preempted = kind is not None and issubclass(kind, preemption.Preempted)
        failed = kind is not None and not issubclass(kind, (Diverged, preemption.Preempted))
        if preempted:  # checkpoint written: the same command resumes it
            results.update(status="preempted", error=str(exc))
        elif kind is not None and not failed:
            # Not an error of the code or the config's form: a result ("this setting diverges").
            # No metrics: rows measured before the blow-up must not read as a finished run.
            results.update(status="diverged", diverged_at=exc.where, error=str(exc), metrics={})
            self.trackers.log_summary(results, {})
        elif failed:
            results["status"] = "failed"
            results["error"] = "".join(traceback.format_exception_only(kind, exc)).strip()
        results["wall_time_s"] = self.progress["wall_time_s"] + time.perf_counter() - self.started
        if not failed and not preempted:  # a finished run (completed or diverged) is not resumed; a failed one can be
            # The midway one first: alone, without its boundary, it would be dropped and the run started over.
            (self.output_dir / files.MIDWAY_CHECKPOINT).unlink(missing_ok=True)
            (self.output_dir / files.CHECKPOINT).unlink(missing_ok=True)
        torch.use_deterministic_algorithms(self.kernels[0])
        torch.backends.cudnn.benchmark = self.kernels[1]
        results["peak_memory"] = peak_memory_mb(self.device)
        files.write_json_atomic(self.output_dir / files.RESULTS, results)
        self.trackers.finish(failed)
        return not failed and not preempted  # a divergence is handled; anything else propagates


def run(cfg: DictConfig, output_dir: Path) -> dict:
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config = OmegaConf.to_container(cfg, resolve=True)
    previous = files.finished_run(output_dir, config)
    if previous is not None:
        print(f"cl-bench: {output_dir} already holds this run ({previous['status']}); "
              f"use another run directory to run it again", flush=True)
        return previous
    try:
        with preemption.stop_on_signals(), Attempt(cfg, config, output_dir) as attempt:
            train_and_evaluate(cfg, output_dir, attempt)
    except preemption.Preempted as stop:
        print(f"cl-bench: {output_dir}: {stop}; the same command resumes it", flush=True)
        preemption.hand_over(stop.signum)
    if attempt.results["metrics"]:  # a run stopped by divergence has no table to show
        print(format_summary(attempt.results))
    if preemption.requested():  # arrived after the last update: the run finished first, then stops a sweep
        print(f"cl-bench: {output_dir}: {attempt.results['status']}; stopping for {preemption.signal_name()}", flush=True)
        preemption.hand_over(preemption.requested())
    return attempt.results


def train_and_evaluate(cfg: DictConfig, output_dir: Path, attempt: Attempt) -> None:
    results, seed = attempt.results, int(cfg.seed)
    # --- build ---
    check_components(cfg)
    if cfg.eval.name != "off":
        check(continual_evaluation.RULES, cfg.eval, "eval")
    check(SCHEDULE_RULES, cfg.schedule, "schedule")
    device = attempt.device = resolve_device(str(cfg.device))
    saved = None
    if (output_dir / files.CHECKPOINT).exists():  # a run killed in this folder: resume it
        saved = checkpoint.load(output_dir / files.CHECKPOINT, device)
        files.check_same_config(output_dir / files.CHECKPOINT, saved["config"], results["config"])
    midway = checkpoint.load_midway(output_dir, device, saved)
    if midway is not None:
        files.check_same_config(output_dir / files.MIDWAY_CHECKPOINT, midway["config"], results["config"])
    trackers = attempt.trackers = SafeTrackers([LOGGERS.build(n, c) for n, c in (cfg.get("logger") or {}).items()])
    latest = midway["state"] if midway is not None else saved
    if latest is not None:  # a tracker may continue the run it logged to before the kill
        trackers.resume(latest["progress"].get("trackers", {}))
    info = run_info(seed, output_dir)
    results["overrides"] = info.overrides  # with the commit, what reproduces this run
    trackers.start(results["config"], info)
    seed_everything(seed)
    if cfg.get("deterministic", False):
        use_deterministic_kernels()  # undone when the attempt ends: sweep jobs share the process
    scenario = SCENARIOS.build(cfg.scenario.name, cfg.scenario, DataSource(**cfg.data), seed)
    results["scenario"] = scenario.describe()
    method = STRATEGIES.entry(cfg.strategy.name)
    check_pairing(cfg.strategy.name, scenario.name, scenario.setting)
    check_midway(cfg.strategy.name, cfg.checkpoint.every_updates)
    model = MODELS.build(cfg.model.name, cfg.model, scenario.n_classes, scenario.input_shape, scenario.n_heads)
    if cfg.train.precision == "bf16":
        model.register_forward_hook(fp32_output)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    epochs = epochs_per_experience(cfg.train.epochs, scenario.n_experiences)
    eval_batch = int(cfg.train.eval_batch_size)
    continual = continual_evaluation.from_config(
        cfg.eval, scenario, device, eval_batch, output_dir / files.CURVES,
        all_tasks_seen=method.offline or scenario.evaluates_all_from_start)
    lr_schedule = LearningRateSchedule(cfg.schedule, stream_updates(scenario, epochs, int(cfg.train.batch_size), method.offline),
                                       output_dir / files.LEARNING_RATES)
    addons = {name: ADDONS.build(name, addon_cfg, seed=seed) for name, addon_cfg in cfg.get("addons", {}).items()}
    evaluated = evaluated_model(addons, model)
    if continual:
        continual.evaluated_model = evaluated
    writes = results["checkpoints"] = {"writes": 0, "seconds": 0.0, "bytes": 0}  # by this process
    midway_checkpoints = MidwayCheckpoints(
        cfg.checkpoint.every_updates, cfg.checkpoint.every_seconds, enabled=method.resume_midway, device=device,
        write=lambda strategy, position: checkpoint.write_midway(
            output_dir, strategy, attempt.progress, results["config"], attempt.started, writes, position, experience_started))
    strategy = method.builder(
        cfg.strategy, model, optimizer, torch.nn.CrossEntropyLoss(),
        train_mb_size=int(cfg.train.batch_size), train_epochs=epochs[0], eval_mb_size=eval_batch, device=device,
        evaluator=quiet_evaluator(),
        plugins=[lr_schedule, *addons.values(), *([continual] if continual else []), ProgressBar(scenario.n_experiences), DivergenceGuard(),
                 midway_checkpoints],  # last: it writes the state after every other plugin's update
    )
    train_stream = scenario.benchmark.train_stream
    # An offline method (joint training) trains once on the whole stream: one row of results.
    steps = [list(train_stream)] if method.offline else list(train_stream)

    # --- train, experience by experience ---
    progress = attempt.progress = {"acc_matrix": [], "train_time_s": 0.0, "wall_time_s": 0.0, "resumed_from": [],
                                   "commits": [git_commit()]}
    (output_dir / files.PROGRESS).unlink(missing_ok=True)  # rewritten from what this run keeps
    if saved is not None or midway is not None:
        progress = attempt.progress = checkpoint.resume(saved, midway, strategy, device, continual, trackers, output_dir,
                                                        git_commit())
        if midway is not None:
            midway_checkpoints.resume_from(midway)
    progress["trackers"] = trackers.state_dicts()  # kept in every checkpoint from here on
    results["acc_matrix"] = progress["acc_matrix"]
    logged_rows = len(continual.rows) if continual else 0
    logged_rates = len(lr_schedule.rows)  # a resumed run logged the earlier ones before it was killed
    trackers.log_history_rates(lr_schedule.rows[:logged_rates])  # again, to the trackers that started over
    for k in range(len(progress["acc_matrix"]), len(steps)):
        strategy.train_epochs = epochs[k]
        t0 = experience_started = time.perf_counter()
        with autocast(cfg.train.precision, device):
            strategy.train(steps[k], eval_streams=[])
        progress["train_time_s"] += time.perf_counter() - t0
        with autocast(cfg.train.precision, device):
            row = evaluate_experiences(evaluated, scenario.evaluation_sets, device, eval_batch)
        results["acc_matrix"].append(row)
        files.append_jsonl(output_dir / files.PROGRESS, {"experience": k, "accuracy": row})
        new_rows = continual.rows[logged_rows:] if continual else []
        logged_rows += len(new_rows)
        trackers.log_experience(k, new_rows, row)
        trackers.log_learning_rates(lr_schedule.rows[logged_rates:])
        logged_rates = len(lr_schedule.rows)
        if k + 1 < len(steps):
            checkpoint.write(output_dir, strategy, progress, results["config"], attempt.started, writes)
            preemption.stop_if_requested()

    # --- finish ---
    results["metrics"] = task_end_metrics(results["acc_matrix"], [len(e.y_test) for e in scenario.evaluation_sets])
    results["train_time_s"] = progress["train_time_s"]
    if progress["resumed_from"]:
        results["resumed_from"] = progress["resumed_from"]  # experiences done when each resumption began
        results["resumed_at_update"] = progress["resumed_at_update"]  # and updates
        if len(set(progress["commits"])) > 1:  # code changed between attempts: say so with the numbers
            results["git_commits"] = progress["commits"]
    if continual:
        metrics, protocol, curves = continual_evaluation.summarize(cfg.eval, continual,
                                                                   follows_tasks=not scenario.evaluates_all_from_start)
        results["metrics"].update(metrics)
        results["continual_evaluation"] = {**protocol, "curves_file": files.CURVES}  # the metrics depend on it
        if cfg.eval.plot:
            from cl_bench.evaluation.plots import plot_curves

            plot_curves(curves, output_dir / files.CURVES_PLOT, title(cfg), all_seen=scenario.evaluates_all_from_start,
                        learning_rates=lr_schedule.rows if lr_schedule.varies else None)
    if scenario.evaluates_all_from_start:
        from cl_bench.evaluation.plots import plot_accuracy_over_experiences

        plot_accuracy_over_experiences(results["acc_matrix"], output_dir / files.ACCURACY_PLOT, title(cfg))
    writes["fetch_log_s"] = midway_checkpoints.stopwatch.seconds  # what checkpoints inside experiences cost besides writes
    results["held_memory_bytes"] = held_memory_bytes(strategy)
    torch.save(model.state_dict(), output_dir / files.MODEL)
    results["status"] = "completed"
    trackers.log_summary(results, {"curves_plot": output_dir / files.CURVES_PLOT, "results": output_dir / files.RESULTS})
