"""leaderboards/baselines.py: a preset's row holds plain runs of it, not experiments on it."""
import importlib.util
from pathlib import Path

BASELINES = Path(__file__).resolve().parents[1] / "leaderboards" / "baselines.py"


def load_baselines():
    spec = importlib.util.spec_from_file_location("baselines", BASELINES)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_that_changes_the_preset_is_not_counted_as_it():
    baselines = load_baselines()
    plain = ["+experiment=baseline_mir_smnist", "seed=1", "logger=none", "data.root=/data"]
    assert baselines.preset_of({"overrides": plain}) == "baseline_mir_smnist"
    assert baselines.preset_of({"overrides": [*plain, "data.standardize=true"]}) is None
    assert baselines.preset_of({"overrides": [*plain, "model.activation=tanh"]}) is None
    assert baselines.preset_of({"overrides": ["scenario=split_mnist", "seed=0"]}) is None
