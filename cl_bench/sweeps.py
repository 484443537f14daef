"""Hydra callbacks around cl-bench's jobs.

- SweepReport (`cl-bench -m ...`): a job that fails records `status: failed` in its results.json
  and the sweep goes on; at the end the failed jobs are listed and the command exits non-zero.
  It reads the jobs' results.json files, so it works with every launcher (basic, joblib,
  submitit local or SLURM), whichever process ran the jobs.
- RunFolderGuard (single runs): a run folder holding another config's finished run is refused
  before Hydra rewrites the folder's `.hydra/*.yaml`, so the refused command leaves it untouched.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from cl_bench.errors import UserError, debugging, describe, exit_status
from cl_bench.results.run_folder import FINISHED, RESULTS, finished_run, read_results


def sweep_outcome(sweep_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(finished run folders, [(failed or unfinished run folder, why)]). A diverged run finished:
    divergence is a result of its setting, shown as such in leaderboards."""
    done, bad = [], []
    for path in sorted(Path(sweep_dir).rglob(RESULTS)):
        results = read_results(path.parent) or {"status": "unreadable results.json"}
        status = results.get("status")
        if status in FINISHED:
            done.append(path.parent)
        else:
            why = results.get("error") or status or "no status"
            bad.append((path.parent, why.splitlines()[-1] if why else str(status)))
    return done, bad


class SweepReport(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        done, bad = sweep_outcome(sweep_dir)
        diverged = [f for f in done if (read_results(f) or {}).get("status") == "diverged"]
        print(f"cl-bench: sweep {sweep_dir}: {len(done)} finished"
              f"{f' ({len(diverged)} diverged: no metrics)' if diverged else ''}, {len(bad)} failed", file=sys.stderr)
        for folder in diverged:
            print(f"cl-bench:   {folder}: diverged", file=sys.stderr)
        for folder, why in bad:
            print(f"cl-bench:   {folder}: {why}", file=sys.stderr)
        if bad:
            sys.exit(1)


class RunFolderGuard(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        from omegaconf import OmegaConf

        task = OmegaConf.to_container(config, resolve=False)
        task.pop("hydra", None)
        try:
            resolved = OmegaConf.to_container(OmegaConf.create(task), resolve=True)
            finished_run(Path(str(config.hydra.run.dir)), resolved)
        except UserError as exc:
            if debugging():
                raise
            print(describe(exc), file=sys.stderr)
            sys.exit(exit_status(exc))
        except Exception:
            return  # a config that does not even resolve: the run reports it in its own words
