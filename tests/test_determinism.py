"""Same seed, same config, CPU: identical results, whether continual evaluation runs or not and
with the deterministic flag on or off."""
import pytest

from tests.conftest import REPO, tiny

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


def test_the_first_run_in_a_process_equals_the_next(tmp_path):
    # A fresh interpreter: the first run imports scikit-learn (digits) after seeding, which used to
    # advance Python's RNG, so A-GEM's memory (random.shuffle) differed between a sweep's jobs 0 and 1.
    import subprocess
    import sys

    script = f"""
import json
from pathlib import Path
from tests.conftest import compose_config, tiny
from cl_bench.run import run
out = [run(compose_config(tiny(["strategy=agem", "seed=5", "eval=off", "logger=none"])), Path(r"{tmp_path}") / str(i))
       ["acc_matrix"] for i in range(2)]
print(json.dumps(out[0] == out[1]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip().splitlines()[-1] == "true"
