"""The run folder: what a run writes, what "finished" means, which config keys make a run's
identity, and how files are written so that a crash never leaves one that looks complete.
Every reader (resume, leaderboards, the sweep report, trackers) takes these from here.

    <run dir>/results.json    the run's record (status, config, metrics, provenance), atomic
              progress.jsonl  one line per finished experience
              curves.csv      continual-evaluation curves, appended at each experience end
              curves.png / accuracy.png / model.pt
              checkpoint.pt, checkpoint_midway.pt (until the run finishes)
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Callable

from cl_bench.errors import CheckpointError

RESULTS = "results.json"
PROGRESS = "progress.jsonl"
CURVES = "curves.csv"
LEARNING_RATES = "lr.csv"  # the learning rate of every update (cl_bench/schedules.py)
CURVES_PLOT = "curves.png"
ACCURACY_PLOT = "accuracy.png"
MODEL = "model.pt"
CHECKPOINT = "checkpoint.pt"  # at the last experience boundary
MIDWAY_CHECKPOINT = "checkpoint_midway.pt"  # inside the experience after it (cl_bench/midway.py)

# A finished run is not trained again; diverging is a result of its setting, not a failure.
FINISHED = ("completed", "diverged")

# Config keys that say where a run's results go, not what it computes: they may differ between a
# killed run and its resumption.
NOT_COMPUTED = ("logger", "checkpoint")
# Keys that say where or how a run executed, or which seed it drew: the seeds of one setting
# share everything else (leaderboard rows, W&B's `setting`). Dotted prefixes.
NOT_SETTING = (*NOT_COMPUTED, "seed", "data", "device", "eval.subset_seed", "train.eval_batch_size", "eval.plot")


def is_setting_key(dotted: str) -> bool:
    """Whether a config key (`strategy.mem_size`, or an override's `+logger`) is part of a setting."""
    key = dotted.lstrip("+~")
    return not key.startswith("hydra.") and not any(key == p or key.startswith(p + ".") for p in NOT_SETTING)


def flatten(config: dict, prefix: str = "") -> dict:
    """{"a.b": value} for every leaf of a nested config; lists stay values."""
    out = {}
    for k, v in config.items():
        out.update(flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def differing_keys(a: dict, b: dict, ignore=NOT_COMPUTED) -> list[tuple[str, object, object]]:
    """(key, value in a, value in b) where two configs differ, shallow keys first."""
    fa, fb = ({k: v for k, v in flatten(c).items() if k.split(".")[0] not in ignore} for c in (a, b))
    keys = sorted((k for k in fa.keys() | fb.keys() if fa.get(k, "<unset>") != fb.get(k, "<unset>")),
                  key=lambda k: (k.count("."), k))
    return [(k, fa.get(k, "<unset>"), fb.get(k, "<unset>")) for k in keys]


# --- writing ------------------------------------------------------------------------------------

def json_safe(value):
    """Strict JSON has no NaN or infinity: NaN becomes null, +-inf the strings "inf"/"-inf"
    (a config may hold -inf on purpose, e.g. a mask fill value)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_atomic(path: Path, write: Callable, binary: bool = False) -> int:
    """`write(file)` into a temp file in the same directory, fsync, then rename over `path`:
    readers see the old file or the complete new one, never half of one. Returns the size."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path.stat().st_size


def write_json_atomic(path: Path, payload: dict) -> None:
    def write(f):
        json.dump(json_safe(payload), f, indent=2, allow_nan=False)
        f.write("\n")

    write_atomic(path, write)


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(json_safe(record), allow_nan=False) + "\n")
        f.flush()


# --- reading ------------------------------------------------------------------------------------

def read_results(folder: Path) -> dict | None:
    """A folder's results.json, or None when there is none or it was never written completely."""
    path = Path(folder) / RESULTS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def all_results(root: Path):
    """(folder, results) for every results.json under root, in path order."""
    for path in sorted(Path(root).rglob(RESULTS)):
        results = read_results(path.parent)
        if results is not None:
            yield path.parent, results


def finished_results(folder: Path) -> dict | None:
    """The results of a run that finished in this folder (no checkpoint left, a finished status)."""
    folder = Path(folder)
    if (folder / CHECKPOINT).exists():
        return None
    results = read_results(folder)
    return results if results is not None and results.get("status") in FINISHED else None


def check_same_config(path: Path, saved: dict, current: dict) -> None:
    """Resuming under another config would splice two different runs into one result, and
    running another config in a finished run's folder would overwrite it."""
    differing = differing_keys(saved, current)  # shallow keys first: `seed`, not `eval.subset_seed`
    if differing:
        k, old, new = differing[0]
        raise CheckpointError(
            f"{path} was written by a run with {k}={old}, this run has {k}={new}"
            f"{f' (and {len(differing) - 1} more differences)' if len(differing) > 1 else ''}: "
            f"run the same command to resume it, or use another run directory (hydra.run.dir)")


def finished_run(folder: Path, config: dict) -> dict | None:
    """The results of a run that already finished in this folder with this config: running the
    same command again (a sweep restarted after a kill) does not train it again. Another config
    there is refused rather than overwriting it."""
    previous = finished_results(folder)
    if previous is not None:
        check_same_config(Path(folder) / RESULTS, previous.get("config", {}), json_safe(config))
    return previous
