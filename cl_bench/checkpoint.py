"""Checkpoints at experience boundaries: a killed run, started again with the same command in the
same run folder, resumes after the last finished experience and ends exactly as an
uninterrupted run would (same acc_matrix, curves and metrics).

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

import os
import pickle
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = 1
# Keys whose value may change between the killed run and its resumption: where results are sent
# is not part of what is computed.
FREE_KEYS = ("logger",)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: unreadable, unsafe, or from another config."""


# --- RNGs ---------------------------------------------------------------------------------------

def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


# --- datasets as tensors (replay buffers) -------------------------------------------------------

def dataset_state(dataset) -> dict:
    """An Avalanche dataset of (x, y, task) samples as three tensors, in order. Inputs are taken
    as the dataset returns them: cl-bench's datasets are tensors without transforms."""
    if len(dataset) == 0:
        return {"x": None, "y": None, "t": None}
    # A private generator: a DataLoader draws its base seed even when it does not shuffle.
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset), generator=torch.Generator())
    x, y, t = next(iter(loader))[:3]
    return {"x": x, "y": y, "t": t}


def dataset_from_state(state: dict):
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset, concat_datasets

    if state["x"] is None:
        return concat_datasets([])
    x, y, t = (state[k].cpu() for k in ("x", "y", "t"))
    # One piece per run of equal task labels, each labelled by a constant as the experiences'
    # datasets are: Avalanche cannot concatenate a per-sample label list with a constant one.
    starts = [0, *(torch.nonzero(t[1:] != t[:-1]).flatten() + 1).tolist(), len(t)]
    return concat_datasets([
        _make_taskaware_tensor_classification_dataset(x[a:b], y[a:b], task_labels=int(t[a]))
        for a, b in zip(starts[:-1], starts[1:])
    ])


# --- files --------------------------------------------------------------------------------------

def save(path: Path, state: dict) -> int:
    """Write atomically (temp file, fsync, rename); returns the file's size in bytes."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.stat().st_size


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


def check_same_config(path: Path, saved: dict, current: dict) -> None:
    """Resuming under another config would splice two different runs into one result, and
    running another config in a finished run's folder would overwrite it."""
    def flat(d, prefix=""):
        out = {}
        for k, v in d.items():
            if prefix == "" and k in FREE_KEYS:
                continue
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    a, b = flat(saved), flat(current)
    # Shallow keys first: `seed` rather than the `eval.subset_seed` that follows it.
    differing = sorted((k for k in a.keys() | b.keys() if a.get(k, "<unset>") != b.get(k, "<unset>")),
                       key=lambda k: (k.count("."), k))
    if differing:
        k = differing[0]
        raise CheckpointError(
            f"{path} was written by a run with {k}={a.get(k, '<unset>')}, this run has {k}={b.get(k, '<unset>')}"
            f"{f' (and {len(differing) - 1} more differences)' if len(differing) > 1 else ''}: "
            f"run the same command to resume it, or use another run directory (hydra.run.dir)")


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
