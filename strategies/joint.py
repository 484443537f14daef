"""Joint (offline) training on the union of all experiences: the upper bound of a stream.

It trains once, on the whole stream; the run therefore records a single row of accuracies and
no forgetting."""
from avalanche.training.supervised import JointTraining

from cl_bench.registry import register_strategy


@register_strategy("joint", offline=True, resume_midway=True)
def build(cfg, model, optimizer, criterion, **common) -> JointTraining:
    return JointTraining(model=model, optimizer=optimizer, criterion=criterion, **common)
