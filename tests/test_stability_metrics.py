"""Continual-evaluation metrics on hand-computed curves (values worked out in the comments)."""
import numpy as np
import pytest

from cl_bench.evaluation.stability import (
    Curves,
    _largest_change_in_window,
    continual_metrics,
    lca,
    min_acc,
    recovery_times,
    stability_gap,
    wc_acc,
    windowed_forgetting,
    windowed_plasticity,
)

N = np.nan
# Three experiences of two updates each; each starts with an evaluation before its first update.
#   iteration  exp   task0  task1  task2
ROWS = [
    (0, 0, 0.0, N, N),
    (1, 0, 0.6, N, N),
    (2, 0, 0.9, N, N),        # t_0 = 2
    (2, 1, 0.9, 0.1, N),      # before the first update of experience 1
    (3, 1, 0.5, 0.7, N),
    (4, 1, 0.8, 0.9, N),      # t_1 = 4
    (4, 2, 0.8, 0.9, 0.0),
    (5, 2, 0.6, 0.3, 0.5),
    (6, 2, 0.7, 0.95, 0.95),  # t_2 = 6
]


@pytest.fixture
def curves():
    a = np.array(ROWS, dtype=float)
    return Curves(iteration=a[:, 0].astype(int), experience=a[:, 1].astype(int), accuracy=a[:, 2:], task_end=[2, 4, 6])


def test_min_acc_takes_each_finished_task_minimum_after_it_finished(curves):
    # task 0 after update 2: min(0.5, 0.8, 0.8, 0.6, 0.7) = 0.5; task 1 after update 4: min(0.3, 0.95) = 0.3
    assert min_acc(curves) == pytest.approx(0.4)


def test_wc_acc_mixes_current_task_and_min_acc(curves):
    assert wc_acc(curves) == pytest.approx(0.95 / 3 + (2 / 3) * 0.4)
    final_subset_acc = np.nanmean(curves.accuracy[-1])
    assert wc_acc(curves) <= final_subset_acc


def test_windowed_forgetting_and_plasticity_over_whole_series(curves):
    # largest drops: task0 0.9 -> 0.5, task1 0.9 -> 0.3, task2 none
    assert windowed_forgetting(curves, 10) == pytest.approx((0.4 + 0.6 + 0.0) / 3)
    # largest rises: task0 0.0 -> 0.9, task1 0.1 -> 0.95, task2 0.0 -> 0.95
    assert windowed_plasticity(curves, 10) == pytest.approx((0.9 + 0.85 + 0.95) / 3)


def test_window_limits_how_far_apart_the_two_points_may_be():
    a, every = np.array([1.0, 0.8, 0.6, 0.9]), np.arange(4)
    assert _largest_change_in_window(a, every, 2, -1) == pytest.approx(0.2)  # neighbours only
    assert _largest_change_in_window(a, every, 3, -1) == pytest.approx(0.4)  # 1.0 -> 0.6
    assert _largest_change_in_window(a, every, 2, +1) == pytest.approx(0.3)
    assert _largest_change_in_window(np.array([0.1, 0.2, 0.3]), every[:3], 10, -1) == 0.0  # never drops
    assert _largest_change_in_window(np.array([0.5]), every[:1], 10, -1) == 0.0


def test_windows_are_counted_in_steps_when_evaluations_have_gaps():
    # evaluated after steps 0, 1, 5, 20, 22: a window of w steps pairs points fewer than w steps apart
    a, iterations = np.array([1.0, 0.9, 0.5, 0.2, 0.6]), np.array([0, 1, 5, 20, 22])
    assert _largest_change_in_window(a, iterations, 5, -1) == pytest.approx(0.4)   # 0.9 (1) -> 0.5 (5)
    assert _largest_change_in_window(a, iterations, 6, -1) == pytest.approx(0.5)   # 1.0 (0) -> 0.5 (5)
    assert _largest_change_in_window(a, iterations, 20, -1) == pytest.approx(0.7)  # 0.9 (1) -> 0.2 (20)
    assert _largest_change_in_window(a, iterations, 21, -1) == pytest.approx(0.8)  # 1.0 (0) -> 0.2 (20)
    assert _largest_change_in_window(a, iterations, 3, +1) == pytest.approx(0.4)   # 0.2 (20) -> 0.6 (22)
    assert _largest_change_in_window(a, iterations, 2, +1) == 0.0  # no two points under 2 updates apart rise


def index_window_change(a, w, sign):
    """The evaluation-counted definition (De Lange et al.'s code), by brute force."""
    pairs = [sign * (a[n] - a[m]) for n in range(len(a)) for m in range(max(0, n - w + 1), n)]
    return max([0.0, *pairs])


def test_with_an_evaluation_after_every_update_steps_and_evaluations_agree():
    # Random curves as `every` records them: one evaluation per update, plus one before each
    # experience's first update at the same update count (a strategy may change the model there).
    rng = np.random.default_rng(0)
    for _ in range(30):
        rows, update = [], 0
        for k, n in enumerate(rng.integers(1, 15, size=4)):
            rows.append((update, k))
            for _ in range(n):
                update += 1
                rows.append((update, k))
        task_end = [max(u for u, e in rows if e == k) for k in range(4)]
        accuracy = np.where(np.array([e for _, e in rows])[:, None] >= np.arange(4), rng.random((len(rows), 4)), np.nan)
        c = Curves(np.array([u for u, _ in rows]), np.array([e for _, e in rows]), accuracy, task_end)
        for w in (1, 2, 3, 10, 100):
            expected = [index_window_change(c.accuracy[c.experience >= i, i], w, -1) for i in range(4)]
            assert windowed_forgetting(c, w) == pytest.approx(np.mean(expected))
            expected = [index_window_change(c.accuracy[c.experience >= i, i], w, +1) for i in range(4)]
            assert windowed_plasticity(c, w) == pytest.approx(np.mean(expected))


def test_lca_averages_first_beta_evaluations_while_learning(curves):
    # beta 2: task0 (0.0, 0.6), task1 (0.1, 0.7), task2 (0.0, 0.5)
    assert lca(curves, beta=2) == pytest.approx((0.3 + 0.4 + 0.25) / 3)
    assert lca(curves, beta=10) == pytest.approx((0.5 + 1.7 / 3 + 1.45 / 3) / 3)


def test_lca_counts_updates_not_evaluations():
    # one experience of 10 updates, evaluated before it and after updates 1, 2, 4 and 10
    a = np.array([(0, 0, 0.0), (1, 0, 0.2), (2, 0, 0.4), (4, 0, 0.6), (10, 0, 0.9)])
    c = Curves(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:], [10])
    assert lca(c, beta=3) == pytest.approx(0.2)         # updates 0, 1, 2
    assert lca(c, beta=5) == pytest.approx(0.3)         # update 4 too; not the 5th evaluation (update 10)
    assert lca(c, beta=11) == pytest.approx(2.1 / 5)


def test_stability_gap_and_recovery(curves):
    gap = stability_gap(curves)
    # boundary 1: task0 ref 0.9, min 0.5, end 0.8 -> SG 0.4, REC 0.3
    # boundary 2: task0 ref 0.8, min 0.6, end 0.7 -> SG 0.2, REC 0.1
    #             task1 ref 0.9, min 0.3, end 0.95 -> SG 0.6, REC 0.65
    assert gap["sg"] == pytest.approx((0.4 + (0.2 + 0.6) / 2) / 2)
    assert gap["rec"] == pytest.approx((0.3 + (0.1 + 0.65) / 2) / 2)
    assert gap["sg_norm"] == pytest.approx((0.4 / 0.9 + (0.2 / 0.8 + 0.6 / 0.9) / 2) / 2)
    assert gap["rec_norm"] == pytest.approx((0.3 / 0.9 + (0.1 / 0.8 + 0.65 / 0.9) / 2) / 2)


def test_recovery_time_is_censored_when_never_recovered(curves):
    # (1, task0) and (2, task0) never climb back within 0.01 of the reference; (2, task1) does at
    # update 6, two updates after experience 2 started at update 4.
    assert recovery_times(curves, eps=0.01) == [None, None, 2]
    m = continual_metrics(curves, windows=(10,), beta=2)
    assert m["recovery_iters"] == 2 and m["recovery_not_recovered"] == 2 and m["recovery_pairs"] == 3
    # a looser tolerance counts task0 at boundary 1 (0.8 >= 0.9 - 0.15) as recovered after 2 updates
    assert recovery_times(curves, eps=0.15)[0] == 2


def test_no_gap_means_zero_recovery_time():
    a = np.array([(0, 0, 0.5, N), (1, 0, 0.9, N), (1, 1, 0.9, 0.0), (2, 1, 0.95, 0.8)])
    c = Curves(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:], [1, 2])
    assert recovery_times(c) == [0]
    assert stability_gap(c)["sg"] == 0.0


def test_single_experience_edge_cases():
    a = np.array([(0, 0, 0.1), (1, 0, 0.6), (2, 0, 0.8)])
    c = Curves(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:], [2])
    assert min_acc(c) is None
    assert wc_acc(c) == pytest.approx(0.8)  # k = 1: the current task's accuracy
    m = continual_metrics(c)
    assert m["sg"] is None and m["recovery_iters"] is None and m["recovery_pairs"] == 0
    assert m["wf10"] == 0.0 and m["wp10"] == pytest.approx(0.7)


def test_zero_reference_gives_no_normalized_gap():
    a = np.array([(0, 0, 0.0, N), (1, 0, 0.0, N), (1, 1, 0.0, 0.1), (2, 1, 0.0, 0.9)])
    c = Curves(a[:, 0].astype(int), a[:, 1].astype(int), a[:, 2:], [1, 2])
    gap = stability_gap(c)
    assert gap["sg"] == 0.0 and gap["sg_norm"] is None


def test_unseen_task_evaluations_do_not_enter_metrics(curves):
    # Forward-transfer evaluations of tasks not yet trained must not change any metric.
    with_future = Curves(curves.iteration, curves.experience, curves.accuracy.copy(), curves.task_end)
    with_future.accuracy[0:3, 1] = 0.99
    with_future.accuracy[0:6, 2] = 0.99
    assert continual_metrics(with_future) == continual_metrics(curves)
