"""Continual-evaluation metrics as pure functions of recorded accuracy curves.

Formulas follow ../shared/specs/continual-evaluation.md (De Lange et al., ICLR 2023, and Lapacz
et al., WACV 2025, for the stability-gap size and recovery). Tasks and experiences are 0-indexed
here; experience k trains task k. Every metric is computed at the end of the stream.

One departure from the spec: WF^w / WP^w windows and LCA's beta are counted in training steps,
not in evaluations. A step is an update or an experience switch (the evaluations just before and
just after a switch can see different models: a strategy may change it there). With an evaluation
after every update the two counts agree, so `every` reports what the spec's code does; under a
sparser schedule (cl_bench/evaluation/schedule.py) a metric still spans the same stretch of training.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Curves:
    """One row per evaluation, in the order they happened.

    iteration[r]:  optimizer updates done before evaluation r
    experience[r]: the experience being trained at evaluation r (the one-per-experience
                   evaluation before the first update carries the new experience's index)
    accuracy[r, i]: accuracy on task i's evaluation subset, NaN when task i was not evaluated
    task_end[k]:   updates done when experience k finished (t_k)
    """

    iteration: np.ndarray
    experience: np.ndarray
    accuracy: np.ndarray
    task_end: list[int]

    @property
    def n_trained(self) -> int:
        return len(self.task_end)

    def seen(self, task: int) -> tuple[np.ndarray, np.ndarray]:
        """(accuracies, steps) of `task` from the moment it was first trained on (its own
        pre-update evaluation included), never reset at later task boundaries. Steps count updates
        and experience switches: evaluation r happened after iteration[r] + experience[r] of them."""
        rows = (self.experience >= task) & ~np.isnan(self.accuracy[:, task])
        return self.accuracy[rows, task], self.iteration[rows] + self.experience[rows]

    def last_row_at(self, updates: int) -> int:
        """The last evaluation of the model after exactly `updates` updates (or the latest before)."""
        return int(np.nonzero(self.iteration <= updates)[0][-1])


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def min_acc(c: Curves) -> float | None:
    """Mean over finished tasks i < k of the lowest accuracy i had after it finished."""
    mins = []
    for i in range(c.n_trained - 1):
        after = (c.iteration > c.task_end[i]) & ~np.isnan(c.accuracy[:, i])
        mins.append(float(c.accuracy[after, i].min()) if after.any() else None)
    return _mean(mins)


def wc_acc(c: Curves) -> float | None:
    """Worst-case accuracy: (1/k) A(current task, final) + (1 - 1/k) min-ACC."""
    k = c.n_trained
    current = c.accuracy[c.last_row_at(c.task_end[-1]), k - 1]
    if k == 1:
        return float(current)
    m = min_acc(c)
    return None if m is None else float(current / k + (1 - 1 / k) * m)


def _largest_change_in_window(a: np.ndarray, steps: np.ndarray, w: int, sign: int) -> float:
    """max over evaluations m before n fewer than w training steps apart (steps[n] - steps[m] < w)
    of sign * (a_n - a_m); 0 when the series never changes that way. Counted in steps, the window
    spans the same stretch of training whatever the evaluation schedule."""
    if len(a) < 2:
        return 0.0
    first = np.searchsorted(steps, steps - w + 1, side="left")  # earliest m in n's window
    reach = int((np.arange(len(a)) - first).max())  # evaluations in the longest window, n excluded
    if reach == 0:
        return 0.0
    padded = np.concatenate([np.full(reach, np.nan), a])
    earlier = np.lib.stride_tricks.sliding_window_view(padded, reach + 1)[:, :-1].copy()  # row n: a[n-reach .. n-1]
    index = np.arange(len(a))[:, None] - reach + np.arange(reach)[None, :]
    earlier[index < first[:, None]] = np.nan  # outside n's window
    if sign < 0:  # forgetting: the highest earlier value minus now
        change = np.where(np.isnan(earlier), -np.inf, earlier).max(axis=1) - a
    else:  # plasticity: now minus the lowest earlier value
        change = a - np.where(np.isnan(earlier), np.inf, earlier).min(axis=1)
    change = change[np.isfinite(change)]
    return float(max(0.0, change.max())) if change.size else 0.0


def windowed_forgetting(c: Curves, w: int) -> float | None:
    """WF^w: mean over seen tasks (current included) of the largest drop within w steps."""
    return _mean([_largest_change_in_window(*c.seen(i), w, -1) for i in range(c.n_trained)])


def windowed_plasticity(c: Curves, w: int) -> float | None:
    """WP^w: as WF^w with the largest rise."""
    return _mean([_largest_change_in_window(*c.seen(i), w, +1) for i in range(c.n_trained)])


def lca(c: Curves, beta: int = 10) -> float | None:
    """Learning curve area: mean over tasks k of the mean accuracy on task k over its first beta
    updates while it is being learned (the evaluations after 0 .. beta-1 of them; the one before
    the first update is the first). With an evaluation after every update, beta evaluations."""
    means = []
    for k in range(c.n_trained):
        start = c.task_end[k - 1] if k else 0
        rows = (c.experience == k) & ~np.isnan(c.accuracy[:, k]) & (c.iteration - start < beta)
        means.append(float(c.accuracy[rows, k].mean()) if rows.any() else None)
    return _mean(means)


def _gap_pairs(c: Curves):
    """For every boundary k >= 1 and task i < k: (k, i, reference, values, iterations), where
    reference is A(E_i, f_{t_{k-1}}) and values the accuracies on i while learning k."""
    for k in range(1, c.n_trained):
        rows = np.nonzero(c.experience == k)[0]
        ref_row = c.last_row_at(c.task_end[k - 1])
        for i in range(k):
            values = c.accuracy[rows, i]
            keep = ~np.isnan(values)
            if keep.any() and not np.isnan(c.accuracy[ref_row, i]):
                yield k, i, float(c.accuracy[ref_row, i]), values[keep], c.iteration[rows][keep]


def stability_gap(c: Curves) -> dict:
    """SG = A(E_i, f_{t_{k-1}}) - min while learning k; REC = A(E_i, f_{t_k}) - that min.
    Absolute and normalized by A(E_i, f_{t_{k-1}}); averaged over i < k, then over boundaries."""
    per_boundary: dict[int, list[tuple]] = {}
    for k, i, ref, values, _ in _gap_pairs(c):
        m = float(values.min())
        end = float(c.accuracy[c.last_row_at(c.task_end[k]), i])
        norm = (lambda x: x / ref) if ref > 0 else (lambda x: None)  # noqa: E731
        per_boundary.setdefault(k, []).append((ref - m, end - m, norm(ref - m), norm(end - m)))
    out = {}
    for j, key in enumerate(("sg", "rec", "sg_norm", "rec_norm")):
        out[key] = _mean([_mean([p[j] for p in pairs]) for pairs in per_boundary.values()])
    return out


def recovery_times(c: Curves, eps: float = 0.01) -> list[int | None]:
    """Per (boundary, task) pair: updates from the start of task k until accuracy on i is back
    to >= A(E_i, f_{t_{k-1}}) - eps, looking from the minimum on; 0 without a gap deeper than
    eps, None (censored) when it never recovers while k is learned."""
    times = []
    for k, i, ref, values, iters in _gap_pairs(c):
        if values.min() >= ref - eps:
            times.append(0)
            continue
        lowest = int(values.argmin())
        back = np.nonzero(values[lowest + 1:] >= ref - eps)[0]
        times.append(int(iters[lowest + 1 + back[0]] - c.task_end[k - 1]) if back.size else None)
    return times


def continual_metric_names(windows=(10, 100), beta: int = 10) -> tuple[str, ...]:
    """The keys continual_metrics returns: known before a run, so a sweep's metric is checked first."""
    return ("min_acc", "wc_acc", *(f"{kind}{w}" for w in windows for kind in ("wf", "wp")), f"lca{beta}",
            "sg", "rec", "sg_norm", "rec_norm", "recovery_iters", "recovery_not_recovered", "recovery_pairs")


def continual_metrics(c: Curves, windows=(10, 100), beta: int = 10, eps: float = 0.01) -> dict:
    out = {"min_acc": min_acc(c), "wc_acc": wc_acc(c)}
    for w in windows:
        out[f"wf{w}"] = windowed_forgetting(c, w)
        out[f"wp{w}"] = windowed_plasticity(c, w)
    out[f"lca{beta}"] = lca(c, beta)
    out.update(stability_gap(c))
    times = recovery_times(c, eps)
    recovered = [t for t in times if t is not None]
    out["recovery_iters"] = _mean(recovered)
    out["recovery_not_recovered"] = len(times) - len(recovered)
    out["recovery_pairs"] = len(times)
    return out
