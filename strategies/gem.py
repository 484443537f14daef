"""Gradient Episodic Memory (Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
Learning", NeurIPS 2017), through Avalanche's GEMPlugin.

GEM keeps `patterns_per_experience` samples of every past experience. Before each update it
computes the loss gradient on each past experience's memory; when the new minibatch's gradient g
has a negative dot product with any of them, g is replaced by its closest projection (in L2)
that has a non-negative dot product with all of them, found by solving the dual quadratic
program (quadprog, as in the authors' code). `memory_strength` is the paper's margin gamma: the
dual variables are bounded below by it, which pushes the projection towards backward transfer.

As in Avalanche and the paper, the memory of an experience is taken at its end (the first
`patterns_per_experience` samples of a shuffled pass) and never changes afterwards.
Deviation from Avalanche: the memory is kept on the run's device, task labels included (Avalanche
moves inputs and targets there at every iteration but hands a multi-head model CPU task labels).
"""
from avalanche.training.plugins import GEMPlugin as AvalancheGEMPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, number_at_least


class GEMPlugin(AvalancheGEMPlugin):
    """Avalanche's GEM, its episodic memory on the device and checkpointed as tensors."""

    def after_training_exp(self, strategy, **kwargs):
        super().after_training_exp(strategy, **kwargs)
        t = strategy.clock.train_exp_counter  # the experience just stored (the clock counts it after us)
        for memory in (self.memory_x, self.memory_y, self.memory_tid):
            memory[t] = memory[t].to(strategy.device)

    def state_dict(self) -> dict:
        return {"x": dict(self.memory_x), "y": dict(self.memory_y), "t": dict(self.memory_tid)}

    def load_state_dict(self, state: dict) -> None:
        self.memory_x, self.memory_y, self.memory_tid = dict(state["x"]), dict(state["y"]), dict(state["t"])


@register_strategy("gem", rules={"patterns_per_experience": at_least(1), "memory_strength": number_at_least(0)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    gem = GEMPlugin(patterns_per_experience=int(cfg.patterns_per_experience),
                    memory_strength=float(cfg.memory_strength))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[gem, *plugins], **common
    )
