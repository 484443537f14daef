"""Sweeps (`cl-bench -m ...`): a job that fails records `status: failed` in its results.json and
the sweep goes on; at the end this Hydra callback lists the failed jobs and makes the command
exit non-zero. It reads the jobs' results.json files, so it works with every launcher (basic,
joblib, submitit local or SLURM), whichever process ran the jobs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def sweep_outcome(sweep_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(finished run folders, [(failed or unfinished run folder, why)]). A diverged run finished:
    divergence is a result of its setting, shown as such in leaderboards."""
    done, bad = [], []
    for path in sorted(Path(sweep_dir).rglob("results.json")):
        results = json.loads(path.read_text())
        status = results.get("status")
        if status in ("completed", "diverged"):
            done.append(path.parent)
        else:
            why = results.get("error") or status or "no status"
            bad.append((path.parent, why.splitlines()[-1] if why else str(status)))
    return done, bad


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        done, bad = sweep_outcome(sweep_dir)
        print(f"cl-bench: sweep {sweep_dir}: {len(done)} finished, {len(bad)} failed", file=sys.stderr)
        for folder, why in bad:
            print(f"cl-bench:   {folder}: {why}", file=sys.stderr)
        if bad:
            sys.exit(1)
