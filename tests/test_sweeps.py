"""Sweeps beyond one process: joblib on local cores and submitit_local run for real; a failed
job is recorded and reported while the other jobs' results are kept; the SLURM preset composes."""
import json
import subprocess
import sys

from tests.conftest import compose_config


def sweep(tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, "-m", "cl_bench", "-m", "device=cpu", "train.epochs=1", "eval=off", "logger=none",
         *overrides, f"hydra.sweep.dir={tmp_path}/sweep"],
        capture_output=True, text=True, timeout=600)


def statuses(tmp_path) -> dict:
    return {p.parent.name: json.loads(p.read_text())["status"] for p in (tmp_path / "sweep").glob("*/results.json")}


def test_a_failed_job_does_not_lose_the_others(tmp_path):
    # n_experiences=3 does not divide 10 classes: job 0 fails, jobs 1 and 2 must still run.
    proc = sweep(tmp_path, "scenario.n_experiences=3,5,2")
    assert proc.returncode == 1
    assert statuses(tmp_path) == {"0": "failed", "1": "completed", "2": "completed"}
    err = proc.stderr.strip().splitlines()
    assert f"cl-bench: sweep {tmp_path}/sweep: 2 finished, 1 failed" in err
    assert any(line.endswith("scenario.n_experiences must divide the 10 classes of digits, got 3") for line in err)


def test_joblib_runs_jobs_in_parallel_processes(tmp_path):
    proc = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "strategy=naive,ewc", "scenario.n_experiences=3,5")
    assert proc.returncode == 1, proc.stderr  # the two n_experiences=3 jobs fail, the others complete
    assert sorted(statuses(tmp_path).values()) == ["completed", "completed", "failed", "failed"]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr


def test_submitit_local_runs_a_tiny_sweep(tmp_path):
    proc = sweep(tmp_path, "hydra/launcher=submitit_local", "strategy=naive,replay")
    assert proc.returncode == 0, proc.stderr
    assert statuses(tmp_path) == {"0": "completed", "1": "completed"}
    assert (tmp_path / "sweep" / ".submitit").is_dir()


def test_slurm_preset_asks_for_a_gpu_per_job():
    from hydra import compose, initialize_config_dir

    from cl_bench.cli import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        launcher = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1 and launcher.timeout_min > 0
    assert compose_config([]).get("logger") is not None


def test_a_diverging_job_stops_early_and_the_sweep_goes_on(tmp_path):
    proc = sweep(tmp_path, "optimizer.lr=0.01,1e12", "strategy=naive")
    assert proc.returncode == 0, proc.stderr  # divergence is a result, not a failure
    assert statuses(tmp_path) == {"0": "completed", "1": "diverged"}
    results = json.loads((tmp_path / "sweep" / "1" / "results.json").read_text())
    assert results["diverged_at"]["experience"] == 0 and results["metrics"] == {}
    assert "cl-bench: diverged: non-finite training loss" in proc.stderr
    assert f"cl-bench: sweep {tmp_path}/sweep: 2 finished (1 diverged: no metrics), 0 failed" in proc.stderr
    assert f"cl-bench:   {tmp_path}/sweep/1: diverged" in proc.stderr
