"""Fine-tuning with label smoothing (Szegedy et al. 2016): soft targets keep the logits of
classes absent from the current experience from being pushed down as hard. A complete strategy
in one module: it declares its config's constraints where it registers; the builder gets the
config node and the objects cl-bench made, and returns an Avalanche template."""
import torch
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import between


# The rule is checked before anything is built: `strategy.smoothing must be a number in [0, 1), got 1.5`.
@register_strategy("label_smoothing", rules={"smoothing": between(0, 1, high_open=True)})
def build(cfg, model, optimizer, criterion, **common) -> SupervisedTemplate:
    smoothed = torch.nn.CrossEntropyLoss(label_smoothing=float(cfg.smoothing))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=smoothed, **common)
