"""ER with asymmetric cross-entropy, ER-ACE (Caccia, Aljundi, Asadi, Tuytelaars, Pineau &
Belilovsky, "New Insights on Reducing Abrupt Representation Change in Online Continual
Learning", ICLR 2022).

Replay in which the incoming batch's cross-entropy only spans the classes present in that batch,
so new classes do not push the logits of old ones down (the abrupt representation change at a
task switch); the memory batch gets the ordinary cross-entropy over all classes, and the two
losses are averaged.

Avalanche 0.6.0's ER_ACE, the offline variant: the class-balanced memory takes in the new
experience's data at its START (the paper's online version inserts samples as they arrive), and
replay begins with the second experience. Only its buffer update goes through the storage
policy's current API (0.6.0 calls the deprecated `update`, which warns at every experience).
"""
from avalanche.training.storage_policy import ClassBalancedBuffer
from avalanche.training.supervised import ER_ACE as AvalancheER_ACE

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least
from strategies.replay import buffer_state, load_buffer_state


class QuietClassBalancedBuffer(ClassBalancedBuffer):
    """Avalanche's class-balanced reservoir, updated through `post_adapt`: the same call that
    0.6.0's deprecated `update` makes, without its DeprecationWarning."""

    def update(self, strategy, **kwargs):
        self.post_adapt(strategy, strategy.experience)


class ER_ACE(AvalancheER_ACE):
    """Avalanche's ER_ACE with its memory checkpointed as tensors."""
    midway_iterators = ("replay_loader",)  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.storage_policy = QuietClassBalancedBuffer(max_size=self.mem_size, adaptive_size=True)

    def state_dict(self) -> dict:
        return buffer_state(self.storage_policy)

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.storage_policy, state)


@register_strategy("er_ace", rules={"mem_size": at_least(1), "batch_size_mem": at_least(1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> ER_ACE:
    return ER_ACE(model=model, optimizer=optimizer, criterion=criterion, mem_size=int(cfg.mem_size),
                  batch_size_mem=int(cfg.batch_size_mem), plugins=list(plugins), **common)
