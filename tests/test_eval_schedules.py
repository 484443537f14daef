"""Evaluation schedules: where each evaluates, and that a sparse run records exactly the dense run's
points its schedule names (what benchmarks/eval_schedules.py relies on)."""
import numpy as np
import pytest

from cl_bench.evaluation.continual import load_curves
from cl_bench.evaluation.schedule import Schedule, budget_offsets, thin
from cl_bench.evaluation.stability import Curves, continual_metrics
from tests.conftest import tiny


@pytest.mark.parametrize("budget,span", [(20, 94), (20, 469), (7, 8), (30, 4690), (2, 50), (1, 50)])
def test_budget_places_its_evaluations_densely_after_the_switch_and_sparser_later(budget, span):
    offsets = sorted(budget_offsets(budget, span))
    assert len(offsets) == budget and offsets[-1] == span and offsets[0] == (1 if budget > 1 else span)
    gaps = np.diff(offsets)
    assert (gaps >= 1).all() and (np.diff(gaps) >= -1).all()  # never denser later (rounding aside)
    if budget >= 20:
        assert offsets[:4] == [1, 2, 3, 4]  # the first updates after a switch, where the gap opens


def test_a_budget_at_least_the_experience_evaluates_every_update():
    assert budget_offsets(100, 40) == frozenset(range(1, 41))


def test_boundary_dense_evaluates_each_early_update_then_every_period():
    s = Schedule("boundary_dense", dense_updates=5, sparse_period=10)
    assert [o for o in range(1, 41) if s.due(1000 + o, o, 40)] == [1, 2, 3, 4, 5, 10, 20, 30, 40]


def test_every_counts_updates_of_the_stream():
    s = Schedule("every", period=4)
    assert [u for u in range(10, 20) if s.due(u, u - 10, 10)] == [12, 16]


def read(run_dir) -> Curves:
    return load_curves(run_dir / "curves.csv")


@pytest.mark.parametrize("overrides,schedule", [
    (["eval.schedule=boundary_dense", "eval.dense_updates=3", "eval.sparse_period=5"],
     Schedule("boundary_dense", dense_updates=3, sparse_period=5)),
    (["eval.schedule=budget", "eval.budget=4"], Schedule("budget", budget=4)),
    (["eval.schedule=every", "eval.period=6"], Schedule("every", period=6)),
])
def test_a_sparse_run_records_the_dense_runs_points_its_schedule_names(overrides, schedule, run_job, tmp_path):
    common = tiny(["strategy=replay", "train.batch_size=16", "model.hidden_sizes=[32]"])
    dense_results = run_job([*common, "eval.schedule=every"], name="dense")
    sparse_results = run_job([*common, *overrides], name="sparse")
    dense, sparse = read(tmp_path / "dense"), read(tmp_path / "sparse")
    expected = thin(dense, schedule)
    assert sparse.iteration.tolist() == expected.iteration.tolist()
    assert sparse.experience.tolist() == expected.experience.tolist()
    np.testing.assert_allclose(sparse.accuracy, expected.accuracy, atol=1e-6)
    assert sparse_results["continual_evaluation"]["evaluations"] == len(expected.iteration) < len(dense.iteration)
    assert sparse.task_end == dense.task_end  # every schedule evaluates the model each experience ends with
    assert sparse_results["acc_matrix"] == dense_results["acc_matrix"]  # evaluating less changes no training
    metrics = continual_metrics(expected, windows=(10, 100))
    for key in ("min_acc", "wc_acc", "wf10", "lca10", "sg"):
        assert sparse_results["metrics"][key] == pytest.approx(metrics[key], abs=1e-5), key
