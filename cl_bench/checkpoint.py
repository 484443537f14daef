"""Checkpoints: a killed run, started again with the same command in the same run folder, resumes
from its last checkpoint and ends exactly as an uninterrupted run would (same acc_matrix, curves
and metrics). One is written at every experience boundary (`checkpoint.pt`) and, inside an
experience, every `checkpoint.every_updates` updates / `checkpoint.every_seconds` seconds and on
preemption (`checkpoint_midway.pt`, cl_bench/midway.py says how training gets back to it).

A checkpoint holds the model, the optimizer, Avalanche's clock, every RNG, the run's progress
(task-end rows, times) and the state of each plugin and of the strategy itself. It is tensors
and plain containers only, read back with `torch.load(weights_only=True)`: a crafted file is
refused instead of running code. Writes are atomic, so a kill during a write keeps the previous
checkpoint.

Protocol, for strategies and plugins in this repo or in a plugin package: anything that keeps
state from one experience to the next implements `state_dict() -> dict` (tensors and plain
containers) and `load_state_dict(state)`. Tensors come back on the run's device.
"""
from __future__ import annotations

import pickle
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from cl_bench.errors import CheckpointError
from cl_bench.results.run_folder import CHECKPOINT, MIDWAY_CHECKPOINT, PROGRESS, append_jsonl, write_atomic

FORMAT = 1


# --- RNGs ---------------------------------------------------------------------------------------

def rng_state(cuda: bool = True) -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if cuda and torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --- files --------------------------------------------------------------------------------------

def save(path: Path, state: dict) -> int:
    """Write atomically; returns the file's size in bytes."""
    return write_atomic(path, lambda f: torch.save(state, f), binary=True)


def load(path: Path, device: torch.device) -> dict:
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol: the refusal below says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: refused: it holds more than tensors and plain containers ({first}); "
                              f"delete it to start the run over") from None
    except (RuntimeError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: unreadable checkpoint ({first}); delete it to start the run over") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cl-bench checkpoint of format {FORMAT}; delete it to start the run over")
    return state


# --- the strategy -------------------------------------------------------------------------------

def _plugin_key(i: int, plugin) -> str:
    return f"{i}:{type(plugin).__name__}"


def capture(strategy, progress: dict, config: dict) -> dict:
    clock = strategy.clock
    rng = rng_state()
    state = {
        "format": FORMAT,
        "config": config,
        "progress": progress,
        "model": strategy.model.state_dict(),
        # Avalanche's multi-task modules remember the task labels they were trained on outside
        # their state dict; LwF distils exactly those heads.
        "known_tasks": {name: sorted(m.known_train_tasks_labels) for name, m in strategy.model.named_modules()
                        if hasattr(m, "known_train_tasks_labels")},
        "optimizer": strategy.optimizer.state_dict(),
        "clock": {k: v for k, v in vars(clock).items() if isinstance(v, int)},
        "rng": rng,
        "strategy": strategy.state_dict() if hasattr(strategy, "state_dict") else None,
        "plugins": {_plugin_key(i, p): p.state_dict() for i, p in enumerate(strategy.plugins)
                    if hasattr(p, "state_dict")},
    }
    set_rng_state(rng)  # a state_dict that draws random numbers must not make this run differ from a resumed one
    return state


def restore(strategy, state: dict, device: torch.device) -> None:
    """Put a freshly built strategy back where the checkpointed one was at its boundary."""
    expected = {_plugin_key(i, p) for i, p in enumerate(strategy.plugins) if hasattr(p, "state_dict")}
    if expected != set(state["plugins"]):
        raise CheckpointError(f"checkpoint holds plugins {sorted(state['plugins'])}, this run builds {sorted(expected)}")
    # Model first, on its device: optimizer state is placed on its parameters' device, and
    # plugins that copy the model (LwF) must copy it there.
    strategy.model.to(device)
    strategy.model.load_state_dict(state["model"])
    modules = dict(strategy.model.named_modules())
    for name, labels in state["known_tasks"].items():
        modules[name].known_train_tasks_labels = set(labels)
    strategy.optimizer.load_state_dict(state["optimizer"])
    # Avalanche resets optimizer state the first time a strategy trains; a resumed strategy has
    # trained before, so it gets what Avalanche keeps after that first time.
    strategy.optimized_param_id = dict(strategy.model.named_parameters())
    for name, value in state["clock"].items():
        setattr(strategy.clock, name, value)
    if state["strategy"] is not None:
        strategy.load_state_dict(state["strategy"])
    for i, plugin in enumerate(strategy.plugins):
        key = _plugin_key(i, plugin)
        if key in state["plugins"]:
            plugin.load_state_dict(state["plugins"][key])
    set_rng_state(state["rng"])  # last: nothing above may draw from the restored streams


# --- the run folder ---------------------------------------------------------------------------

def write(output_dir: Path, strategy, progress: dict, config: dict, started: float, writes: dict) -> None:
    """Checkpoint at an experience boundary; `writes` counts this process's writes, seconds, bytes.
    The midway checkpoint of the experience just finished is behind it now."""
    t0 = time.perf_counter()
    progress = {**progress, "wall_time_s": progress["wall_time_s"] + t0 - started}
    size = save(Path(output_dir) / CHECKPOINT, capture(strategy, progress, config))
    (Path(output_dir) / MIDWAY_CHECKPOINT).unlink(missing_ok=True)
    writes.update(writes=writes["writes"] + 1, seconds=writes["seconds"] + time.perf_counter() - t0, bytes=size)


def write_midway(output_dir: Path, strategy, progress: dict, config: dict, started: float, writes: dict,
                 position: dict, experience_started: float) -> None:
    """Checkpoint inside an experience, at `position` (cl_bench/midway.py); the training time of
    the experience so far is in its progress."""
    t0 = time.perf_counter()
    progress = {**progress, "wall_time_s": progress["wall_time_s"] + t0 - started,
                "train_time_s": progress["train_time_s"] + t0 - experience_started}
    state = capture(strategy, progress, config)
    size = save(Path(output_dir) / MIDWAY_CHECKPOINT, {**position, "format": FORMAT, "config": config, "state": state})
    writes.update(writes=writes["writes"] + 1, seconds=writes["seconds"] + time.perf_counter() - t0, bytes=size)


def load_midway(output_dir: Path, device, boundary: dict | None) -> dict | None:
    """The midway checkpoint to resume at: the one written after `boundary` (a kill between a
    boundary write and the midway file's removal leaves an older one behind: it is dropped)."""
    path = Path(output_dir) / MIDWAY_CHECKPOINT
    if not path.exists():
        return None
    saved = load(path, device)
    done = 0 if boundary is None else len(boundary["progress"]["acc_matrix"])
    if len(saved["state"]["progress"]["acc_matrix"]) != done:
        path.unlink()
        return None
    return saved


def resume(boundary: dict | None, midway: dict | None, strategy, device, continual, trackers, output_dir: Path,
           commit: str | None) -> dict:
    """Restore the strategy from the boundary checkpoint (the midway one is loaded when training
    reaches it) and bring the run folder and the trackers back to that boundary: a kill after it
    may have left later lines, and a tracker that starts a new run gets the earlier rows again. Returns the run's progress (task-end
    rows, times, resumptions, commits), the midway checkpoint's when there is one."""
    if boundary is not None:
        restore(strategy, boundary, device)
    progress = (midway["state"] if midway is not None else boundary)["progress"]
    done = len(progress["acc_matrix"])
    clock = (midway["state"] if midway is not None else boundary)["clock"]
    progress["resumed_from"] = [*progress["resumed_from"], done]
    progress["resumed_at_update"] = [*progress.get("resumed_at_update", []), clock["train_iterations"]]
    progress["commits"] = [*progress["commits"], commit]
    if len(set(progress["commits"])) > 1:
        print(f"cl-bench: warning: this run was started at commit {progress['commits'][0]} and resumes at "
              f"{progress['commits'][-1]}; results.json lists the commit of every attempt", flush=True)
    curve_rows = continual.rows if continual else []
    for k, row in enumerate(progress["acc_matrix"]):
        append_jsonl(Path(output_dir) / PROGRESS, {"experience": k, "accuracy": row})
        trackers.log_history(k, [r for r in curve_rows if r[1] == k], row)
    where = f"update {clock['train_iterations']}, inside experience {done}" if midway is not None else f"experience {done}"
    print(f"cl-bench: resuming {output_dir} after {where} of its checkpoint", flush=True)
    return progress
