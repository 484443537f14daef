"""The compact table a run prints at the end: accuracy per test set after some experiences."""
from __future__ import annotations

import numpy as np

MAX_ROWS = 10
MAX_COLUMNS = 10


def format_summary(results: dict) -> str:
    R = results["acc_matrix"]
    metrics = results["metrics"]
    n_cols = len(R[0])
    shown_cols = min(n_cols, MAX_COLUMNS)
    more = f" +{n_cols - shown_cols} more" if n_cols > shown_cols else ""
    header = "after exp | " + " ".join(f"  T{j:<3}" for j in range(shown_cols)) + f"{more} |  avg"
    lines = [f"{results['scenario']['name']} / {results['strategy']} / seed {results['seed']}", header, "-" * len(header)]
    # Joint trains once: its only row is "after the last experience".
    first_row = results["scenario"].get("n_experiences", len(R)) - len(R)
    rows = np.unique(np.linspace(0, len(R) - 1, min(len(R), MAX_ROWS)).round().astype(int))
    for i in rows:
        cells = " ".join(f"{100 * a:6.1f}" for a in R[i][:shown_cols])
        lines.append(f"{first_row + i:>9} | {cells}{' ' * len(more)} | {100 * sum(R[i]) / n_cols:5.1f}")
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    extra = "".join(f"  {label} {fmt(metrics[key])}" for key, label in (("min_acc", "min-ACC"), ("wc_acc", "WC-ACC"))
                    if metrics.get(key) is not None)
    lines.append(
        f"final accuracy {fmt(metrics['acc'])}  forgetting {fmt(metrics['forgetting'])}  "
        f"BWT {fmt(metrics['bwt'])}{extra}  ({results['wall_time_s']:.1f} s, {results['status']})"
    )
    return "\n".join(lines)
