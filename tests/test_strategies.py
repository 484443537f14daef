"""Every registered strategy runs a tiny real job; the class-incremental behaviours a researcher
expects on split_digits hold (joint high, naive forgets, replay helps a lot)."""
import math
import warnings

import torch

import pytest

from cl_bench.registry import list_strategies
from tests.conftest import on_default_stream, tiny


@pytest.mark.parametrize("strategy", list_strategies())
def test_every_registered_strategy_runs_a_tiny_job(strategy, run_job):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = run_job(tiny([*on_default_stream(strategy), "model.hidden_sizes=[32]"]))
    assert not caught, [str(w.message)[:120] for w in caught]  # e.g. Avalanche's notice on positional __init__ args
    assert results["status"] == "completed"
    R = results["acc_matrix"]
    expected_rows = 1 if strategy == "joint" else 5
    assert len(R) == expected_rows and all(len(row) == 5 for row in R)
    assert all(0.0 <= a <= 1.0 for row in R for a in row)
    assert math.isclose(results["metrics"]["acc"], sum(R[-1]) / 5)


@pytest.mark.parametrize("strategy", ["naive", "replay", "ewc", "lwf"])
def test_strategies_run_task_incremental_with_multi_head(strategy, run_job):
    results = run_job(tiny([f"strategy={strategy}", "scenario.task_labels=true", "train.epochs=3"]))
    assert results["scenario"]["multi_head"]
    # With task labels each head only separates two digits: even fine-tuning stays well above chance.
    assert results["metrics"]["acc"] >= 0.75


@pytest.mark.parametrize("policy", ["experience_balanced", "class_balanced", "reservoir"])
def test_replay_storage_policies(policy, run_job):
    results = run_job(tiny(["strategy=replay", f"strategy.storage_policy={policy}", "train.epochs=3"]))
    assert results["status"] == "completed" and results["metrics"]["acc"] > 0.4


def test_online_ewc_runs(run_job):
    results = run_job(tiny(["strategy=ewc", "strategy.mode=online"]))
    assert results["status"] == "completed"


def test_bad_strategy_values_are_rejected(run_job):
    with pytest.raises(ValueError, match="strategy.storage_policy must be one of experience_balanced"):
        run_job(["strategy=replay", "strategy.storage_policy=fifo"])
    with pytest.raises(ValueError, match="strategy.mode must be one of separate, online"):
        run_job(["strategy=ewc", "strategy.mode=offline"])


@pytest.fixture(scope="module")
def digits_results(tmp_path_factory):
    from cl_bench.run import run
    from tests.conftest import compose_config

    root = tmp_path_factory.mktemp("cl")
    return {s: run(compose_config([f"strategy={s}"]), root / s) for s in ("joint", "naive", "replay")}


def test_joint_reaches_upper_bound(digits_results):
    assert digits_results["joint"]["metrics"]["acc"] >= 0.90


def test_naive_forgets_catastrophically(digits_results):
    naive = digits_results["naive"]
    assert naive["metrics"]["acc"] <= 0.35
    assert naive["metrics"]["forgetting"] >= 0.8
    # the last experience is learned, the first is gone
    assert naive["acc_matrix"][-1][-1] > 0.5 and naive["acc_matrix"][-1][0] < 0.1


def test_replay_beats_naive_by_a_wide_margin(digits_results):
    assert digits_results["replay"]["metrics"]["acc"] >= digits_results["naive"]["metrics"]["acc"] + 0.4


def test_same_seed_same_result(run_job):
    a = run_job(tiny(["strategy=replay", "seed=3"]), name="a")
    b = run_job(tiny(["strategy=replay", "seed=3"]), name="b")
    c = run_job(tiny(["strategy=replay", "seed=4"]), name="c")
    assert a["acc_matrix"] == b["acc_matrix"]
    assert a["acc_matrix"] != c["acc_matrix"]


def test_weighted_replay_combines_new_and_memory_losses():
    from types import SimpleNamespace

    from strategies.replay import WeightedReplayPlugin

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    criterion = torch.nn.CrossEntropyLoss()
    plugin = WeightedReplayPlugin(0.3, mem_size=4, batch_size_mem=4)
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 1, 0])
    plugin.memory = (x, y, torch.zeros(4, dtype=torch.long))
    strategy = SimpleNamespace(model=model, _criterion=criterion, loss=torch.tensor(2.0),
                               train_mb_size=4, device=torch.device("cpu"))
    plugin.before_backward(strategy)
    # the memory batch is the whole (4-sample) memory, in some order: CE's mean does not care
    assert strategy.loss.item() == pytest.approx(0.3 * 2.0 + 0.7 * criterion(model(x), y).item(), rel=1e-5)


def test_weighted_replay_on_digits(run_job):
    weighted = run_job(["strategy=replay", "strategy.new_data_weight=0.3", "strategy.storage_policy=class_balanced"])
    assert weighted["metrics"]["acc"] >= 0.75
    with pytest.raises(ValueError, match=r"strategy.new_data_weight must be null or in \[0, 1\]"):
        run_job(["strategy=replay", "strategy.new_data_weight=1.5"], name="bad")


def test_held_memory_is_reported(run_job):
    n_params = 4 * (64 * 400 + 400 + 400 * 400 + 400 + 400 * 10 + 10)  # MLP 400-400 on 8x8 digits, fp32
    ewc = run_job(tiny(["strategy=ewc", "eval=off"]), name="ewc")["held_memory_bytes"]
    assert ewc["plugins"]["EWCPlugin"] == 5 * 2 * n_params  # importance + anchor per experience
    assert ewc["optimizer_state"] == n_params  # SGD momentum
    classp = run_job(tiny(["strategy=classp", "eval=off"]), name="classp")["held_memory_bytes"]
    assert classp["total"] == n_params  # one accumulator per weight
    replay = run_job(tiny(["strategy=replay", "eval=off"]), name="replay")["held_memory_bytes"]
    assert 200 * 64 * 4 <= replay["plugins"]["ReplayPlugin"] < 2 * 200 * 64 * 4


def test_epochs_per_experience(run_job):
    results = run_job(["strategy=naive", "train.epochs=[1,1,1,1,3]", "train.batch_size=128"])
    protocol = results["continual_evaluation"]
    per_exp_updates = [-(-n // 128) for n in results["scenario"]["train_sizes"]]
    expected = sum(per_exp_updates[:4]) + 3 * per_exp_updates[4] + 5
    assert protocol["evaluations"] == expected
    with pytest.raises(ValueError, match="train.epochs must be an int >= 1 or a list of 5"):
        run_job(["train.epochs=[1,2]"], name="bad")
