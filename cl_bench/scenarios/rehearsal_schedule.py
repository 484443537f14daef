"""How much of each old task a rehearsal environment replays at each phase.

counts[t, i] is the number of task i's training samples mixed into phase t (i < t); k = t - i is
the recency (phases since task i was introduced). Shapes of decay over k:
    power_law    w(k) = (1 + k / offset) ** -exponent     (Anderson & Schooler; Gandhi et al. 2024)
    exponential  w(k) = exp(-k / decay)
    uniform      w(k) = 1
and two references without a budget: none (no rehearsal) and full (every old sample, every phase).
Exactly one normalization turns weights into counts:
    scale             counts = round(scale * w)              (the paper's n_i(t) = A (1 + k/c)^-d)
    per_phase_budget  each phase t >= 1 replays exactly B samples, split in proportion to w
    total_budget      the whole stream replays exactly T samples, split in proportion to w
so schedules are compared at equal total budget by changing only `kind`.
"""
from __future__ import annotations

import numpy as np

from cl_bench.errors import ConfigError

KINDS = ("power_law", "exponential", "uniform", "none", "full")
NORMALIZATIONS = ("scale", "per_phase_budget", "total_budget")


def recency_weights(kind: str, n_tasks: int, exponent: float = 1.0, offset: float = 1.0, decay: float = 1.0) -> np.ndarray:
    """W[t, i] = w(t - i) for i < t, else 0."""
    t, i = np.indices((n_tasks, n_tasks))
    k = (t - i).astype(float)
    past = k >= 1
    if kind == "power_law":
        if offset <= 0:
            raise ConfigError(f"scenario.schedule.offset must be > 0, got {offset}")
        w = (1.0 + np.where(past, k, 0) / offset) ** -exponent
    elif kind == "exponential":
        if decay <= 0:
            raise ConfigError(f"scenario.schedule.decay must be > 0, got {decay}")
        w = np.exp(-np.where(past, k, 0) / decay)
    elif kind in ("uniform", "full"):
        w = np.ones_like(k)
    elif kind == "none":
        w = np.zeros_like(k)
    else:
        raise ConfigError(f"scenario.schedule.kind must be one of {', '.join(KINDS)}, got '{kind}'")
    return np.where(past, w, 0.0)


def largest_remainder(values: np.ndarray, total: int) -> np.ndarray:
    """Integers that sum to `total`, each within 1 of its value; ties go to the more recent task
    (higher column index), so a row that is non-increasing in recency stays so."""
    floor = np.floor(values).astype(np.int64)
    missing = int(total - floor.sum())
    flat_rem = (values - floor).ravel()
    cols = np.indices(values.shape)[-1].ravel()
    order = np.lexsort((-cols, -flat_rem))  # largest remainder first, then most recent
    out = floor.ravel().copy()
    out[order[:missing]] += 1
    return out.reshape(values.shape)


def rehearsal_counts(kind: str, task_sizes: list[int], *, exponent: float = 1.0, offset: float = 1.0,
                     decay: float = 1.0, scale=None, per_phase_budget=None, total_budget=None) -> np.ndarray:
    n = len(task_sizes)
    sizes = np.asarray(task_sizes, dtype=np.int64)
    if kind == "full":
        counts = np.tril(np.broadcast_to(sizes, (n, n)), k=-1).copy()
    elif kind == "none":
        counts = np.zeros((n, n), dtype=np.int64)
    else:
        w = recency_weights(kind, n, exponent, offset, decay)
        given = {k: v for k, v in (("scale", scale), ("per_phase_budget", per_phase_budget),
                                   ("total_budget", total_budget)) if v is not None}
        if len(given) != 1:
            raise ConfigError(f"scenario.schedule: set exactly one of {', '.join(NORMALIZATIONS)} "
                             f"(the others null), got {sorted(given) or 'none'}")
        (key, value), = given.items()
        if value < 0:
            raise ConfigError(f"scenario.schedule.{key} must be >= 0, got {value}")
        if key == "scale":
            counts = np.floor(float(value) * w + 0.5).astype(np.int64)
        elif key == "per_phase_budget":
            counts = np.zeros((n, n), dtype=np.int64)
            for t in range(1, n):
                counts[t] = largest_remainder(int(value) * w[t] / w[t].sum(), int(value))
        else:
            counts = largest_remainder(int(value) * w / w.sum(), int(value)) if n > 1 else np.zeros((n, n), np.int64)
    too_many = np.argwhere(counts > sizes[None, :])
    if len(too_many):
        t, i = too_many[0]
        raise ConfigError(f"scenario.schedule asks for {counts[t, i]} samples of task {i} at phase {t}, "
                         f"but task {i} has {sizes[i]}; lower the budget or scale")
    return counts
