"""Cumulative: at each experience, retrain on the union of every experience seen so far."""
from avalanche.training.supervised import Cumulative

from cl_bench.registry import register_strategy


@register_strategy("cumulative")
def build(cfg, model, optimizer, criterion, **common) -> Cumulative:
    return Cumulative(model=model, optimizer=optimizer, criterion=criterion, **common)
