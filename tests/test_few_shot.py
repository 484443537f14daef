"""Few-shot continual scenarios: FSCIL sessions, CFSL tasks with and without re-occurring
classes, and the Omniglot / CIFAR-100 loaders on fake files in torchvision's layout."""
import pytest
import torch

from cl_bench.data import load_dataset
from cl_bench.registry import list_strategies
from cl_bench.scenarios.class_incremental import class_order
from cl_bench.scenarios.few_shot import ShotSampler
from tests.conftest import build_scenario, compose_config, supports, tiny


def build(name, root=None, overrides=(), seed=0):
    cfg = compose_config([f"scenario={name}", *overrides])
    return build_scenario(name, cfg.scenario, root, seed, verify_checksums=cfg.data.verify_checksums)


def test_fscil_base_session_then_n_way_k_shot_sessions():
    s = build("fscil_digits", overrides=["scenario.base_classes=4", "scenario.n_way=3", "scenario.k_shot=2"])
    digits = load_dataset("digits")
    base, *sessions = s.experiences
    assert len(sessions) == 2 and s.n_classes == 10
    assert base.classes == [0, 1, 2, 3] and len(base.y_train) == int(torch.isin(digits.y_train, torch.arange(4)).sum())
    for session in sessions:
        assert len(session.classes) == 3 and len(session.y_train) == 3 * 2
        assert torch.bincount(session.y_train).tolist().count(2) == 3  # exactly k shots of each class
    # Evaluation covers every test sample of each session's classes; labels follow appearance order.
    assert sum(len(e.y_test) for e in s.experiences) == len(digits.y_test)
    assert sorted(torch.cat([e.y_test for e in s.experiences]).unique().tolist()) == list(range(10))


def test_fscil_shots_are_seeded():
    a, b = build("fscil_digits", seed=1), build("fscil_digits", seed=1)
    c = build("fscil_digits", seed=2)
    assert torch.equal(a.experiences[1].x_train, b.experiences[1].x_train)
    assert not torch.equal(a.experiences[1].x_train, c.experiences[1].x_train)


def test_cfsl_disjoint_tasks_and_repeated_classes_with_new_instances():
    disjoint = build("cfsl_digits")
    classes = [c for e in disjoint.experiences for c in e.classes]
    assert len(classes) == len(set(classes)) == 10
    assert all(len(e.y_train) == 2 * 5 for e in disjoint.experiences)

    repeated = build("cfsl_digits", overrides=["scenario.repeat_classes=true", "scenario.n_tasks=30", "scenario.pool_classes=4"])
    drawn = [c for e in repeated.experiences for c in e.classes]
    pool = class_order(10, None, True, 0)[:4]  # the seeded order's first pool_classes classes
    assert set(drawn) == set(pool)
    assert len(drawn) > len(set(drawn))  # classes come back
    assert repeated.n_classes == 4  # one output per class that appears


def test_shot_sampler_never_hands_out_a_sample_twice():
    y = torch.arange(40) % 4
    sampler = ShotSampler(y, torch.Generator().manual_seed(0))
    taken = torch.cat([sampler.take(c, 3) for _ in range(3) for c in range(4)])
    assert len(taken.unique()) == len(taken) == 36
    assert all(y[sampler.take(c, 1)].item() == c for c in range(4))
    with pytest.raises(ValueError, match="scenario.k_shot: class 0 has 10 training samples, the stream needs 13"):
        sampler.take(0, 3)


@pytest.mark.parametrize("overrides, message", [
    (["scenario=fscil_digits", "scenario.n_sessions=3"], "base_classes \\+ n_way \\* n_sessions = 12 exceeds the 10 classes"),
    (["scenario=cfsl_digits", "scenario.n_tasks=6"], "n_tasks \\* n_way = 12 exceeds the 10 classes"),
    (["scenario=cfsl_digits", "scenario.k_shot=0"], "scenario.k_shot must be an integer >= 1, got 0"),
    (["scenario=cfsl_digits", "scenario.repeat_classes=true", "scenario.n_tasks=200", "scenario.k_shot=20"], "scenario.k_shot: class"),
])
def test_bad_few_shot_settings_are_clear(overrides, message):
    cfg = compose_config(overrides).scenario
    with pytest.raises(ValueError, match=message):
        build_scenario(cfg.name, cfg, None, 0)


def test_omniglot_loader_reads_torchvision_layout(fake_data_root):
    data = load_dataset("omniglot", fake_data_root, download=False)
    assert data.n_classes == 8 and data.input_shape == (1, 28, 28)
    assert torch.bincount(data.y_train).tolist() == [15] * 8 and torch.bincount(data.y_test).tolist() == [5] * 8
    assert abs(float(data.x_train.mean())) < 1e-4  # normalized with the training statistics


def test_omniglot_and_cifar100_few_shot_streams_on_fake_files(fake_data_root):
    omni = build("cfsl_omniglot", fake_data_root, ["scenario.n_tasks=3", "scenario.n_way=2", "scenario.k_shot=1"])
    assert [len(e.y_train) for e in omni.experiences] == [2, 2, 2] and omni.n_classes == 6
    cifar = build("fscil_cifar100", fake_data_root, ["data.verify_checksums=false"])  # fake bytes, real names
    assert len(cifar.experiences) == 9 and len(cifar.experiences[0].classes) == 60
    assert all(len(e.y_train) == 25 for e in cifar.experiences[1:])


def test_missing_omniglot_is_a_clear_error(tmp_path):
    from cl_bench.data import DataUnavailableError

    with pytest.raises(DataUnavailableError, match="dataset 'omniglot' not found in .*omniglot-py"):
        load_dataset("omniglot", tmp_path, download=False)


NEW_SCENARIOS = {
    "fscil_digits": [],
    "cfsl_digits": ["scenario.repeat_classes=true", "scenario.n_tasks=4"],
    "power_law_rehearsal": ["scenario@scenario.base=split_digits", "scenario.schedule.total_budget=200"],
    "scole_digits": ["scenario.n_tasks=6"],
}


@pytest.mark.slow  # the strategy x scenario matrix: ~120 runs; `pytest -m slow`, the second step of .ci/run
@pytest.mark.parametrize("strategy", [s for s in list_strategies() if supports(s, "class_incremental")])
@pytest.mark.parametrize("scenario", list(NEW_SCENARIOS))
def test_every_strategy_runs_on_the_new_scenarios_with_continual_evaluation(scenario, strategy, run_job):
    # EWC's default lambda (1000) with lr 0.01 diverges once rehearsal makes the Fisher large: a
    # real property of the penalty, reported as status "diverged"; here we check the plumbing.
    stiffness = ["strategy.ewc_lambda=100"] if strategy == "ewc" else []
    results = run_job(tiny([f"scenario={scenario}", *NEW_SCENARIOS[scenario], f"strategy={strategy}", *stiffness,
                            "model.hidden_sizes=[32]", "eval.samples_per_task=50"]))
    assert results["status"] == "completed"
    steps = 1 if strategy == "joint" else results["scenario"]["n_experiences"]
    assert results["continual_evaluation"]["evaluations"] > steps  # one before each step, more after updates
    assert 0.0 <= results["metrics"]["acc"] <= 1.0
