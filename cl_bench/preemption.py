"""Preemption: a signal asks a run to stop after the current update with a checkpoint written.

SIGUSR2 is what SLURM sends ahead of a preemption or a time limit (`--signal=USR2@90`, `scancel
--signal=USR2`) and what submitit listens to; SIGTERM is `scancel` and a plain `kill`. The handler
only records the request: the state is whole between updates, so the midway checkpoint is written
there (cl_bench/midway.py), or at the next experience boundary; work with no checkpoint of its
own (a second training stage after an experience) stops at once (`stop_if_requested`).
`Preempted` then ends the attempt (results.json says `preempted`, the checkpoints stay) and the
signal goes on to whoever handled it before the run: under submitit, its handler requeues the
job, which resumes from the checkpoint;
with no handler, the process exits with 128 + the signal's number, as if the signal had killed it.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGUSR2, signal.SIGTERM)

_requested: int | None = None  # the signal received, until the run has stopped for it
_previous: dict[int, object] = {}


class Preempted(BaseException):
    """Not an Exception: nothing in a strategy may swallow it on its way out of training."""

    def __init__(self, signum: int, where: str = "after writing a checkpoint"):
        super().__init__(f"stopped by {signal.Signals(signum).name} {where}")
        self.signum = signum


def requested() -> int | None:
    return _requested


def signal_name() -> str:
    return signal.Signals(_requested).name if _requested else "no signal"


def stop_if_requested(where: str = "after writing a checkpoint") -> None:
    """Stop for a recorded signal, here. Training a strategy does after an experience's last update
    (generative replay's generator, BiC's bias layer) calls it too, `where` saying so: that work has
    no checkpoint of its own, so it stops at once and the run does it again from its last
    checkpoint; waiting for it to end would hold the signal for minutes, past a scheduler's grace."""
    if _requested:
        raise Preempted(_requested, where)


def stop_during(stage: str) -> None:
    """`stop_if_requested` for a second training stage, whose work is done again on resume."""
    stop_if_requested(f"during {stage}: it resumes from the last checkpoint")


def _record(signum, frame) -> None:
    global _requested
    _requested = signum


@contextmanager
def stop_on_signals():
    """Record SIGUSR2/SIGTERM during a run instead of dying mid-update. A no-op off the main
    thread, where Python cannot install handlers (a sweep job run by a thread pool)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _requested = None
    previous = {s: signal.signal(s, _record) for s in SIGNALS}
    _previous.update(previous)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def hand_over(signum: int) -> None:
    """After `Preempted`: the signal to the handler the run displaced (submitit requeues the job
    and exits); if that returns, or there was none, exit as the signal would have."""
    global _requested
    _requested = None
    handler = _previous.get(signum)
    if callable(handler):
        handler(signum, None)
    raise SystemExit(128 + signum)
