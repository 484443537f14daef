"""leaderboards/plain_avalanche.py runs a reference experiment outside cl-bench; its comparison
with a cl-bench preset holds only if both draw the same class order for a seed."""
import pytest

from cl_bench.scenarios.class_incremental import class_order
from tests.conftest import load_leaderboard_script


@pytest.mark.parametrize("seed, epochs", [(0, None), (3, 1)])
def test_reference_generative_replay_draws_the_class_order_of_the_cl_bench_preset(seed, epochs, shared_mnist_root):
    plain = load_leaderboard_script("plain_avalanche")
    shared_files = sorted(shared_mnist_root.rglob("*"))
    plain.seed_everything(seed)
    extra = {} if epochs is None else {"epochs": epochs}
    bench, strategy = plain.generative_replay_smnist(shared_mnist_root, "cpu", **extra)
    # baseline_generative_replay_smnist: shuffle_classes from the run seed, 5 tasks of 2 classes
    order = class_order(10, None, True, seed)
    assert list(bench.classes_order) == order
    assert [sorted(e.classes_in_this_experience) for e in bench.train_stream] == \
        [sorted(order[2 * i:2 * i + 2]) for i in range(5)]
    # --epochs N sets the solver's and the generator's epochs alike, as cl-bench's train.epochs=N
    assert strategy.train_epochs == strategy.generator_strategy.train_epochs == (epochs or 10)
    assert strategy.train_mb_size == 16
    # torchvision extracts the archives it is given; the shared data folder is left as it was
    assert sorted(shared_mnist_root.rglob("*")) == shared_files
    assert len(bench.train_stream[0].dataset) > 10_000
