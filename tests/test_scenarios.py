import pytest
import torch
from omegaconf import OmegaConf

from cl_bench.registry import list_scenarios
from tests.conftest import build_scenario, compose_config


def build(name: str, root, seed=0, **overrides):
    cfg = compose_config([f"scenario={name}"]).scenario
    cfg = OmegaConf.merge(cfg, overrides)
    return build_scenario(name, cfg, root, seed)


def small(name: str) -> list[str]:
    """Config overrides that make each registered scenario tiny on the fake data root (whose
    files carry the real names but not the real bytes: no checksums)."""
    return ["++data.verify_checksums=false", *_smaller(name)]


def _smaller(name: str) -> list[str]:
    if name == "power_law_rehearsal":
        return ["scenario@scenario.base=split_digits", "scenario.schedule.total_budget=100"]
    if name.startswith("fscil_omniglot"):
        return ["scenario.base_classes=4", "scenario.n_way=2", "scenario.n_sessions=2"]
    if name.startswith("fscil_"):
        return []
    if name.startswith("cfsl_"):
        return ["scenario.n_tasks=2", "scenario.n_way=2"]
    if name.startswith("scole_"):
        return ["scenario.n_tasks=4"]
    return [f"scenario.n_experiences={5 if 'cifar' in name else 2}"]


@pytest.mark.parametrize("name", list_scenarios())
def test_every_registered_scenario_builds_consistent_streams(name, fake_data_root):
    full = compose_config([f"scenario={name}", *small(name)])
    cfg = full.scenario
    scenario = build_scenario(name, cfg, fake_data_root, 0, verify_checksums=full.data.verify_checksums)
    bench = scenario.benchmark
    assert len(bench.train_stream) == scenario.n_experiences
    assert len(bench.test_stream) == len(scenario.evaluation_sets)
    for exp, raw in zip(bench.train_stream, scenario.experiences):
        assert len(exp.dataset) == raw.n_train >= len(raw.y_train) > 0
        x, y, t = exp.dataset[0]
        assert tuple(x.shape) == scenario.input_shape and t == raw.task_label
        assert int(raw.y_train.max()) < scenario.n_classes


@pytest.mark.parametrize("name", ["split_digits", "split_mnist"])
def test_class_incremental_experiences_have_disjoint_classes(name, fake_data_root):
    scenario = build(name, fake_data_root)
    seen = set()
    for exp in scenario.experiences:
        classes = set(exp.y_train.tolist())
        assert classes == set(exp.classes) == set(exp.y_test.tolist())
        assert not classes & seen
        seen |= classes
    assert seen == set(range(10))


@pytest.mark.parametrize("task_labels", [False, True])
def test_split_tiny_imagenet_is_ten_experiences_of_twenty_classes(fake_data_root, task_labels):
    scenario = build("split_tiny_imagenet", fake_data_root, task_labels=task_labels)
    assert scenario.n_experiences == 10 and scenario.input_shape == (3, 64, 64)
    assert [e.classes for e in scenario.experiences] == [list(range(20 * i, 20 * i + 20)) for i in range(10)]
    assert scenario.multi_head == task_labels and scenario.n_classes == (20 if task_labels else 200)
    last = scenario.experiences[-1]
    assert set(last.y_test.tolist()) == (set(range(20)) if task_labels else set(range(180, 200)))
    assert [e.task_label for e in scenario.experiences] == (list(range(10)) if task_labels else [0] * 10)


def test_class_order_fixed_and_seeded():
    fixed = build("split_digits", None, class_order=[9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    assert fixed.experiences[0].classes == [9, 8]
    a = build("split_digits", None, seed=1, shuffle_classes=True)
    b = build("split_digits", None, seed=1, shuffle_classes=True)
    c = build("split_digits", None, seed=2, shuffle_classes=True)
    assert [e.classes for e in a.experiences] == [e.classes for e in b.experiences]
    assert [e.classes for e in a.experiences] != [e.classes for e in c.experiences]


def test_bad_class_order_and_experience_count_are_clear():
    with pytest.raises(ValueError, match="scenario.class_order must be a permutation"):
        build("split_digits", None, class_order=[0, 1, 2])
    with pytest.raises(ValueError, match="scenario.n_experiences must divide the 10 classes"):
        build("split_digits", None, n_experiences=3)


def test_task_incremental_relabels_within_task_and_sets_task_labels():
    scenario = build("split_digits", None, task_labels=True, class_order=[4, 7, 0, 1, 2, 3, 5, 6, 8, 9])
    assert scenario.multi_head and scenario.n_heads == 5 and scenario.n_classes == 2
    first = scenario.experiences[0]
    assert first.classes == [4, 7] and set(first.y_train.tolist()) == {0, 1}
    assert [e.task_label for e in scenario.experiences] == [0, 1, 2, 3, 4]
    assert [exp.task_label for exp in scenario.benchmark.train_stream] == [0, 1, 2, 3, 4]


def test_permuted_stream_starts_plain_and_permutes_pixels_consistently():
    scenario = build("permuted_digits", None, n_experiences=3)
    plain, p1, p2 = scenario.experiences
    assert torch.equal(plain.y_train, p1.y_train)
    assert not torch.equal(plain.x_train, p1.x_train) and not torch.equal(p1.x_train, p2.x_train)
    # a permutation: every image keeps its multiset of pixel values
    assert torch.equal(plain.x_train.flatten(1).sort().values, p1.x_train.flatten(1).sort().values)
    # the same permutation for train and test: each permuted pixel has a source pixel that
    # matches it on every training image and on every test image
    tr_plain, tr_perm = plain.x_train.flatten(1), p1.x_train.flatten(1)
    te_plain, te_perm = plain.x_test.flatten(1), p1.x_test.flatten(1)
    for k in range(0, 64, 7):
        sources = (tr_plain == tr_perm[:, k:k + 1]).all(0).nonzero().flatten()
        assert any(torch.equal(te_plain[:, c], te_perm[:, k]) for c in sources.tolist())


def test_rotated_stream_rotates_by_angle_step():
    scenario = build("rotated_digits", None, n_experiences=3, angle_step=90)
    plain, r90, r180 = scenario.experiences
    assert torch.allclose(r90.x_train, torch.rot90(plain.x_train, 1, dims=(2, 3)), atol=1e-5)
    assert torch.allclose(r180.x_test, torch.rot90(plain.x_test, 2, dims=(2, 3)), atol=1e-5)


@pytest.mark.parametrize("name", ["permuted_digits", "rotated_digits"])
def test_train_per_experience_draws_a_subset_per_task_and_keeps_the_tasks(name):
    full = build(name, None, n_experiences=3)
    part = build(name, None, n_experiences=3, train_per_experience=100)
    n_train = len(full.experiences[0].y_train)
    rows = []
    for whole, subset in zip(full.experiences, part.experiences):
        assert len(subset.y_train) == 100 and torch.equal(subset.x_test, whole.x_test)  # test sets whole
        # every subset image is its task's image at the same index: same task, only fewer images
        match = (subset.x_train.flatten(1)[:, None] == whole.x_train.flatten(1)[None]).all(-1)
        idx = match.float().argmax(1)
        assert match.any(1).all() and torch.equal(subset.y_train, whole.y_train[idx])
        rows.append(set(idx.tolist()))
    assert len(rows[0] | rows[1] | rows[2]) > 100  # drawn per task, not one subset for all
    assert len(set().union(*rows)) < n_train
    again = build(name, None, n_experiences=3, train_per_experience=100)
    assert all(torch.equal(a.x_train, b.x_train) for a, b in zip(part.experiences, again.experiences))


def test_train_per_experience_larger_than_the_training_set_is_refused():
    from cl_bench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"scenario.train_per_experience must be at most the \d+ training images, got 100000"):
        build("permuted_digits", None, n_experiences=2, train_per_experience=100_000)


def test_real_rotated_mnist_angles_differ(shared_mnist_root):
    small = build("rotated_mnist", shared_mnist_root, n_experiences=2, angle_step=10)
    large = build("rotated_mnist", shared_mnist_root, n_experiences=2, angle_step=80)
    d_small = (small.experiences[1].x_test - small.experiences[0].x_test).abs().mean()
    d_large = (large.experiences[1].x_test - large.experiences[0].x_test).abs().mean()
    assert 0 < d_small < d_large


@pytest.mark.parametrize("name", list_scenarios())
def test_every_registered_scenario_runs_a_tiny_job(name, fake_data_root, run_job):
    results = run_job([
        f"scenario={name}", *small(name), f"data.root={fake_data_root}", "strategy=naive", "model.hidden_sizes=[32]",
        "train.epochs=1", "train.batch_size=256",
    ])
    assert results["status"] == "completed"
    assert len(results["acc_matrix"]) == results["scenario"]["n_experiences"]
    assert all(len(row) == len(results["scenario"]["test_sizes"]) for row in results["acc_matrix"])
