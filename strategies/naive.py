"""Fine-tuning: train on each experience in turn with nothing against forgetting (lower bound)."""
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy


@register_strategy("naive", resume_midway=True)
def build(cfg, model, optimizer, criterion, **common) -> SupervisedTemplate:
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion, **common)
