"""Same seed, same config, CPU: identical results, whether continual evaluation runs or not and
with the deterministic flag on or off."""
import pytest

from tests.conftest import tiny

STABLE = ("acc_matrix", "metrics")


@pytest.mark.parametrize("strategy", ["replay", "ewc", "lwf", "classp", "fast_slow"])
def test_same_seed_same_results(strategy, run_job):
    a = run_job(tiny([f"strategy={strategy}", "seed=5"]), name="a")
    b = run_job(tiny([f"strategy={strategy}", "seed=5"]), name="b")
    assert {k: a[k] for k in STABLE} == {k: b[k] for k in STABLE}
    off = run_job(tiny([f"strategy={strategy}", "seed=5", "eval=off"]), name="off")
    assert off["acc_matrix"] == a["acc_matrix"]  # evaluation never changes training
    det = run_job(tiny([f"strategy={strategy}", "seed=5", "deterministic=true"]), name="det")
    assert det["acc_matrix"] == a["acc_matrix"]


def test_different_seeds_differ(run_job):
    assert run_job(tiny(["seed=1"]), name="s1")["acc_matrix"] != run_job(tiny(["seed=2"]), name="s2")["acc_matrix"]


def test_deterministic_flag_does_not_leak_into_the_next_job(run_job):
    import torch

    run_job(tiny(["deterministic=true"]), name="det")
    assert not torch.are_deterministic_algorithms_enabled()
