import pytest

from cl_bench.evaluation.task_end import average_accuracy, backward_transfer, forgetting, task_end_metrics

# R[i][j]: accuracy on experience j after training on 0..i.
R = [
    [0.9, 0.1, 0.0],
    [0.6, 0.8, 0.1],
    [0.5, 0.4, 0.7],
]


def test_average_accuracy_is_mean_of_last_row():
    assert average_accuracy(R) == pytest.approx((0.5 + 0.4 + 0.7) / 3)


def test_forgetting_uses_best_accuracy_after_learning():
    # task 0: best of rows 0..1 = 0.9, final 0.5 -> 0.4; task 1: best of row 1 = 0.8, final 0.4 -> 0.4
    assert forgetting(R) == pytest.approx(0.4)


def test_forgetting_ignores_accuracy_before_a_task_was_learned():
    # Task 1 scores high before being learned (row 0): that must not count as its best.
    R2 = [[0.9, 0.95], [0.9, 0.6]]
    assert forgetting(R2) == pytest.approx(0.0)


def test_bwt_is_final_minus_just_learned():
    assert backward_transfer(R) == pytest.approx(((0.5 - 0.9) + (0.4 - 0.8)) / 2)


def test_positive_backward_transfer_gives_zero_forgetting_and_positive_bwt():
    R2 = [[0.5, 0.0], [0.7, 0.9]]
    assert forgetting(R2) == pytest.approx(-0.2)  # improvement shows as negative forgetting
    assert backward_transfer(R2) == pytest.approx(0.2)


def test_single_row_or_single_task_has_no_forgetting():
    assert task_end_metrics([[0.9, 0.8, 0.7]]) == {"acc": pytest.approx(0.8), "forgetting": None, "bwt": None}
    assert task_end_metrics([[0.9]])["forgetting"] is None


def test_stream_accuracy_weighs_experiences_by_test_size():
    from cl_bench.evaluation.task_end import stream_accuracy

    R = [[1.0, 0.0], [0.5, 1.0]]
    assert stream_accuracy(R, [100, 300]) == pytest.approx((0.5 * 100 + 1.0 * 300) / 400)
    assert stream_accuracy(R, [7, 7]) == pytest.approx(average_accuracy(R))
    assert task_end_metrics(R, [100, 300])["stream_acc"] == pytest.approx(0.875)
