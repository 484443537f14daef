"""Rehearsal environments: the schedule's shape and budgets, and the stream built from it."""
import numpy as np
import pytest
import torch

from cl_bench.scenarios.rehearsal_schedule import KINDS, recency_weights, rehearsal_counts
from tests.conftest import build_scenario, compose_config

SIZES = [5000] * 10
BUDGETS = [{"scale": 3000}, {"per_phase_budget": 1000}, {"total_budget": 6000}]


@pytest.mark.parametrize("kind", ["power_law", "exponential", "uniform"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_counts_never_grow_with_recency(kind, budget):
    counts = rehearsal_counts(kind, SIZES, exponent=1.5, offset=2.0, decay=2.0, **budget)
    assert (np.triu(counts) == 0).all()  # only earlier tasks are rehearsed
    for t in range(2, len(SIZES)):
        older_to_newer = counts[t, :t]
        assert (np.diff(older_to_newer) >= 0).all(), (t, older_to_newer)
    assert counts.sum() > 0


@pytest.mark.parametrize("exponent, offset", [(1.0, 1.0), (2.5, 4.0), (5.6, 10.0)])
def test_power_law_log_log_slope_is_minus_the_exponent(exponent, offset):
    w = recency_weights("power_law", 30, exponent, offset)
    k = np.arange(1, 30)
    row = w[29, 29 - k]  # task 29 - k seen k phases ago
    slope = np.polyfit(np.log1p(k / offset), np.log(row), 1)[0]
    assert slope == pytest.approx(-exponent, abs=1e-9)
    counts = rehearsal_counts("power_law", [10**9] * 30, exponent=exponent, offset=offset, scale=1e8)
    int_slope = np.polyfit(np.log1p(k / offset), np.log(counts[29, 29 - k]), 1)[0]
    assert int_slope == pytest.approx(-exponent, rel=1e-3)


@pytest.mark.parametrize("kind", ["power_law", "exponential", "uniform"])
def test_budgets_are_respected_exactly(kind):
    per_phase = rehearsal_counts(kind, SIZES, per_phase_budget=997)
    assert per_phase[0].sum() == 0 and (per_phase[1:].sum(axis=1) == 997).all()
    total = rehearsal_counts(kind, SIZES, total_budget=12345)
    assert total.sum() == 12345


def test_none_and_full_references():
    assert rehearsal_counts("none", SIZES).sum() == 0
    full = rehearsal_counts("full", [10, 20, 30])
    assert full.tolist() == [[0, 0, 0], [10, 0, 0], [10, 20, 0]]


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "power_law", "scale": 1, "total_budget": 5}, "set exactly one of scale, per_phase_budget, total_budget"),
    ({"kind": "power_law"}, "set exactly one of"),
    ({"kind": "zipf", "scale": 1}, "schedule.kind must be one of power_law, exponential, uniform, none, full"),
    ({"kind": "uniform", "total_budget": -1}, "schedule.total_budget must be >= 0"),
    ({"kind": "uniform", "per_phase_budget": 6000}, "asks for 6000 samples of task 0 at phase 1, but task 0 has 5000"),
    ({"kind": "power_law", "offset": 0, "scale": 1}, "schedule.offset must be > 0"),
])
def test_bad_schedules_are_clear(kwargs, message):
    kind = kwargs.pop("kind")
    with pytest.raises(ValueError, match=message):
        rehearsal_counts(kind, SIZES, **kwargs)


def build(overrides, seed=0):
    cfg = compose_config(["scenario=power_law_rehearsal", "scenario@scenario.base=split_digits", *overrides]).scenario
    return build_scenario("power_law_rehearsal", cfg, None, seed)


def training_tensors(scenario, t):
    """What a strategy trains on at phase t: the Avalanche dataset's samples, in order."""
    dataset = scenario.benchmark.train_stream[t].dataset
    x, y, _ = next(iter(torch.utils.data.DataLoader(dataset, batch_size=len(dataset))))
    return x, y


@pytest.mark.parametrize("kind", KINDS)
def test_built_stream_holds_exactly_the_scheduled_samples(kind):
    scenario = build([f"scenario.schedule.kind={kind}", "scenario.schedule.total_budget=400"])
    base = build_scenario("split_digits", compose_config(["scenario=split_digits"]).scenario, None, 0)
    counts = np.array(scenario.describe()["rehearsal_counts"])
    for t, (exp, base_exp) in enumerate(zip(scenario.experiences, base.experiences)):
        x, y = training_tensors(scenario, t)
        # split_digits tasks have disjoint classes, so a sample's label names its source task.
        for i, source in enumerate(base.experiences[:t + 1]):
            from_i = int(torch.isin(y, torch.tensor(source.classes)).sum())
            assert from_i == (len(base_exp.y_train) if i == t else counts[t, i])
        assert len(y) == exp.n_train == len(base_exp.y_train) + counts[t].sum()
        assert scenario.describe()["train_sizes"][t] == len(y)
        assert torch.equal(exp.y_test, base_exp.y_test)  # evaluation is on the base tasks
        # rehearsed samples are real samples of the old tasks, with their labels
        for r, label in zip(x[len(base_exp.y_train):].flatten(1), y[len(base_exp.y_train):]):
            source = next(s for s in base.experiences[:t] if int(label) in s.classes)
            match = (source.x_train.flatten(1) == r).all(1)
            assert match.any() and (source.y_train[match] == label).all()
    if kind in ("power_law", "exponential", "uniform"):
        assert counts.sum() == 400


def test_rehearsed_samples_are_indices_not_copies():
    """The `full` schedule on 10-task Permuted-MNIST needed ~10 GB when every phase held copies."""
    scenario = build(["scenario.schedule.kind=full"])
    base = build_scenario("split_digits", compose_config(["scenario=split_digits"]).scenario, None, 0)
    for t, (exp, base_exp) in enumerate(zip(scenario.experiences, base.experiences)):
        assert exp.x_train.shape == base_exp.x_train.shape  # its own task only
        assert [(i, len(idx)) for i, idx in exp.rehearsal] == [(i, len(b.y_train)) for i, b in enumerate(base.experiences[:t])]
        assert len(scenario.benchmark.train_stream[t].dataset) == exp.n_train


def test_equal_total_budget_by_config_alone():
    totals = {kind: build([f"scenario.schedule.kind={kind}", "scenario.schedule.total_budget=500"]).describe()["rehearsed_samples"]
              for kind in ("power_law", "exponential", "uniform")}
    assert set(totals.values()) == {500}


def test_multi_head_base_is_rejected():
    with pytest.raises(ValueError, match="scenario.base: 'split_digits' is multi-head"):
        build(["scenario.base.task_labels=true"])


def test_a_budget_can_be_switched_from_the_command_line():
    from cl_bench.validation import validate

    overrides = ["+experiment=power_law_permuted_mnist"]
    reference = compose_config(overrides)
    validate(compose_config([*overrides, "scenario.schedule.total_budget=null", "scenario.schedule.per_phase_budget=6667"]),
             reference)
    with pytest.raises(ValueError, match="train.batch_size must be an integer, got None"):
        validate(compose_config([*overrides, "train.batch_size=null"]), reference)
    with pytest.raises(ValueError, match="set exactly one of scale, per_phase_budget, total_budget"):
        build(["scenario.schedule.total_budget=null"])
