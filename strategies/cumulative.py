"""Cumulative: at each experience, retrain on the union of every experience seen so far."""
from avalanche.benchmarks.utils import concat_datasets
from avalanche.training.supervised import Cumulative as AvalancheCumulative

from cl_bench.registry import register_strategy


class Cumulative(AvalancheCumulative):
    """Avalanche's Cumulative. A checkpoint holds which experiences were seen, not their data:
    the union is rebuilt from the stream when a resumed run trains again."""

    def __init__(self, **kwargs):  # keywords only, as Avalanche asks of strategy constructors
        super().__init__(**kwargs)
        self.seen: list[int] = []

    def train_dataset_adaptation(self, **kwargs):
        if self.dataset is None and self.seen:  # resumed from a checkpoint
            stream = self.experience.origin_stream
            self.dataset = concat_datasets([stream[i].dataset for i in self.seen])
        super().train_dataset_adaptation(**kwargs)
        self.seen.append(self.experience.current_experience)

    def state_dict(self) -> dict:
        return {"seen": list(self.seen)}

    def load_state_dict(self, state: dict) -> None:
        self.seen, self.dataset = list(state["seen"]), None


@register_strategy("cumulative", resume_midway=True)
def build(cfg, model, optimizer, criterion, **common) -> Cumulative:
    return Cumulative(model=model, optimizer=optimizer, criterion=criterion, **common)
