"""When continual evaluation runs: after which updates the model is evaluated.

Every schedule evaluates once before each experience's first update (offset 0 below) and once
after its last update, so the accuracies the metrics take as references (A(E_i, f_{t_k})) are
always measured. In between, with `offset` = updates done in the current experience:

    every           after every `period`-th update of the stream: De Lange et al.'s protocol. Its
                    cost grows as updates x seen tasks.
    boundary_dense  after each of the first `dense_updates` updates of an experience (where the
                    stability gap opens and closes), then after every `sparse_period`-th update of it.
                    The default (25, then every 50th), chosen by benchmarks/eval_schedules.py.
    budget          `budget` evaluations per experience: one after each update while a geometric
                    progression from 1 to the experience's length would put them less than an
                    update apart, geometrically sparser after it, the last after the last update.

Metrics are computed from the recorded (update, accuracy) points and their windows are counted in
training steps (cl_bench/evaluation/stability.py), so a metric means the same under every schedule; a
sparse schedule can only miss extremes between its points.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from cl_bench.evaluation.stability import Curves
from cl_bench.rules import at_least, one_of

SCHEDULES = ("every", "boundary_dense", "budget")
RULES = {"schedule": one_of(*SCHEDULES), "dense_updates": at_least(1), "sparse_period": at_least(1), "budget": at_least(1)}


@lru_cache(maxsize=64)
def budget_offsets(budget: int, span: int) -> frozenset[int]:
    """`budget` offsets in 1..span, the last one `span`: each step multiplies the offset by the
    ratio that reaches `span` in the steps left, and is at least one update."""
    if budget >= span:
        return frozenset(range(1, span + 1))
    if budget == 1:
        return frozenset({span})
    offsets, offset = [1], 1
    for left in range(budget - 1, 0, -1):
        step = max(offset + 1, round(offset * (span / offset) ** (1 / left)))
        offset = min(step, span - left + 1)  # leave one update for each evaluation still to place
        offsets.append(offset)
    return frozenset(offsets)


@dataclass(frozen=True)
class Schedule:
    name: str = "every"
    period: int = 1
    dense_updates: int = 25
    sparse_period: int = 50
    budget: int = 20

    def due(self, update: int, offset: int, span: int) -> bool:
        """Whether to evaluate after `update` updates of the stream, `offset` of them in the current
        experience of `span` planned updates (the strategy's loader length times its epochs). The
        evaluation after the experience's last update is the evaluator's, whatever this says."""
        if self.name == "every":
            return update % self.period == 0
        if self.name == "boundary_dense":
            return offset <= self.dense_updates or offset % self.sparse_period == 0
        return offset in budget_offsets(self.budget, span)


def thin(c: Curves, schedule: Schedule) -> Curves:
    """The rows of `c`, recorded after every update, that `schedule` would have recorded. Evaluation
    never changes training, so these are exactly a run's curves under that schedule: one dense run
    measures what every schedule would have reported (benchmarks/eval_schedules.py)."""
    keep = np.zeros(len(c.iteration), dtype=bool)
    for k, end in enumerate(c.task_end):
        start = c.task_end[k - 1] if k else 0
        rows = np.nonzero(c.experience == k)[0]
        keep[rows[0]] = True  # before the first update
        for r in rows[1:]:
            update = int(c.iteration[r])
            keep[r] = update == end or schedule.due(update, update - start, end - start)
    return Curves(c.iteration[keep], c.experience[keep], c.accuracy[keep], list(c.task_end))
