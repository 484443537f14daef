"""Experience replay with a per-sample reservoir (Chaudhry, Rohrbach, Elhoseiny, Ajanthan,
Dokania, Torr & Ranzato, "On Tiny Episodic Memories in Continual Learning", arXiv 1902.10486,
2019; reservoir sampling: Vitter, "Random Sampling with a Reservoir", ACM TOMS 1985).

Every training iteration joins the new minibatch with a minibatch drawn uniformly, without
repeats, from the memory, and takes one step on the joined batch (one mean loss). After the
step, each new sample is offered to the memory by Algorithm R: the n-th sample of the stream
(0-based) fills an empty slot while fewer than `mem_size` have been seen, and afterwards
replaces slot j, for j drawn uniformly from 0..n, when j < mem_size. Every sample seen is then
in memory with probability mem_size / (samples seen), whichever experience it came from, and
the memory serves from the first experience's second iteration on, not only from the second
experience as with Avalanche's ReplayPlugin, whose buffers change only at experience ends.

Deviation: with several epochs per experience only the first epoch offers samples to the
memory, so each sample is offered once and the memory stays a uniform sample of the distinct
samples seen; with train.epochs=1 (the paper's single pass) this is the paper's protocol.
Random numbers come from torch's global generator, which cl-bench seeds and checkpoints.
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, optional


class OnlineReservoirReplayPlugin(SupervisedPlugin):
    def __init__(self, mem_size: int, batch_size_mem: int | None = None):
        super().__init__()
        self.mem_size, self.batch_size_mem = mem_size, batch_size_mem
        self.seen = 0  # samples offered to the reservoir so far: n of Algorithm R
        self.memory: list[torch.Tensor] | None = None  # x, y, task label; `mem_size` slots each
        self.incoming: list[torch.Tensor] | None = None  # this iteration's new samples

    @property
    def size(self) -> int:
        return min(self.seen, self.mem_size)

    # --- Algorithm R ------------------------------------------------------------------------------

    def insert(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> None:
        if self.memory is None:
            self.memory = [part.new_empty((self.mem_size, *part.shape[1:])) for part in (x, y, t)]
        n = self.seen + torch.arange(len(y))  # each sample's place in the stream
        draws = (torch.rand(len(y), dtype=torch.float64) * (n + 1)).long()  # uniform on 0..n
        slots = torch.where(n < self.mem_size, n, draws)
        self.seen += len(y)
        # One at a time, in stream order: a later sample drawn to the same slot replaces an earlier one.
        for i, slot in enumerate(slots.tolist()):
            if slot < self.mem_size:
                for stored, new in zip(self.memory, (x, y, t)):
                    stored[slot] = new[i]

    def sample(self, size: int) -> list[torch.Tensor]:
        idx = torch.randperm(self.size)[:size]
        return [stored[idx.to(stored.device)] for stored in self.memory]

    # --- training ---------------------------------------------------------------------------------

    def before_training_iteration(self, strategy, **kwargs):
        x, y, t = strategy.mbatch[0], strategy.mbatch[1], strategy.mbatch[-1]
        self.incoming = [x, y, t]
        if self.size == 0:
            return
        replayed = self.sample(self.batch_size_mem or strategy.train_mb_size)
        strategy.mbatch = [torch.cat([new, old.to(new.device)]) for new, old in zip((x, y, t), replayed)]

    def after_training_iteration(self, strategy, **kwargs):
        if strategy.clock.train_exp_epochs == 0:  # each sample is offered once (see the docstring)
            self.insert(*self.incoming)
        self.incoming = None

    # --- checkpoint -------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        filled = None if self.memory is None else [stored[: self.size] for stored in self.memory]
        return {"seen": self.seen, "memory": filled}

    def load_state_dict(self, state: dict) -> None:
        self.seen, self.memory = state["seen"], None
        if state["memory"] is not None:
            self.memory = [part.new_empty((self.mem_size, *part.shape[1:])) for part in state["memory"]]
            for stored, part in zip(self.memory, state["memory"]):
                stored[: len(part)] = part


@register_strategy("online_replay", rules={"mem_size": at_least(1), "batch_size_mem": optional(at_least(1))}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    replay = OnlineReservoirReplayPlugin(int(cfg.mem_size), cfg.get("batch_size_mem"))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[replay, *plugins], **common
    )
