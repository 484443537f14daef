"""SCoLe long streams: tasks drawn from a class pool, evaluation on every class after every
task, and group masking."""
import json

import pytest
import torch

from strategies.group_mask import GroupMaskPlugin
from tests.conftest import build_scenario, compose_config


def build(overrides, seed=0):
    cfg = compose_config(["scenario=scole_digits", *overrides]).scenario
    return build_scenario("scole_digits", cfg, None, seed)


def test_tasks_draw_classes_from_the_pool_and_test_sets_are_per_class():
    s = build(["scenario.n_tasks=50", "scenario.classes_per_task=3", "scenario.samples_per_class=7"])
    assert s.n_experiences == 50 and len(s.evaluation_sets) == 10 and s.evaluates_all_from_start
    for e in s.experiences:
        assert len(set(e.classes)) == 3 and torch.bincount(e.y_train, minlength=10)[e.classes].tolist() == [7, 7, 7]
    assert [ts.classes for ts in s.test_sets] == [[c] for c in range(10)]
    assert len(s.benchmark.test_stream) == 10


def test_skewed_and_explicit_class_weights():
    zipf = build(["scenario.n_tasks=400", "scenario.class_weights=zipf", "scenario.zipf_exponent=1.5"])
    counts = torch.bincount(torch.tensor([c for e in zipf.experiences for c in e.classes]), minlength=10)
    assert counts[0] > 2 * counts[9]
    only = build(["scenario.n_tasks=30", "scenario.class_weights=[1,1,1,0,0,0,0,0,0,0]"])
    assert {c for e in only.experiences for c in e.classes} == {0, 1, 2}


@pytest.mark.parametrize("overrides, message", [
    (["scenario.class_weights=skewed"], "scenario.class_weights must be uniform, zipf or a list of 10 weights"),
    (["scenario.class_weights=[1,1]"], "scenario.class_weights must be 10 non-negative weights"),
    (["scenario.classes_per_task=11"], "scenario.classes_per_task must be between 1 and the 10 classes"),
    (["scenario.n_tasks=0"], "scenario.n_tasks must be an integer >= 1, got 0"),
])
def test_bad_long_stream_settings_are_clear(overrides, message):
    with pytest.raises(ValueError, match=message):
        build(overrides)


def test_group_mask_masks_only_classes_absent_from_the_minibatch():
    class Strategy:
        mb_output = torch.zeros(4, 5)
        mb_y = torch.tensor([1, 3, 3, 1])

    s = Strategy()
    GroupMaskPlugin().after_forward(s)
    assert torch.isinf(s.mb_output[:, [0, 2, 4]]).all() and (s.mb_output[:, [1, 3]] == 0).all()
    loss = torch.nn.functional.cross_entropy(s.mb_output, s.mb_y)
    assert torch.isfinite(loss)


def test_plain_sgd_with_group_mask_accumulates_knowledge_on_a_long_stream(run_job, tmp_path):
    results = run_job(["scenario=scole_digits", "scenario.n_tasks=120", "strategy=naive", "train.epochs=1",
                       "+addons=group_mask", "eval.schedule=every", "eval.period=20", "eval.samples_per_task=30"], name="scole")
    R = torch.tensor(results["acc_matrix"])
    assert R.shape == (120, 10)
    per_task = R.mean(dim=1)
    # Two classes at a time, yet accuracy on all ten rises far above what one task can teach (20%).
    assert per_task[:5].mean() < 0.35 and per_task[-20:].mean() > 0.6
    assert (tmp_path / "scole" / "accuracy.png").is_file()
    c = results["continual_evaluation"]
    assert c["samples_per_task"] == [30] * 10 and "min_acc" not in results["metrics"]
    rows = (tmp_path / "scole" / "curves.csv").read_text().splitlines()[1:]
    assert {int(r.split(",")[2]) for r in rows} == set(range(10))  # every class evaluated from the start
    assert json.loads((tmp_path / "scole" / "results.json").read_text())["config"]["addons"]["group_mask"]["fill"] == "-inf"
