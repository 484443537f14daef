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
augmentation) stands where it stood; then the checkpointed state is loaded over everything. On CPU
the resumed run ends bit-identical to an uninterrupted one (tests/test_checkpoint.py).
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
        self.fetched, self.draws = 0, {}  # this epoch: batches fetched, {fetch: rng state} of those that drew
        self.updates_since, self.last_write = 0, time.monotonic()

    def resume_from(self, saved: dict) -> None:
        self.target = saved

    # --- the epoch's batches --------------------------------------------------------------------

    def before_training_epoch(self, strategy, **kwargs):
        self.strategy = strategy
        if self.enabled and not isinstance(strategy.dataloader, ReplayableLoader):  # a new experience's loader
            strategy.dataloader = ReplayableLoader(strategy.dataloader, self)

    def _fetch(self, call, key: int):
        before = _host_rng()
        out = call()
        if _drew(before):
            self.draws[key] = before
        return out

    def epoch(self, loader):
        self.fetched, self.draws = 0, {}
        target = self.target
        if target is not None and self.strategy.clock.train_exp_epochs < target["epoch"]:
            return  # done before the checkpoint: its batches are in the checkpointed state
        if target is None:
            batches = self._fetch(lambda: iter(loader), -1)
        else:
            batches = self._fast_forward(loader, target)
        while True:
            try:
                batch = self._fetch(lambda: next(batches), self.fetched)
            except StopIteration:
                return
            self.fetched += 1
            yield batch

    def _fast_forward(self, loader, target: dict):
        draws = target["draws"]

        def replay(call, key):
            if key in draws:
                set_rng_state(draws[key])
            return call()

        batches = replay(lambda: iter(loader), -1)
        for n in range(target["fetched"]):
            replay(lambda: next(batches), n)
        restore(self.strategy, target["state"], self.device)  # everything, random streams last
        self.fetched, self.draws, self.target = target["fetched"], dict(draws), None
        return batches

    # --- writing --------------------------------------------------------------------------------

    def after_training_iteration(self, strategy, **kwargs):
        self.updates_since += 1
        requested = preemption.requested()
        due = ((self.every_updates is not None and self.updates_since >= self.every_updates)
               or (self.every_seconds is not None and time.monotonic() - self.last_write >= self.every_seconds))
        if self.enabled and (requested or due):
            self.write(strategy, {"epoch": strategy.clock.train_exp_epochs, "fetched": self.fetched,
                                  "draws": dict(self.draws)})
            self.updates_since, self.last_write = 0, time.monotonic()
        if requested:
            raise preemption.Preempted(requested)

    def after_training_exp(self, strategy, **kwargs):
        self.updates_since = 0  # the boundary checkpoint follows
