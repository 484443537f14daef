"""Mechanisms of the replay-by-generation/feature and architectural strategies: generative_replay,
feature_replay, pnn, packnet, cwr_star. Each test checks a property the method's mechanism
guarantees and that a wrong implementation would break; runs are tiny."""
import io
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cl_bench.models.heads import SingleHeadClassifier
from cl_bench.registry import MODELS, STRATEGIES
from cl_bench.run import quiet_evaluator
from tests.conftest import build_scenario, compose_config, tiny


def through_checkpoint(state: dict) -> dict:
    """What a resumed run gets back: torch.save, then torch.load(weights_only=True)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def task_end_rows_never_change(acc_matrix) -> bool:
    """Accuracy on task j is the same in every row from the one where j was trained."""
    return all(acc_matrix[k][j] == acc_matrix[j][j] for j in range(len(acc_matrix)) for k in range(j, len(acc_matrix)))


# --- cwr_star ------------------------------------------------------------------------------------

def cwr_setup():
    from strategies.cwr_star import CWRStarPlugin

    torch.manual_seed(0)
    model = SingleHeadClassifier(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), 4, n_classes=4)
    return model, CWRStarPlugin(model, cwr_layer_name="head", freeze_remaining_model=True)


def cwr_experience(plugin, model, targets, exp_index, trained_rows: dict):
    """One experience: before_training_exp, "training" that sets the given head rows, after_training_exp."""
    strategy = SimpleNamespace(clock=SimpleNamespace(train_exp_counter=exp_index),
                               experience=SimpleNamespace(dataset=SimpleNamespace(targets=targets)))
    plugin.before_training_exp(strategy)
    at_start = model.head.weight.detach().clone()
    with torch.no_grad():
        for c, row in trained_rows.items():
            model.head.weight[c] = row
    plugin.after_training_exp(strategy)
    return at_start


def test_cwr_star_consolidates_centred_rows_weighted_by_counts():
    model, plugin = cwr_setup()
    a = {0: torch.tensor([1.0, 2.0, 3.0, 4.0]), 1: torch.tensor([0.0, 0.0, 2.0, 2.0])}
    cwr_experience(plugin, model, [0] * 6 + [1] * 2, 0, a)
    mean_a = torch.stack(list(a.values())).mean()
    for c in a:  # a new class's consolidated row: its trained row, centred on the experience's mean
        assert torch.allclose(model.head.weight[c], a[c] - mean_a)
    plugin.load_state_dict(through_checkpoint(plugin.state_dict()))  # the state a resumed run restores
    b = {1: torch.tensor([4.0, 4.0, 0.0, 0.0]), 2: torch.tensor([1.0, 1.0, 1.0, 1.0])}
    at_start = cwr_experience(plugin, model, [1] * 8 + [2] * 8, 1, b)
    # before training: rows of absent classes are zero, a returning class starts from its consolidation
    assert torch.equal(at_start[0], torch.zeros(4)) and torch.equal(at_start[3], torch.zeros(4))
    assert torch.allclose(at_start[1], a[1] - mean_a)
    mean_b = torch.stack(list(b.values())).mean()
    w_past = (2 / 8) ** 0.5  # sqrt(samples of class 1 seen before / now)
    assert torch.allclose(model.head.weight[1], ((a[1] - mean_a) * w_past + b[1] - mean_b) / (w_past + 1))
    assert torch.allclose(model.head.weight[0], a[0] - mean_a)  # untouched by an experience without it
    assert torch.allclose(model.head.weight[2], b[2] - mean_b)
    assert not any(p.requires_grad for p in model.trunk.parameters())  # features fixed after the first experience


# --- feature_replay ------------------------------------------------------------------------------

def test_feature_replay_memory_holds_trunk_features_class_balanced_and_the_model_stays_a_classifier():
    cfg = compose_config(["strategy=feature_replay", "model.hidden_sizes=[16]", "strategy.mem_size=20"])
    torch.manual_seed(0)
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, 10, scenario.input_shape, None)
    strategy = STRATEGIES.build("feature_replay", cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01),
                                torch.nn.CrossEntropyLoss(), train_mb_size=64, train_epochs=1, eval_mb_size=256,
                                device="cpu", evaluator=quiet_evaluator())
    exp = scenario.benchmark.train_stream[0]
    strategy.train(exp)
    from cl_bench.data.buffers import dataset_state

    memory = dataset_state(strategy.storage_policy.buffer)
    data = dataset_state(exp.dataset)
    with torch.no_grad():
        features = model.trunk(data["x"])
        assert model(data["x"][:3]).shape == (3, 10)  # cl-bench evaluates this model: logits, not features
    assert memory["x"].shape == (20, 16)
    # every stored row is the trunk's feature of a sample of the experience, under that sample's label
    distance, nearest = torch.cdist(memory["x"], features, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
    assert distance.max() < 1e-5 and torch.equal(data["y"][nearest], memory["y"])
    assert sorted(memory["y"].tolist()) == [0] * 10 + [1] * 10


# --- generative_replay ---------------------------------------------------------------------------

def generative_plugin():
    from strategies.generative_replay import GenerativeReplayPlugin

    return GenerativeReplayPlugin(latent_dim=2, generator_lr=0.01, generator_weight_decay=1e-4, replay_size=None,
                                  increasing_replay_size=False, train_mb_size=8, eval_mb_size=8, device="cpu")


def test_generated_samples_lie_in_the_data_range_and_are_labelled_by_the_previous_solver():
    torch.manual_seed(0)
    plugin = generative_plugin()
    low, high = torch.tensor([-0.5, 0.0]), torch.tensor([2.0, 1.0])
    plugin._build_generator((2, 3, 3), low, high)
    samples = plugin.generator.generate(500)
    per_channel = samples.transpose(0, 1).flatten(1)
    assert (per_channel.min(1).values >= low - 1e-5).all() and (per_channel.max(1).values <= high + 1e-5).all()
    # sigmoid 0 and 1 map onto each channel's ends
    ends = plugin.generator.decoder.invTrans(torch.stack([torch.zeros(2, 3, 3), torch.ones(2, 3, 3)]))
    assert torch.allclose(ends[0, :, 0, 0], low) and torch.allclose(ends[1, :, 0, 0], high)

    solver = SingleHeadClassifier(nn.Flatten(), 18, n_classes=3)
    plugin.untrained_solver = False
    plugin.old_generator, plugin.old_model = plugin.generator.eval(), solver.eval()
    x, y = torch.randn(8, 2, 3, 3), torch.randint(0, 3, (8,))
    strategy = SimpleNamespace(mbatch=[x, y, torch.zeros(8, dtype=torch.long)], device="cpu",
                               experience=SimpleNamespace(current_experience=1))
    plugin.before_training_iteration(strategy)
    new_x, new_y, _ = strategy.mbatch
    assert len(new_x) == len(new_y) == 16 and torch.equal(new_x[:8], x) and torch.equal(new_y[:8], y)
    with torch.no_grad():
        assert torch.equal(new_y[8:], solver(new_x[8:]).argmax(1))


def test_generator_survives_a_checkpoint():
    torch.manual_seed(0)
    plugin = generative_plugin()
    plugin._build_generator((1, 4, 4), torch.tensor([-1.0]), torch.tensor([1.5]))
    plugin.untrained_solver = False
    restored = generative_plugin()
    restored.load_state_dict(through_checkpoint(plugin.state_dict()))
    z = torch.randn(5, 2)
    with torch.no_grad():
        assert torch.equal(restored.generator.decoder(z), plugin.generator.decoder(z))
    assert restored.untrained_solver is False
    assert restored.generator_strategy.optimized_param_id is not None  # its Adam state is kept, not reset


# --- pnn -----------------------------------------------------------------------------------------

def test_pnn_column_reads_earlier_columns_but_never_the_reverse():
    from strategies.pnn import ProgressiveTrunk

    torch.manual_seed(0)
    trunk = ProgressiveTrunk(in_features=4, widths=[5, 3], n_columns=2, adapter="mlp")
    x = torch.randn(6, 4)
    before = trunk(x)
    with torch.no_grad():
        for p in trunk.columns(1)[0].parameters():
            p.add_(1.0)
    after = trunk(x)
    assert torch.equal(after[:, :3], before[:, :3])  # task 0's features: column 1 does not reach them
    with torch.no_grad():
        for p in trunk.columns(0)[0].parameters():
            p.add_(1.0)
    assert not torch.equal(trunk(x)[:, 3:], after[:, 3:])  # task 1's features: lateral input from column 0


def test_pnn_never_forgets_and_freezes_earlier_columns(run_job):
    results = run_job(["strategy=pnn", "scenario.task_labels=true", "model.hidden_sizes=[16]", "eval=off",
                       "train.epochs=3", "train.batch_size=64"])
    assert results["metrics"]["forgetting"] == 0.0 and task_end_rows_never_change(results["acc_matrix"])
    assert min(results["acc_matrix"][-1]) > 0.5  # and every column learned its task


# --- packnet -------------------------------------------------------------------------------------

@pytest.mark.parametrize("proportion, shares", [
    ("0.5", [0.5] * 5),
    ("[0.8,0.75,0.6,0.5,0.0]", [0.8, 0.75, 0.6, 0.5, 0.0]),  # one per task: about a fifth each
])
def test_packnet_never_forgets_and_each_task_owns_its_pruned_share(proportion, shares, run_job, tmp_path):
    results = run_job(tiny(["strategy=packnet", "scenario.task_labels=true", "model.hidden_sizes=[16]", "eval=off",
                            f"strategy.prune_proportion={proportion}"]))
    assert results["metrics"]["forgetting"] == 0.0 and task_end_rows_never_change(results["acc_matrix"])
    weights = torch.load(tmp_path / "run" / "model.pt")
    for key in [k for k in weights if k.endswith("task_index")]:
        owner = weights[key].flatten().long()
        free = owner.numel()
        for task in range(5):  # each task keeps the free weights it does not release
            released = int(free * shares[task])
            assert (owner == task).sum().item() == free - released, (key, task)
            free = released
        assert (owner == 5).sum().item() == free  # what the last task released is free again


def test_packnet_old_tasks_are_evaluated_with_their_own_weights_only():
    from strategies.packnet import PackedTrunk

    torch.manual_seed(0)
    trunk = PackedTrunk(nn.Sequential(nn.Linear(4, 6), nn.ReLU()), n_tasks=3)
    packnet = trunk.packnet
    packnet.prune(0.5)
    packnet.freeze_pruned()  # task 0 owns half the weights
    x = torch.randn(5, 4)
    before = trunk(x)
    layer = packnet.wrappee[0]
    with torch.no_grad():
        layer.wrappee.weight[layer.task_index == 1] += 1.0  # the weights task 1 may now train
    after = trunk(x)
    assert torch.equal(after[:, :6], before[:, :6])
    assert not torch.equal(after[:, 6:12], before[:, 6:12]) and torch.equal(after[:, 6:12], after[:, 12:])


# --- declared rules and settings -----------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("strategy=packnet", r"strategy.prune_proportion must be a number in \[0, 1\] or a list of them, got 1.5"),
    ("strategy=pnn", r"strategy.adapter must be one of mlp, linear, got 'conv'"),
    ("strategy=feature_replay", r"strategy.mem_size must be an integer >= 1, got 0"),
    ("strategy=generative_replay", r"strategy.latent_dim must be an integer >= 1, got 0"),
])
def test_a_bad_value_fails_in_one_line(override, message, run_job):
    bad = {"strategy=packnet": "strategy.prune_proportion=1.5", "strategy=pnn": "strategy.adapter=conv",
           "strategy=feature_replay": "strategy.mem_size=0", "strategy=generative_replay": "strategy.latent_dim=0"}
    with pytest.raises(ValueError, match=message):
        run_job([override, bad[override], "scenario.task_labels=true"])


@pytest.mark.parametrize("strategy", ["pnn", "packnet"])
def test_task_incremental_methods_refuse_other_settings(strategy, run_job):
    with pytest.raises(ValueError, match=f"strategy '{strategy}' runs task_incremental only; "
                                         "scenario 'split_digits' is class_incremental"):
        run_job([f"strategy={strategy}"])


@pytest.mark.parametrize("strategy", ["cwr_star", "feature_replay", "generative_replay"])
def test_single_head_methods_refuse_task_labels(strategy, run_job):
    with pytest.raises(ValueError, match=f"strategy '{strategy}' runs class_incremental or domain_incremental "
                                         "only; scenario 'split_digits' is task_incremental"):
        run_job([f"strategy={strategy}", "scenario.task_labels=true"])


def test_packnet_wants_one_prune_proportion_per_experience(run_job):
    with pytest.raises(ValueError, match=r"strategy.prune_proportion must be one number or a list of 5 \(one per "
                                         r"experience\), got 2 values"):
        run_job(["strategy=packnet", "scenario.task_labels=true", "strategy.prune_proportion=[0.5,0.5]"])


def test_pnn_and_packnet_need_the_mlp_model(run_job):
    with pytest.raises(ValueError, match="strategy 'packnet' needs the mlp model .*; this trunk has .*Conv2d"):
        run_job(["strategy=packnet", "scenario.task_labels=true", "model=convnet"])
    with pytest.raises(ValueError, match="strategy 'packnet' needs optimizer.weight_decay=0"):
        run_job(["strategy=packnet", "scenario.task_labels=true", "optimizer.weight_decay=0.001"], name="decay")


def test_feature_replay_memory_batch_must_fit_the_memory(run_job):
    with pytest.raises(ValueError, match=r"strategy.batch_size_mem must be <= strategy.mem_size \(5\), got 10"):
        run_job(["strategy=feature_replay", "strategy.mem_size=5"])
