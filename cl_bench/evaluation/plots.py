"""The stability-gap picture: every task's accuracy against training iterations."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cl_bench.evaluation.stability import Curves  # noqa: E402


def plot_curves(curves: Curves, path: Path, title: str, all_seen: bool = False, learning_rates=None) -> None:
    """`learning_rates`: (update, experience, lr) rows; when given, drawn in a second panel below."""
    if learning_rates:
        fig, (ax, lr_ax) = plt.subplots(2, 1, figsize=(8, 5.6), dpi=150, sharex=True, height_ratios=(3, 1))
    else:
        fig, ax = plt.subplots(figsize=(8, 4.2), dpi=150)
    colors = plt.get_cmap("tab10" if curves.accuracy.shape[1] <= 10 else "tab20")
    for task in range(curves.accuracy.shape[1]):
        seen = ~np.isnan(curves.accuracy[:, task])
        if not all_seen:  # a task's curve starts when it is first trained on
            seen &= curves.experience >= task
        if seen.any():
            ax.plot(curves.iteration[seen], 100 * curves.accuracy[seen, task], lw=1.0,
                    color=colors(task % colors.N), label=f"task {task}")
    for boundary in curves.task_end[:-1]:
        ax.axvline(boundary, color="0.5", ls="--", lw=0.8)
    ax.set(xlabel="training iteration (optimizer updates)", ylabel="accuracy on evaluation subset (%)",
           ylim=(0, 101), xlim=(0, max(curves.task_end[-1], 1)), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=min(5, curves.accuracy.shape[1]))
    if learning_rates:
        # Row u holds the rate of update u, which curves.csv's iteration u + 1 follows.
        lr_ax.plot([u + 1 for u, _, _ in learning_rates], [lr for _, _, lr in learning_rates], lw=1.0, color="0.2")
        for boundary in curves.task_end[:-1]:
            lr_ax.axvline(boundary, color="0.5", ls="--", lw=0.8)
        lr_ax.set(xlabel="training iteration (optimizer updates)", ylabel="learning rate")
        ax.set_xlabel("")
        lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_accuracy_over_experiences(acc_matrix, path: Path, title: str) -> None:
    """Mean accuracy over all test sets after every experience (long streams: does it rise?)."""
    acc = 100 * np.asarray(acc_matrix, dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=150)
    x = np.arange(1, len(acc) + 1)
    ax.plot(x, acc.mean(axis=1), color="k", lw=1.5, label="mean over test sets")
    ax.fill_between(x, acc.min(axis=1), acc.max(axis=1), color="0.8", label="min to max test set")
    ax.set(xlabel="experiences trained", ylabel="accuracy (%)", ylim=(0, 101), xlim=(1, max(len(acc), 2)), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
