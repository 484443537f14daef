"""A non-finite loss stops the run at once with status "diverged" and where it happened."""
import json

from tests.conftest import tiny


def test_non_finite_loss_stops_the_run_where_it_happens(run_job, tmp_path):
    results = run_job(tiny(["strategy=naive", "optimizer.lr=1e12"]), name="run")
    assert results["status"] == "diverged" and results["metrics"] == {}
    where = results["diverged_at"]
    assert where["experience"] == 0 and where["iteration"] < 10 and where["loss"] in ("nan", "inf")
    assert results["acc_matrix"] == []  # stopped inside the first experience: nothing reads as a result
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk["status"] == "diverged" and "non-finite training loss" in on_disk["error"]


def test_a_stable_run_is_not_flagged(run_job):
    assert run_job(tiny(["strategy=naive"]))["status"] == "completed"
