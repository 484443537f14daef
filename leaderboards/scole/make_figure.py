"""Accuracy on all classes after every task, mean ± std over seeds, one line per sweep folder.

    python leaderboards/scole/make_figure.py RUNS_PLAIN RUNS_MASKED --labels "SGD" "SGD + group mask" \
        --out leaderboards/scole/accuracy_over_tasks.png
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("dirs", nargs="+", type=Path)
parser.add_argument("--labels", nargs="+", required=True)
parser.add_argument("--out", type=Path, required=True)
args = parser.parse_args()

fig, ax = plt.subplots(figsize=(8, 4.2), dpi=150)
for folder, label in zip(args.dirs, args.labels):
    runs = [json.loads(p.read_text()) for p in sorted(folder.rglob("results.json"))]
    acc = 100 * np.array([np.mean(r["acc_matrix"], axis=1) for r in runs if r["status"] == "completed"])
    x = np.arange(1, acc.shape[1] + 1)
    ax.plot(x, acc.mean(0), lw=1.2, label=f"{label} ({len(acc)} seeds)")
    ax.fill_between(x, acc.mean(0) - acc.std(0), acc.mean(0) + acc.std(0), alpha=0.25)
    print(f"{label}: after task 1 {acc[:, 0].mean():.1f}, 10 {acc[:, 9].mean():.1f}, 100 {acc[:, 99].mean():.1f}, "
          f"last {acc[:, -1].mean():.1f} +- {acc[:, -1].std(ddof=1):.1f}, mean of last 50 {acc[:, -50:].mean():.1f}")
ax.axhline(20, color="0.5", ls=":", lw=0.8)  # a perfect model of one 2-class task alone
ax.set(xlabel="tasks trained", ylabel="accuracy on all 10 classes (%)", ylim=(0, 100), xlim=(1, acc.shape[1]))
ax.grid(alpha=0.3)
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()
fig.savefig(args.out)
