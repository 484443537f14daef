"""Fine-tuning with label smoothing (Szegedy et al. 2016): soft targets keep the logits of
classes absent from the current experience from being pushed down as hard. A complete strategy
in one module: the builder gets the config node and the objects cl-bench made, and returns an
Avalanche template."""
import torch
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy


@register_strategy("label_smoothing")
def build(cfg, model, optimizer, criterion, **common) -> SupervisedTemplate:
    if not 0.0 <= float(cfg.smoothing) < 1.0:
        raise ValueError(f"strategy.smoothing must be in [0, 1), got {cfg.smoothing}")
    smoothed = torch.nn.CrossEntropyLoss(label_smoothing=float(cfg.smoothing))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=smoothed, **common)
