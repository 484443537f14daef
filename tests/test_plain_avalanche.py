"""leaderboards/plain_avalanche.py runs a reference experiment outside cl-bench; its comparison
with a cl-bench preset holds only if both draw the same class order for a seed."""
import pytest

from cl_bench.scenarios.class_incremental import class_order
from tests.conftest import load_leaderboard_script


@pytest.mark.parametrize("seed", [0, 3])
def test_reference_generative_replay_draws_the_class_order_of_the_cl_bench_preset(seed, shared_mnist_root):
    plain = load_leaderboard_script("plain_avalanche")
    plain.seed_everything(seed)
    bench, strategy = plain.generative_replay_smnist(shared_mnist_root, "cpu")
    # baseline_generative_replay_smnist: shuffle_classes from the run seed, 5 tasks of 2 classes
    order = class_order(10, None, True, seed)
    assert list(bench.classes_order) == order
    assert [sorted(e.classes_in_this_experience) for e in bench.train_stream] == \
        [sorted(order[2 * i:2 * i + 2]) for i in range(5)]
    assert strategy.train_epochs == 10 and strategy.train_mb_size == 16
