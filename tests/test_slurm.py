"""Sweeps through a real SLURM controller (marker `slurm`: `.ci/run` starts the one-node cluster of
tests/cluster/slurm.sh and runs `pytest -m slurm` after the main suite). Jobs go through sbatch;
the controller's own record (its job-completion log) says what became of each; a job preempted in
the middle of an experience is requeued and ends with the results of an uninterrupted run."""
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slurm

JOBCOMP = Path("/var/log/cl-bench-slurm/jobcomp.log")  # tests/cluster/slurm.sh's JobCompLoc
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
SMALL = ["device=cpu", "train.epochs=1", "eval=off", "logger=none"]


@pytest.fixture(scope="module")
def cluster():
    """The cluster must be up: these tests fail, not skip, without it."""
    if shutil.which("sinfo") is None:
        pytest.fail("SLURM is not installed: run `bash tests/cluster/slurm.sh up` (root) before `pytest -m slurm`")
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not set(state.stdout.split()) & {"idle", "mixed", "allocated"}:
        pytest.fail(f"no SLURM node is up ({(state.stdout + state.stderr).strip()}): run `bash tests/cluster/slurm.sh up`")


def launch(sweep_dir: Path, *overrides: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "cl_bench", "-m", "hydra/launcher=slurm_cpu", *overrides, f"hydra.sweep.dir={sweep_dir}"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def slurm_jobs(sweep_dir: Path, n: int) -> list[str]:
    """The SLURM ids of a sweep's n jobs, in job order: submitit names a folder after each, `<array>_<task>`
    for a job array (n > 1), the job's id for a single job."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ids = [p.name for p in (sweep_dir / ".submitit").glob("*") if p.is_dir() and (n == 1 or "_" in p.name)]
        if len(ids) == n:
            return sorted(ids, key=lambda i: int(i.split("_")[-1]))
        time.sleep(0.2)
    raise AssertionError(f"not {n} SLURM jobs under {sweep_dir}/.submitit after 60 s")


def controller_record(ids: list[str]) -> list[list[str]]:
    """For each job id, the JobStates the controller logged for it, in order."""
    record: dict[str, list[str]] = {i: [] for i in ids}
    for line in JOBCOMP.read_text().splitlines() if JOBCOMP.exists() else []:
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}" if "ArrayJobId" in fields else fields.get("JobId")
        if key in record:
            record[key].append(fields["JobState"])
    return [record[i] for i in ids]


def wait_for_record(sweep_dir: Path, n: int, timeout: float = 60) -> list[list[str]]:
    """The controller's record of a sweep's jobs once each has ended (it writes a line as a job ends)."""
    ids = slurm_jobs(sweep_dir, n)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = controller_record(ids)
        if all(states and states[-1] in ENDED for states in record):
            return record
        time.sleep(0.5)
    raise AssertionError(f"the controller recorded {controller_record(ids)} for jobs {ids}")


def start_requeued_job_now(job: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """SLURM holds a requeued batch job for about two minutes (reason BeginTime); an operator may
    release it at once, as here, to keep the test short."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T %r"], capture_output=True, text=True).stdout.split()
        if state[:2] == ["PENDING", "BeginTime"]:
            subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"], check=True)
            return
        time.sleep(0.2)


def results(sweep_dir: Path) -> dict[int, dict]:
    return {int(p.parent.name): json.loads(p.read_text()) for p in sweep_dir.glob("*/results.json")}


def test_a_sweep_of_four_jobs_goes_through_the_controller_and_into_a_leaderboard(cluster, tmp_path):
    sweep = tmp_path / "sweep"
    proc = launch(sweep, *SMALL, "strategy=naive,replay", "seed=0,1")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    runs = results(sweep)
    assert sorted(runs) == [0, 1, 2, 3] and {r["status"] for r in runs.values()} == {"completed"}
    assert wait_for_record(sweep, 4) == [["COMPLETED"]] * 4
    board = subprocess.run([sys.executable, "-m", "cl_bench.results.leaderboard", str(sweep), "--out", str(tmp_path / "board"),
                            "--metrics", "acc,forgetting"],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert board.returncode == 0, board.stderr
    table = "\n".join(p.read_text() for p in (tmp_path / "board").glob("*.md"))
    assert "naive" in table and "replay" in table and "| 2 |" in table.replace("|  2 |", "| 2 |")  # 2 seeds a row


def test_a_failed_job_is_failed_in_its_results_and_the_controller_and_the_others_complete(cluster, tmp_path):
    # 3 experiences do not divide digits' 10 classes: job 0 fails before training, job 1 runs.
    sweep = tmp_path / "sweep"
    proc = launch(sweep, *SMALL, "strategy=naive", "scenario.n_experiences=3,5")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, out  # the sweep says a job failed
    assert "1 finished, 1 failed" in out and "scenario.n_experiences must divide the 10 classes" in out
    runs = results(sweep)
    assert runs[0]["status"] == "failed" and runs[1]["status"] == "completed"
    assert wait_for_record(sweep, 2) == [["FAILED"], ["COMPLETED"]]


def test_a_job_preempted_mid_experience_is_requeued_and_ends_as_an_uninterrupted_run(cluster, tmp_path):
    overrides = ["device=cpu", "logger=none", "strategy=replay", "train.epochs=40", "seed=7"]
    reference = subprocess.run([sys.executable, "-m", "cl_bench", f"hydra.run.dir={tmp_path / 'reference'}", *overrides],
                               cwd=REPO, capture_output=True, text=True, timeout=600)
    assert reference.returncode == 0, reference.stderr
    sweep = tmp_path / "sweep"
    proc = launch(sweep, *overrides)
    (job,) = slurm_jobs(sweep, 1)
    progress = sweep / "0" / "progress.jsonl"
    deadline = time.monotonic() + 300
    while not (progress.exists() and progress.read_text().strip()):  # the first experience is done
        assert time.monotonic() < deadline and proc.poll() is None, "the job never finished an experience"
        time.sleep(0.05)
    time.sleep(0.3)  # inside the second one (about 1 s each)
    subprocess.run(["scancel", f"--signal={signal.SIGUSR2.name[3:]}", job], check=True)  # what SLURM sends before preempting
    start_requeued_job_now(job, proc)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    run = results(sweep)[0]
    assert run["status"] == "completed" and len(run["resumed_at_update"]) == 1
    a = json.loads((tmp_path / "reference" / "results.json").read_text())
    assert run["acc_matrix"] == a["acc_matrix"] and run["metrics"] == a["metrics"]
    assert (sweep / "0" / "curves.csv").read_text() == (tmp_path / "reference" / "curves.csv").read_text()
    log = "\n".join(p.read_text() for p in (sweep / ".submitit").glob(f"{job}/*_log.*"))
    assert "Requeued" in log or "requeue" in log.lower(), log[-2000:]
    (states,) = wait_for_record(sweep, 1)
    assert states == ["PENDING", "COMPLETED"], states  # requeued once (logged as it went back to the queue), then completed
