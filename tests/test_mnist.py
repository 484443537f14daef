"""One real run on MNIST from ../shared/data: the benchmark job's setting, end to end."""


def test_split_mnist_replay_on_real_data(run_job, shared_mnist_root):
    results = run_job([
        "scenario=split_mnist", f"data.root={shared_mnist_root}", "data.download=false",
        "strategy=replay", "strategy.mem_size=2000", "train.epochs=1", "train.batch_size=128", "eval=off",
    ])
    assert results["status"] == "completed"
    assert results["scenario"]["train_sizes"] == [12665, 12089, 11263, 12183, 11800]
    assert results["metrics"]["acc"] >= 0.85
    assert results["metrics"]["forgetting"] < 0.15


def test_permuted_mnist_naive_forgets_less_than_class_incremental(run_job, shared_mnist_root):
    results = run_job([
        "scenario=permuted_mnist", "scenario.n_experiences=3", f"data.root={shared_mnist_root}",
        "strategy=naive", "train.epochs=1", "train.batch_size=128", "eval.schedule=every", "eval.period=50",
    ])
    R = results["acc_matrix"]
    # domain-incremental: the first (unpermuted) task keeps well above chance after two more tasks
    assert R[0][0] > 0.9 and 0.3 < R[-1][0] < R[0][0]
    assert results["metrics"]["acc"] > 0.7
