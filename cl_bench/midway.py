"""Checkpoints inside an experience: a run killed in the middle of a long experience (or of joint
training, one step) resumes at the update it had reached instead of starting the experience over.

Every `checkpoint.every_updates` updates and/or `checkpoint.every_seconds` seconds, and whenever a
preemption is requested (cl_bench/preemption.py), the state after the update is written to
`checkpoint_midway.pt`: the strategy as `checkpoint.capture` takes it, and the position (epoch,
batches fetched in it) with what it takes to fetch those batches again.

Resuming goes through the experience's own start, so its `before_training_exp` hooks (replay
loaders, new heads, a fresh optimizer) run on what they ran on the first time: the boundary
checkpoint puts the strategy back where the experience began; the epochs before the checkpointed
one pass without batches; in that epoch the loader fetches its first batches again without
training, and each fetch that drew random numbers the first time draws them from the state it drew
from then, so the iterator (its shuffle, a replay loader restarting its memory loader, an
augmentation) stands where it stood; then the checkpointed state is loaded over everything, and
the iterators a strategy keeps over its memory (`midway_iterators`, logged the same way) are
brought to their positions. On CPU the resumed run ends bit-identical to an uninterrupted one
(tests/test_checkpoint.py, every strategy that declares `resume_midway`).
"""
from __future__ import annotations

import random
import time

import numpy as np
import torch
from avalanche.core import SupervisedPlugin

from cl_bench import preemption
from cl_bench.checkpoint import restore, rng_state, set_rng_state


def _host_rng() -> dict:
    return rng_state(cuda=False)


def _drew(before: dict) -> bool:
    """Whether anything drew from Python's, NumPy's or torch's CPU stream since `before`."""
    numpy_now = np.random.get_state()
    return (not torch.equal(before["torch"], torch.get_rng_state()) or random.getstate() != before["python"]
            or int(numpy_now[2]) != before["numpy"]["pos"]
            or not np.array_equal(numpy_now[1], before["numpy"]["keys"].numpy().astype(np.uint32)))


class Stopwatch:
    """Seconds spent logging fetches, over a run (results.json: checkpoints.fetch_log_s)."""

    seconds = 0.0


class FetchLog:
    """Fetches from an iterator, counted, with the random state of each one that drew (key -1:
    creating the iterator). `replay` makes the same fetches on a fresh iterator: each draws from
    the state it drew from the first time, so the fresh iterator ends where the first one was."""

    def __init__(self, fetched: int = 0, draws: dict | None = None, stopwatch: Stopwatch | None = None):
        self.fetched, self.draws = fetched, dict(draws or {})
        self.stopwatch = stopwatch or Stopwatch()

    def fetch(self, call, key: int | None = None):
        key = self.fetched if key is None else key
        t0 = time.perf_counter()
        before = _host_rng()
        t1 = time.perf_counter()
        out = call()
        t2 = time.perf_counter()
        if _drew(before):
            self.draws[key] = before
        if key >= 0:
            self.fetched += 1
        self.stopwatch.seconds += (t1 - t0) + (time.perf_counter() - t2)  # the logging, not the fetch
        return out

    def state(self) -> dict:
        return {"fetched": self.fetched, "draws": dict(self.draws)}

    @staticmethod
    def replay(state: dict, call, key: int):
        if key in state["draws"]:
            set_rng_state(state["draws"][key])
        return call()


class LoggedIterator:
    """An iterator over a strategy's memory (`midway_iterators`), its fetches logged."""

    def __init__(self, iterator, log: FetchLog):
        self.iterator, self.log = iterator, log

    def __iter__(self):
        return self

    def __next__(self):
        return self.log.fetch(lambda: next(self.iterator))


def _memory_iterators(strategy):
    """(owner, attribute, index or None) of every iterator the strategy and its plugins declare in
    `midway_iterators`: attributes holding an iterator over a memory that does not change inside
    an experience, or a list of them."""
    for owner in (strategy, *strategy.plugins):
        for name in getattr(owner, "midway_iterators", ()):
            value = getattr(owner, name, None)
            if isinstance(value, list):
                yield from ((owner, name, i) for i in range(len(value)))
            elif value is not None:
                yield owner, name, None


def _get(owner, name, index):
    value = getattr(owner, name)
    return value if index is None else value[index]


def _set(owner, name, index, value) -> None:
    if index is None:
        setattr(owner, name, value)
    else:
        getattr(owner, name)[index] = value


def _key(owner, name, index) -> str:
    return f"{type(owner).__name__}.{name}" + ("" if index is None else f"[{index}]")


class ReplayableLoader:
    """The strategy's training loader, iterated through `MidwayCheckpoints` so that each epoch's
    fetches can be told and replayed. Everything else (len, dataset, batch size) is the loader's."""

    def __init__(self, loader, midway: MidwayCheckpoints):
        self.loader, self.midway = loader, midway

    def __iter__(self):
        return self.midway.epoch(self.loader)

    def __len__(self):
        return len(self.loader)

    def __getattr__(self, name):
        if name in ("loader", "midway"):  # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.loader, name)


class MidwayCheckpoints(SupervisedPlugin):
    """Writes midway checkpoints through `write(strategy, position)` and, armed with one
    (`resume_from`), brings the next experience's training to its position. Must be the last
    plugin: every other plugin has finished an update when it is written. Disabled (a strategy
    that does not `resume_midway`), it writes none and a preemption stops the run at once: it
    resumes from the experience's start."""

    def __init__(self, every_updates: int | None, every_seconds: float | None, write, device, enabled: bool = True):
        super().__init__()
        self.every_updates, self.every_seconds, self.enabled = every_updates, every_seconds, enabled
        self.write, self.device = write, device
        self.target: dict | None = None  # a loaded midway checkpoint to resume at
        self.strategy = None
        self.stopwatch = Stopwatch()
        self.log = FetchLog(stopwatch=self.stopwatch)  # this epoch's fetches from the training loader
        self.updates_since, self.last_write = 0, time.monotonic()

    def resume_from(self, saved: dict) -> None:
        self.target = saved

    # --- the epoch's batches --------------------------------------------------------------------

    def before_training_epoch(self, strategy, **kwargs):
        self.strategy = strategy
        if not self.enabled:
            return
        if not isinstance(strategy.dataloader, ReplayableLoader):  # a new experience's loader
            strategy.dataloader = ReplayableLoader(strategy.dataloader, self)
        for owner, name, index in _memory_iterators(strategy):
            if not isinstance(_get(owner, name, index), LoggedIterator):
                _set(owner, name, index, LoggedIterator(_get(owner, name, index), FetchLog(stopwatch=self.stopwatch)))

    def epoch(self, loader):
        self.log = FetchLog(stopwatch=self.stopwatch)
        target = self.target
        if target is not None and self.strategy.clock.train_exp_epochs < target["epoch"]:
            return  # done before the checkpoint: its batches are in the checkpointed state
        if target is None:
            batches = self.log.fetch(lambda: iter(loader), key=-1)
        else:
            batches = self._fast_forward(loader, target)
        while True:
            try:
                batch = self.log.fetch(lambda: next(batches))
            except StopIteration:
                return
            yield batch

    def _fast_forward(self, loader, target: dict):
        position = target["loader"]
        batches = FetchLog.replay(position, lambda: iter(loader), -1)
        for n in range(position["fetched"]):
            FetchLog.replay(position, lambda: next(batches), n)
        # Everything else; loading a strategy's state may build its memory iterators anew, so
        # they are brought to their positions after it, and the random streams restored last.
        restore(self.strategy, target["state"], self.device)
        for owner, name, index in _memory_iterators(self.strategy):
            saved = target["memory_iterators"].get(_key(owner, name, index))
            iterator = _get(owner, name, index)
            iterator = iterator.iterator if isinstance(iterator, LoggedIterator) else iterator
            if saved is not None:
                for n in range(saved["fetched"]):
                    FetchLog.replay(saved, lambda: next(iterator), n)
            _set(owner, name, index, LoggedIterator(iterator, FetchLog(**(saved or {}), stopwatch=self.stopwatch)))
        set_rng_state(target["state"]["rng"])
        self.log, self.target = FetchLog(**position, stopwatch=self.stopwatch), None
        return batches

    # --- writing --------------------------------------------------------------------------------

    def after_training_iteration(self, strategy, **kwargs):
        self.updates_since += 1
        requested = preemption.requested()
        due = ((self.every_updates is not None and self.updates_since >= self.every_updates)
               or (self.every_seconds is not None and time.monotonic() - self.last_write >= self.every_seconds))
        if self.enabled and (requested or due):
            memory = {_key(o, n, i): _get(o, n, i).log.state() for o, n, i in _memory_iterators(strategy)
                      if isinstance(_get(o, n, i), LoggedIterator)}
            self.write(strategy, {"epoch": strategy.clock.train_exp_epochs, "loader": self.log.state(),
                                  "memory_iterators": memory})
            self.updates_since, self.last_write = 0, time.monotonic()
        if requested:  # the value read above: a signal arriving since is answered after the next update
            raise preemption.Preempted(requested, "after writing a checkpoint" if self.enabled else
                                       "with no checkpoint inside the experience: it resumes from its start")

    def after_training_exp(self, strategy, **kwargs):
        self.updates_since = 0  # the boundary checkpoint follows
