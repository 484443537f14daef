"""leaderboards/baselines.py: a preset's row holds plain runs of it, not experiments on it."""
from tests.conftest import load_leaderboard_script


def load_baselines():
    return load_leaderboard_script("baselines")


def test_a_run_that_changes_the_preset_is_not_counted_as_it():
    baselines = load_baselines()
    plain = ["+experiment=baseline_mir_smnist", "seed=1", "logger=none", "data.root=/data"]
    assert baselines.preset_of({"overrides": plain}) == "baseline_mir_smnist"
    assert baselines.preset_of({"overrides": [*plain, "data.standardize=true"]}) is None
    assert baselines.preset_of({"overrides": [*plain, "model.activation=tanh"]}) is None
    assert baselines.preset_of({"overrides": ["scenario=split_mnist", "seed=0"]}) is None
