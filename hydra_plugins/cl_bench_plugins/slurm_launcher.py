"""`hydra/launcher=slurm` and `slurm_cpu`: hydra-submitit-launcher's SLURM launcher, with a failed
run failing its SLURM job.

In a sweep, cl-bench's task returns instead of raising when a run fails, so the sweep goes on
(results.json says `failed`, cl_bench/sweeps.py lists it and exits non-zero). Through submitit that
would leave the job COMPLETED in the cluster's own record (sacct, the job-completion log). Here the
job process exits 1 once submitit has delivered its result: the cluster says FAILED and the
launcher still collects every job. Preempted jobs are requeued by submitit (cl_bench/preemption.py).
"""
from __future__ import annotations

import atexit
import logging
import os
import sys
from pathlib import Path

from hydra_plugins.hydra_submitit_launcher import submitit_launcher


def _exit_failed() -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)  # atexit cannot otherwise change the status of a process that is exiting


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def __call__(self, *args, **kwargs):
        from cl_bench.results.run_folder import FINISHED, read_results

        job = super().__call__(*args, **kwargs)
        results = read_results(Path(str(job.hydra_cfg.hydra.runtime.output_dir))) or {}
        if results.get("status") not in FINISHED:
            atexit.register(_exit_failed)  # runs after submitit has written the job's result
        return job
