"""Group masking (SCoLe; Lesort et al. 2023), an add-on for any strategy: before the loss, the
logits of classes absent from the minibatch are set to `fill` (-inf), so a step on classes
{a, b} never pushes down the classes that are merely not in this task. Key to knowledge
accumulation on long streams with re-occurrence: `cl-bench scenario=scole_mnist +addons=group_mask`.

Only the training loss sees the mask; evaluation uses the full output. Strategies that compare
training logits with another model's (LwF) see masked logits too.
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin

from cl_bench.registry import register_addon


class GroupMaskPlugin(SupervisedPlugin):
    def __init__(self, fill: float = float("-inf")):
        super().__init__()
        self.fill = fill

    def after_forward(self, strategy, **kwargs):
        logits = strategy.mb_output
        absent = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
        absent[strategy.mb_y.unique()] = False
        strategy.mb_output = logits.masked_fill(absent, self.fill)


@register_addon("group_mask")
def build(cfg, seed: int) -> GroupMaskPlugin:
    return GroupMaskPlugin(fill=float(cfg.fill))
