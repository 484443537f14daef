"""Cumulative: at each experience, retrain on the union of every experience seen so far."""
from avalanche.training.supervised import Cumulative as AvalancheCumulative

from cl_bench.checkpoint import dataset_from_state, dataset_state
from cl_bench.registry import register_strategy


class Cumulative(AvalancheCumulative):
    """Avalanche's Cumulative; checkpoints hold the union of the data seen so far as tensors."""

    def state_dict(self) -> dict:
        return {"seen": None if self.dataset is None else dataset_state(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        self.dataset = None if state["seen"] is None else dataset_from_state(state["seen"])


@register_strategy("cumulative")
def build(cfg, model, optimizer, criterion, **common) -> Cumulative:
    return Cumulative(model=model, optimizer=optimizer, criterion=criterion, **common)
