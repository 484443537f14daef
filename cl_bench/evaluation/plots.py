"""The stability-gap picture: every task's accuracy against training iterations."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cl_bench.evaluation.stability import Curves  # noqa: E402


def plot_curves(curves: Curves, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=150)
    colors = plt.get_cmap("tab10" if curves.accuracy.shape[1] <= 10 else "tab20")
    for task in range(curves.accuracy.shape[1]):
        seen = (curves.experience >= task) & ~np.isnan(curves.accuracy[:, task])
        if seen.any():
            ax.plot(curves.iteration[seen], 100 * curves.accuracy[seen, task], lw=1.0,
                    color=colors(task % colors.N), label=f"task {task}")
    for boundary in curves.task_end[:-1]:
        ax.axvline(boundary, color="0.5", ls="--", lw=0.8)
    ax.set(xlabel="training iteration (optimizer updates)", ylabel="accuracy on evaluation subset (%)",
           ylim=(0, 101), xlim=(0, max(curves.task_end[-1], 1)), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=min(5, curves.accuracy.shape[1]))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
