"""The continual-evaluation plugin: protocol, outputs, and that it never changes training."""
import csv
import json

import numpy as np
import pytest
import torch

from cl_bench.evaluation.continual import ContinualEvaluationPlugin
from cl_bench.registry import list_strategies
from tests.conftest import build_scenario, on_default_stream, tiny

METRIC_KEYS = ("min_acc", "wc_acc", "wf10", "wf100", "wp10", "wp100", "lca10", "sg", "rec", "recovery_iters")


def final_weights(run_dir):
    return torch.load(run_dir / "model.pt")


@pytest.mark.parametrize("strategy", list_strategies())
def test_continual_evaluation_does_not_change_training(strategy, run_job, tmp_path):
    overrides = tiny([*on_default_stream(strategy), "model.hidden_sizes=[32]", "seed=5"])
    with_eval = run_job([*overrides, "eval=continual"], name="with")
    without = run_job([*overrides, "eval=off"], name="without")
    a, b = final_weights(tmp_path / "with"), final_weights(tmp_path / "without")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert with_eval["acc_matrix"] == without["acc_matrix"]
    assert all(k in with_eval["metrics"] for k in METRIC_KEYS)
    assert "min_acc" not in without["metrics"]


def test_resampling_subsets_does_not_change_training_either(run_job, tmp_path):
    overrides = tiny(["strategy=replay", "model.hidden_sizes=[32]"])
    run_job([*overrides, "eval.resample_each_eval=true", "eval.samples_per_task=20"], name="resample")
    run_job([*overrides, "eval=off"], name="off")
    a, b = final_weights(tmp_path / "resample"), final_weights(tmp_path / "off")
    assert all(torch.equal(a[k], b[k]) for k in a)


def read_curves(run_dir):
    with open(run_dir / "curves.csv") as f:
        return [(int(r["iteration"]), int(r["experience"]), int(r["task"]), float(r["accuracy"])) for r in csv.DictReader(f)]


def test_evaluates_seen_tasks_after_every_update_and_before_each_experience(run_job, tmp_path):
    results = run_job(tiny(["strategy=naive", "train.batch_size=128"]))
    rows = read_curves(tmp_path / "run")
    # 2 batches of <=128 per experience of ~250 samples, 1 epoch: 2 updates per experience
    updates_per_exp = [-(-n // 128) for n in results["scenario"]["train_sizes"]]
    evaluations = sorted({(it, exp) for it, exp, _, _ in rows})
    assert len(evaluations) == sum(updates_per_exp) + 5 == results["continual_evaluation"]["evaluations"]
    for it, exp, task, _ in rows:
        assert task <= exp  # seen tasks only
    # the evaluation before experience k's first update sits at t_{k-1} and covers tasks 0..k
    starts = np.cumsum([0, *updates_per_exp])[:-1]
    for k, start in enumerate(starts):
        assert sorted(t for it, exp, t, _ in rows if (it, exp) == (start, k)) == list(range(k + 1))
    assert (tmp_path / "run" / "curves.png").stat().st_size > 10_000


def test_period_and_unseen_tasks(run_job, tmp_path):
    run_job(tiny(["strategy=naive", "train.batch_size=16", "eval.schedule=every", "eval.period=4", "eval.include_unseen=true"]))
    rows = read_curves(tmp_path / "run")
    for k in range(5):
        iterations = sorted({it for it, exp, *_ in rows if exp == k})
        # the first is the evaluation before the experience's first update; the rest every 4 updates
        assert iterations[1:] and all(it % 4 == 0 for it in iterations[1:])
        assert iterations[1] - iterations[0] <= 4
    assert {t for it, exp, t, _ in rows if exp == 0} == set(range(5))  # future tasks evaluated too


def test_full_split_matches_task_end_evaluation(run_job, tmp_path):
    results = run_job(tiny(["strategy=replay", "eval.samples_per_task=-1"]))
    rows = read_curves(tmp_path / "run")
    last_iteration = max(r[0] for r in rows)
    final = {t: a for it, exp, t, a in rows if it == last_iteration and exp == 4}
    assert [final[t] for t in range(5)] == pytest.approx(results["acc_matrix"][-1], abs=1e-6)
    assert results["continual_evaluation"]["samples_per_task"] == results["scenario"]["test_sizes"]


def test_subsets_are_fixed_seeded_and_sized(run_job):
    from cl_bench.data import load_dataset
    from tests.conftest import compose_config

    cfg = compose_config(["scenario=permuted_digits"])
    scenario = build_scenario("permuted_digits", cfg.scenario, None, 0)
    make = lambda seed, n: ContinualEvaluationPlugin(scenario.experiences, torch.device("cpu"), samples_per_task=n, seed=seed)  # noqa: E731
    a, b, c = make(1, 100), make(1, 100), make(2, 100)
    assert a.sizes == [100] * 5 and torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert make(1, -1).sizes == [len(load_dataset("digits").y_test)] * 5
    assert make(1, 10_000).sizes == [540] * 5  # capped at the split size


def test_evaluation_restores_every_module_mode():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 2))
    model.train()
    model[2].eval()  # a strategy may freeze some modules
    from cl_bench.scenarios.base import Experience

    exp = Experience(torch.randn(10, 1, 2, 2), torch.randint(0, 2, (10,)), torch.randn(30, 1, 2, 2), torch.randint(0, 2, (30,)))
    plugin = ContinualEvaluationPlugin([exp], torch.device("cpu"), samples_per_task=-1)
    before = [m.training for m in model.modules()]
    acc = plugin.evaluate(model)
    assert [m.training for m in model.modules()] == before
    expected = (model.eval()(exp.x_test).argmax(1) == exp.y_test).float().mean()
    assert acc.item() == pytest.approx(expected.item())


def test_bad_eval_settings_are_rejected(run_job):
    with pytest.raises(ValueError, match="eval.period must be an integer >= 1"):
        run_job(["eval.period=0"])
    with pytest.raises(ValueError, match="eval.samples_per_task must be -1"):
        run_job(["eval.samples_per_task=0"])


def test_results_record_protocol(run_job):
    results = run_job(tiny(["strategy=naive"]))
    protocol = results["continual_evaluation"]
    assert protocol["period"] == 1 and protocol["subset_seed"] == 0 and protocol["windows"] == [10, 100]
    json.dumps(results, allow_nan=False)  # what results.json holds is strict JSON


# Python-level ways to read a tensor back to the host, and ops whose output size depends on the data.
HOST_READS = [(torch.Tensor, name) for name in ("item", "cpu", "tolist", "numpy", "__bool__", "__int__", "__float__")] + \
    [(torch, name) for name in ("unique", "nonzero", "bincount", "masked_select")]


@pytest.mark.parametrize("task_labels", ["false", "true"])
def test_evaluations_never_wait_for_the_device_until_the_experience_ends(task_labels, monkeypatch):
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from cl_bench.registry import MODELS
    from tests.conftest import compose_config

    cfg = compose_config([f"scenario.task_labels={task_labels}"])
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", OmegaConf.create({"hidden_sizes": [16]}), scenario.n_classes, scenario.input_shape,
                         scenario.n_heads)
    plugin = ContinualEvaluationPlugin(scenario.experiences, torch.device("cpu"), samples_per_task=50)
    strategy = SimpleNamespace(model=model, dataloader=range(4), train_epochs=1)
    calls = []
    for owner, name in HOST_READS:
        original = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *a, _f=original, _n=name, **k: (calls.append(_n), _f(*a, **k))[1])
    for k in range(3):  # three experiences, evaluated before their first update and after each of 4
        plugin.before_training_exp(strategy)
        for _ in range(4):
            plugin.after_training_iteration(strategy)
        assert calls == [], f"experience {k}: host reads {calls}"
        plugin.after_training_exp(strategy)  # the one sync of an experience: its results, at once
        assert calls.count("cpu") == 1 and set(calls) <= {"cpu", "numpy"}, calls
        calls.clear()
    monkeypatch.undo()
    assert [len(r[2][~np.isnan(r[2])]) for r in plugin.rows] == [1] * 5 + [2] * 5 + [3] * 5
