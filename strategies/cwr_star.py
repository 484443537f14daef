"""CWR* (Copy Weights with Re-init*): Lomonaco, Maltoni & Pellegrini, "Rehearsal-Free Continual
Learning over Small Non-I.I.D. Batches", CVPR Workshops 2020 (CWR itself: Lomonaco & Maltoni,
CoRL 2017). Avalanche's CWRStarPlugin.

The output layer keeps a consolidated weight row per class. Before an experience its rows are
zeroed, except those of the experience's classes that were seen before, which start from their
consolidated values; after it, each trained row is centred (the mean over the experience's rows
subtracted) and averaged into its consolidated row with weight sqrt(past count / current count).
With `freeze_remaining_model` the rest of the network trains on the first experience only and is
a fixed feature extractor afterwards, as in the paper.

As in Avalanche, only weights are consolidated: the output bias trains in every experience.
Class-incremental and domain-incremental only: the consolidated layer is the single output head,
one row per class of the whole stream (a multi-head model has no such layer).
"""
from collections import defaultdict

import torch
from avalanche.training.plugins import CWRStarPlugin as AvalancheCWRStarPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy


class CWRStarPlugin(AvalancheCWRStarPlugin):
    """Avalanche's CWR*, with its consolidated rows and per-class counts checkpointed as tensors
    (Avalanche keeps them on the model as numpy arrays, outside its state dict)."""

    def state_dict(self) -> dict:
        return {"saved_weights": {int(c): torch.from_numpy(w.copy()) for c, w in self.model.saved_weights.items()},
                "past_j": {int(c): int(n) for c, n in self.model.past_j.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.model.saved_weights = {c: w.cpu().numpy() for c, w in state["saved_weights"].items()}
        self.model.past_j = defaultdict(int, state["past_j"])


@register_strategy("cwr_star", settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if not hasattr(model, "head"):
        raise ConfigError(f"strategy 'cwr_star' needs a model with one output head; "
                          f"{type(model).__name__} has none")
    cwr = CWRStarPlugin(model, cwr_layer_name="head", freeze_remaining_model=bool(cfg.freeze_remaining_model))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion,
                              plugins=[cwr, *plugins], **common)
