"""Loggers: W&B (offline, read back from the run folder), CSV, none; trackers never fail a run."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cl_bench.tracking.base import SafeTrackers, Tracker
from tests.conftest import tiny


def wandb_records(run_dir: Path) -> dict:
    """The records of a run folder's one offline W&B run."""
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    return wandb_file_records(path)


def wandb_file_records(path: Path) -> dict:
    """Read an offline run's .wandb file: a ':W&B' header, then LevelDB-log framed protobuf records."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    out = {"history": [], "config": {}, "summary": {}, "run": None, "exit": None}
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # block trailer padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind not in (1, 4):
            continue
        record = pb.Record()
        record.ParseFromString(pending)
        which = record.WhichOneof("record_type")
        if which == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif which == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif which == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update})
        elif which == "run":  # the initial config travels with the run record
            out["run"] = record.run
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif which == "exit":
            out["exit"] = record.exit.exit_code
    return out


def finished_wandb_records(run_dir: Path, timeout: float = 20) -> dict:
    """The records once the exit record is on disk: wandb's writer is a separate process, and on a
    loaded machine its last records can land a moment after `finish()` returns."""
    deadline = time.monotonic() + timeout
    records = wandb_records(run_dir)
    while records["exit"] is None and time.monotonic() < deadline:
        time.sleep(0.2)
        records = wandb_records(run_dir)
    return records


def test_wandb_offline_run_holds_config_curves_task_end_summary_and_plot(run_job, tmp_path):
    results = run_job(tiny(["logger=[wandb,csv]", "logger.wandb.tags=[smoke]"]), name="run")
    rec = finished_wandb_records(tmp_path / "run")
    assert rec["config"]["strategy"]["name"] == "replay" and rec["config"]["setting"] == "defaults"
    assert list(rec["run"].tags) == ["smoke"] and rec["exit"] == 0
    curves = [h for h in rec["history"] if "iteration" in h]
    assert len(curves) == results["continual_evaluation"]["evaluations"]
    assert curves[0]["iteration"] == 0 and "continual/task_0" in curves[0] and "continual/task_1" not in curves[0]
    assert "continual/task_4" in curves[-1]
    task_end = [h for h in rec["history"] if "experience" in h]
    assert [h["experience"] for h in task_end] == [0, 1, 2, 3, 4]
    assert task_end[-1]["task_end/task_4"] == pytest.approx(results["acc_matrix"][-1][4])
    assert rec["summary"]["acc"] == pytest.approx(results["metrics"]["acc"])
    assert rec["summary"]["min_acc"] == pytest.approx(results["metrics"]["min_acc"])
    assert any(h.get("plots/stability_gap/_type") == "image-file" for h in rec["history"])
    assert list((tmp_path / "run").glob("wandb/offline-run-*/files/media/images/plots/stability_gap*.png"))


def test_wandb_logs_the_learning_rate_of_every_update(run_job, tmp_path):
    run_job(tiny(["logger=wandb", "eval=off", "schedule=linear"]), name="run")
    rec = finished_wandb_records(tmp_path / "run")
    logged = [(h["update"], h["train/experience"], h["train/lr"]) for h in rec["history"] if "train/lr" in h]
    with open(tmp_path / "run" / "lr.csv") as f:
        written = [(int(u), int(e), float(lr)) for u, e, lr in (line.strip().split(",") for line in list(f)[1:])]
    assert len(logged) == len(written) > 5 and [u for u, _, _ in logged] == list(range(len(written)))
    assert [(u, e) for u, e, _ in logged] == [(u, e) for u, e, _ in written]
    assert [lr for _, _, lr in logged] == pytest.approx([lr for _, _, lr in written], rel=1e-6)
    assert len({lr for _, _, lr in logged}) > 2  # a decay, not one constant


def test_a_failing_run_still_finishes_its_wandb_run(run_job, tmp_path):
    with pytest.raises(ValueError, match="scenario.n_experiences must divide"):
        run_job(["logger=wandb", "scenario.n_experiences=3"], name="bad")
    assert finished_wandb_records(tmp_path / "bad")["exit"] == 1
    assert json.loads((tmp_path / "bad" / "results.json").read_text())["status"] == "failed"


def test_csv_and_none_loggers(run_job, tmp_path):
    run_job(tiny(["logger=csv"]), name="csv")
    rows = (tmp_path / "csv" / "task_end.csv").read_text().splitlines()
    assert rows[0] == "experience,task,accuracy" and len(rows) == 1 + 5 * 5
    assert "acc," in (tmp_path / "csv" / "summary.csv").read_text()
    run_job(tiny(["logger=none"]), name="none")
    assert not (tmp_path / "none" / "task_end.csv").exists() and not (tmp_path / "none" / "wandb").exists()


def test_bad_wandb_mode_is_clear(run_job):
    with pytest.raises(ValueError, match="logger.wandb.mode must be one of online, offline, disabled, got 'cloud'"):
        run_job(["logger=wandb", "logger.wandb.mode=cloud"])


def test_a_broken_tracker_is_dropped_and_the_run_goes_on(capsys):
    class Broken(Tracker):
        name = "broken"
        finished = None

        def log_experience(self, *args):
            raise ConnectionError("server unreachable\nmore detail")

        def finish(self, failed):
            Broken.finished = failed

    trackers = SafeTrackers([Broken()])
    trackers.log_experience(0, [], [0.5])
    trackers.log_summary({}, {})  # no longer called on the dropped tracker
    assert trackers.trackers == [] and Broken.finished is True
    assert capsys.readouterr().err.strip() == (
        "cl-bench: warning: logger 'broken' stopped (log_experience: server unreachable); the run goes on")


def test_sweep_jobs_share_a_wandb_group_and_name_their_setting(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "cl_bench", "-m", "device=cpu", "logger=wandb", "strategy=naive",
         "train.epochs=1", "eval=off", "seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    runs = [wandb_records(tmp_path / "sweep" / str(i))["run"] for i in (0, 1)]
    assert runs[0].run_group == runs[1].run_group == f"{tmp_path.name}_sweep"
    assert [r.display_name for r in runs] == ["eval=off strategy=naive train.epochs=1 seed=0",
                                              "eval=off strategy=naive train.epochs=1 seed=1"]


def test_online_wandb_without_network_or_valid_key_never_fails_the_run(run_job, tmp_path, monkeypatch, capsys):
    # A syntactically valid but fake key: offline machines time out, online ones are refused.
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    results = run_job(tiny(["logger=wandb", "logger.wandb.mode=online", "logger.wandb.init_timeout=5", "eval=off"]))
    assert results["status"] == "completed"
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("cl-bench: warning:")]
    assert len(warning) == 1 and warning[0].startswith("cl-bench: warning: logger 'wandb' stopped (start: ")
