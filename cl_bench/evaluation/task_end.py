"""Task-end metrics from the accuracy matrix R, where R[i][j] is the accuracy on experience j
after training on experiences 0..i. Accuracies are fractions in [0, 1]."""
from __future__ import annotations

from typing import Sequence

Matrix = Sequence[Sequence[float]]


def average_accuracy(R: Matrix) -> float:
    """Mean accuracy over all experiences after the last training step."""
    return sum(R[-1]) / len(R[-1])


def forgetting(R: Matrix) -> float | None:
    """Mean over experiences j < T-1 of the best accuracy j had after being learned (rows j..T-2)
    minus its final accuracy (Chaudhry et al. 2018). None when no experience can be forgotten."""
    T = len(R)
    if T < 2 or len(R[0]) != T:
        return None
    drops = [max(R[i][j] for i in range(j, T - 1)) - R[-1][j] for j in range(T - 1)]
    return sum(drops) / len(drops)


def backward_transfer(R: Matrix) -> float | None:
    """Mean over j < T-1 of R[T-1][j] - R[j][j] (Lopez-Paz & Ranzato 2017); negative = forgetting."""
    T = len(R)
    if T < 2 or len(R[0]) != T:
        return None
    return sum(R[-1][j] - R[j][j] for j in range(T - 1)) / (T - 1)


def stream_accuracy(R: Matrix, test_sizes: Sequence[int]) -> float:
    """Accuracy over the whole test stream pooled, after the last training step: each experience
    weighs by its test-set size (Avalanche's Top1_Acc_Stream, what continual-learning-baselines
    reports). Equals `average_accuracy` when all test sets are the same size."""
    return sum(a * n for a, n in zip(R[-1], test_sizes)) / sum(test_sizes)


METRICS = ("acc", "forgetting", "bwt", "stream_acc")  # what task_end_metrics returns (with test sizes)


def task_end_metrics(R: Matrix, test_sizes: Sequence[int] | None = None) -> dict:
    metrics = {"acc": average_accuracy(R), "forgetting": forgetting(R), "bwt": backward_transfer(R)}
    if test_sizes is not None:
        metrics["stream_acc"] = stream_accuracy(R, test_sizes)
    return metrics
