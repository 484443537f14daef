"""Gradient-based Sample Selection, greedy variant (Aljundi, Lin, Goujaud, Bengio; NeurIPS 2019),
on Avalanche's GSS_greedyPlugin.

A fixed-size memory is filled from the stream so that its samples' gradients are diverse: after
every forward pass each new sample is scored by its largest cosine similarity to the gradients
of `mem_strength` random memory subsets; once the memory is full, a batch that is not already
covered (batch similarity < 0) replaces memory samples drawn in proportion to their scores, each
swap decided by a draw between the new sample's score and the old one's. From the second
experience on every minibatch is the new batch joined by a memory batch (Avalanche's
ReplayDataLoader, 32 memory samples per step).

Fixes to Avalanche (each would otherwise change training or crash, not only numbers):
- the scoring passes leave their last gradient in `.grad`, where the step's own backward adds to
  it: the optimizer then stepped on a stale per-sample gradient too. The gradients are cleared.
- a memory holding fewer samples than the minibatch has (a few-shot experience, a replay batch
  larger than the memory so far) got zero memory subsets, and `max` of no similarity failed; it
  now scores against one subset of the whole memory.
- the memory's input shape is taken from the first minibatch (Avalanche needs it up front).
As in Avalanche, replayed samples in a minibatch are candidates for the memory too, and the
model is called without task labels: the method is task-free (class- or domain-incremental).
"""
import torch
from avalanche.training.plugins import GSS_greedyPlugin as AvalancheGSSPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least


class GSSPlugin(AvalancheGSSPlugin):
    def __init__(self, mem_size: int, mem_strength: int):
        super().__init__(mem_size=mem_size, mem_strength=mem_strength, input_size=[])
        self.allocated = False

    def _allocate(self, input_shape, device) -> None:
        self.ext_mem_list_x = torch.zeros(self.mem_size, *input_shape, device=device)
        self.allocated = True

    def after_forward(self, strategy, **kwargs):
        if not self.allocated:
            self._allocate(strategy.mb_x.shape[1:], strategy.device)
        super().after_forward(strategy, **kwargs)
        strategy.model.zero_grad()  # the scoring gradients are not the step's

    def get_rand_mem_grads(self, strategy, grad_dims, gss_batch_size):
        # At least one subset once the memory holds anything (see the module doc).
        strength = self.mem_strength
        if 0 < self.ext_mem_list_current_index < gss_batch_size:
            self.mem_strength = 1
            gss_batch_size = self.ext_mem_list_current_index
        try:
            return super().get_rand_mem_grads(strategy, grad_dims, gss_batch_size)
        finally:
            self.mem_strength = strength

    def state_dict(self) -> dict:
        n = self.ext_mem_list_current_index
        return {"x": self.ext_mem_list_x[:n] if self.allocated else None, "y": self.ext_mem_list_y[:n],
                "score": self.buffer_score[:n], "filled": n}

    def load_state_dict(self, state: dict) -> None:
        n = state["filled"]
        self.ext_mem_list_current_index = n
        device = self.ext_mem_list_y.device
        if state["x"] is not None:
            # In place once allocated: the replay loader Avalanche builds at the experience's start
            # reads views of this tensor (on CPU), and must see the memory loaded inside it.
            if not self.allocated or self.ext_mem_list_x.shape[1:] != state["x"].shape[1:]:
                self._allocate(state["x"].shape[1:], device)
            self.ext_mem_list_x[:n] = state["x"].to(device)
        self.ext_mem_list_y[:n] = state["y"].to(device)
        self.buffer_score[:n] = state["score"].to(device)


@register_strategy("gss", rules={"mem_size": at_least(1), "mem_strength": at_least(1)},
                   settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    gss = GSSPlugin(mem_size=int(cfg.mem_size), mem_strength=int(cfg.mem_strength))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion, plugins=[gss, *plugins], **common)
