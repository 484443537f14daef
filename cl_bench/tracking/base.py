"""What the run hands to every tracker, and in which order: start, then per experience
log_experience (new curve rows and the task-end accuracies), then log_summary, and finish
always (also when the run fails). A resumed run first offers each tracker the state it kept in
the checkpoint (`resume`): one that continues its earlier run (W&B, same id) is not sent again
what it logged before the checkpoint; the others start over and get it all again."""
from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cl_bench.results.run_folder import is_setting_key


@dataclass
class RunInfo:
    output_dir: Path
    name: str                       # readable run name: the setting plus the seed
    setting: str                    # the command-line overrides without seed: seeds of one setting share it
    group: str | None = None        # the sweep a run belongs to (multirun), else None
    overrides: list[str] | None = None  # the command line's overrides; None outside the CLI


class Tracker:
    """Base class: every hook is optional. Subclasses set `name` for error messages."""

    name = "tracker"

    def start(self, config: dict, info: RunInfo) -> None: ...

    def log_experience(self, experience: int, curve_rows: list[tuple[int, int, np.ndarray]], task_end: list[float]) -> None: ...

    def log_learning_rates(self, rows: list[tuple[int, int, float]]) -> None:
        """(update, experience, learning rate) of the updates since the last call (lr.csv's rows)."""

    def log_summary(self, results: dict, files: dict[str, Path]) -> None: ...

    def finish(self, failed: bool) -> None: ...

    def state_dict(self) -> dict:
        """What a resumed run needs to continue this tracker's run (kept in checkpoints)."""
        return {}

    def resume(self, state: dict) -> bool:
        """Called before `start` with `state_dict()`'s value from the checkpoint; True when the
        tracker will continue that run, which already holds everything logged before it."""
        return False


class SafeTrackers:
    """Calls every tracker; one that raises is reported once and dropped, the run goes on."""

    def __init__(self, trackers: list[Tracker]):
        self.trackers = list(trackers)
        self.continued: set[str] = set()  # trackers that resumed their earlier run

    def _call(self, method: str, *args, skip: set[str] = frozenset()) -> None:
        for tracker in [t for t in self.trackers if t.name not in skip]:
            try:
                getattr(tracker, method)(*args)
            except Exception as exc:  # tracking is never worth losing a run over
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                print(f"cl-bench: warning: logger '{tracker.name}' stopped ({method}: {first}); the run goes on",
                      file=sys.stderr)
                self.trackers.remove(tracker)
                if method != "finish":
                    with contextlib.suppress(Exception):  # it is already broken; closing is best effort
                        tracker.finish(True)

    def resume(self, states: dict[str, dict]) -> None:
        self.continued = {t.name for t in self.trackers if t.name in states and t.resume(states[t.name])}

    def state_dicts(self) -> dict[str, dict]:
        return {t.name: t.state_dict() for t in self.trackers}

    def start(self, config, info):
        self._call("start", config, info)

    def log_history(self, experience, curve_rows, task_end):
        """An experience logged before a checkpoint, again, to the trackers that started over."""
        self._call("log_experience", experience, curve_rows, task_end, skip=self.continued)

    def log_history_rates(self, rows):
        """Learning rates logged before a checkpoint, again, to the trackers that started over."""
        self._call("log_learning_rates", rows, skip=self.continued)

    def log_experience(self, experience, curve_rows, task_end):
        self._call("log_experience", experience, curve_rows, task_end)

    def log_learning_rates(self, rows):
        self._call("log_learning_rates", rows)

    def log_summary(self, results, files):
        self._call("log_summary", results, files)

    def finish(self, failed: bool):
        self._call("finish", failed)


def run_info(seed: int, output_dir: Path) -> RunInfo:
    """Name, setting and sweep group from Hydra's overrides (plain runs when called outside Hydra)."""
    overrides, group = None, None
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized():
        hc = HydraConfig.get()
        overrides = list(hc.overrides.task)
        if hc.mode == RunMode.MULTIRUN:
            sweep = Path(hc.sweep.dir)
            group = f"{sweep.parent.name}_{sweep.name}" if sweep.parent.name else sweep.name
    setting = " ".join(sorted(o for o in overrides or [] if is_setting_key(o.split("=", 1)[0]))) or "defaults"
    return RunInfo(output_dir=Path(output_dir), name=f"{setting} seed={seed}", setting=setting, group=group,
                   overrides=overrides)
