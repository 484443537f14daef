"""The short table a run prints at the end."""
from __future__ import annotations


def format_summary(results: dict) -> str:
    R = results["acc_matrix"]
    metrics = results["metrics"]
    n_tasks = len(R[0])
    header = "after exp | " + " ".join(f"  T{j:<3}" for j in range(n_tasks)) + " |  avg"
    lines = [f"{results['scenario']['name']} / {results['strategy']} / seed {results['seed']}", header, "-" * len(header)]
    first_row = n_tasks - len(R)  # joint trains once: its only row is "after the last experience"
    for i, row in enumerate(R):
        cells = " ".join(f"{100 * a:6.1f}" for a in row)
        lines.append(f"{first_row + i:>9} | {cells} | {100 * sum(row) / len(row):5.1f}")
    fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines.append(
        f"final accuracy {fmt(metrics['acc'])}  forgetting {fmt(metrics['forgetting'])}  "
        f"BWT {fmt(metrics['bwt'])}  ({results['wall_time_s']:.1f} s)"
    )
    return "\n".join(lines)
