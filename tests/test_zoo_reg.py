"""Mechanisms of the regularisation zoo (SI, MAS, RWalk, LFL) and of from-scratch training, on
small tensors with fixed seeds; bad hyperparameter values fail with one line."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.models.heads import MultiHeadClassifier, SingleHeadClassifier
from tests.conftest import tiny


def fake_strategy(model, **extra):
    clock = SimpleNamespace(train_exp_counter=0, train_iterations=0)
    return SimpleNamespace(model=model, device=torch.device("cpu"), clock=clock, loss=torch.tensor(0.0), **extra)


# --- SI -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("clip", [None, 150.0])
def test_si_importance_is_the_path_integral_over_the_squared_displacement(clip):
    from strategies.si import SynapticIntelligencePlugin

    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)
    eps, lr = 1e-3, 0.1
    plugin = SynapticIntelligencePlugin(si_lambda=1.0, eps=eps, importance_clip=clip)
    strategy = fake_strategy(model)
    expected = torch.zeros(3)
    for experience in range(2):
        gradients = torch.randn(6, 3)  # a fixed gradient sequence, applied as plain SGD steps
        plugin.before_training_exp(strategy)
        start, omega = model.weight.detach().flatten().clone(), torch.zeros(3)
        for g in gradients:
            plugin.before_training_iteration(strategy)
            model.weight.grad = g.view(1, 3).clone()
            before = model.weight.detach().flatten().clone()
            with torch.no_grad():
                model.weight -= lr * model.weight.grad
            omega -= g * (model.weight.detach().flatten() - before)
            plugin.after_training_iteration(strategy)
        plugin.after_training_exp(strategy)
        displacement = model.weight.detach().flatten() - start
        expected += omega / (displacement ** 2 + eps)  # summed over experiences, then clipped
        importance = plugin.ewc_data[1]["weight"].data
        want = expected if clip is None else expected.clamp(max=clip)
        assert torch.allclose(importance, want, rtol=1e-4), experience
        assert torch.equal(plugin.ewc_data[0]["weight"].data, model.weight.detach().flatten())  # the anchor
    if clip is not None:
        assert (expected > clip).any() and (expected < clip).any()  # the clip did bite, not everywhere


def test_si_penalty_and_checkpointed_state_round_trip():
    from strategies.si import SynapticIntelligencePlugin

    torch.manual_seed(1)
    model = nn.Linear(2, 2)
    plugin = SynapticIntelligencePlugin(si_lambda=4.0, eps=1e-3, importance_clip=None)
    strategy = fake_strategy(model)
    plugin.before_training_exp(strategy)
    for _ in range(3):
        plugin.before_training_iteration(strategy)
        nn.functional.mse_loss(model(torch.randn(5, 2)), torch.randn(5, 2)).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        plugin.after_training_iteration(strategy)
        model.zero_grad()
    plugin.after_training_exp(strategy)
    restored = SynapticIntelligencePlugin(si_lambda=4.0, eps=1e-3, importance_clip=None)
    restored.load_state_dict(plugin.state_dict())
    with torch.no_grad():
        model.weight += 0.3
    strategy.clock.train_exp_counter, strategy.loss = 1, torch.tensor(0.0)
    restored.before_backward(strategy)
    anchor, importance = restored.ewc_data[0]["weight"].data, restored.ewc_data[1]["weight"].data
    expected = 2.0 * (importance * (model.weight.detach().flatten() - anchor) ** 2).sum()  # lambda/2; bias is at its anchor
    assert strategy.loss.item() == pytest.approx(expected.item(), rel=1e-5) and expected > 0


# --- MAS ----------------------------------------------------------------------------------------

def mas_strategy(model, x):
    dataset = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long), torch.zeros(len(x), dtype=torch.long))
    return fake_strategy(model, experience=SimpleNamespace(dataset=dataset), train_mb_size=4,
                         optimizer=torch.optim.SGD(model.parameters(), lr=0.1))


def test_mas_importance_is_the_output_norm_sensitivity_and_moves_as_a_running_average():
    from strategies.mas import MASPlugin

    torch.manual_seed(2)
    model = nn.Linear(3, 2)
    plugin = MASPlugin(lambda_reg=1.0, alpha=0.25)
    importances = []
    for experience in range(2):
        x = torch.randn(8, 3)
        strategy = mas_strategy(model, x)
        strategy.clock.train_exp_counter = experience
        plugin.after_training_exp(strategy)
        # For a linear layer, d/dW mean_i ||W x_i + b||^2 over a batch is 2/B sum_i (W x_i + b) x_i^T.
        w, b = model.weight.detach(), model.bias.detach()
        per_batch = [(2 / 4 * (xb @ w.T + b).T @ xb).abs() for xb in x.split(4)]
        importances.append(sum(per_batch) / len(per_batch))
        with torch.no_grad():
            model.weight += 0.5  # the next experience sees another function
    expected = 0.25 * importances[0] + 0.75 * importances[1]
    assert torch.allclose(plugin.importance["weight"].data, expected, rtol=1e-5)


def test_mas_penalises_a_zero_loss_batch_too():
    from strategies.mas import MASPlugin

    torch.manual_seed(3)
    model = nn.Linear(3, 2)
    plugin = MASPlugin(lambda_reg=2.0, alpha=0.5)
    strategy = mas_strategy(model, torch.randn(8, 3))
    plugin.after_training_exp(strategy)
    with torch.no_grad():
        model.bias += 1.0
    strategy.clock.train_exp_counter, strategy.loss = 1, torch.tensor(0.0)  # Avalanche raises here
    plugin.before_backward(strategy)
    assert strategy.loss.item() == pytest.approx(2.0 * plugin.importance["bias"].data.sum().item(), rel=1e-5)


# --- RWalk --------------------------------------------------------------------------------------

def test_rwalk_penalty_combines_normalised_fisher_and_path_score():
    from strategies.rwalk import RWalkPlugin

    torch.manual_seed(4)
    model = nn.Linear(2, 1, bias=False)
    alpha, lr = 0.9, 0.05
    plugin = RWalkPlugin(ewc_lambda=1.0, ewc_alpha=alpha, delta_t=1)  # one window per iteration
    x, y = torch.randn(16, 2), torch.randn(16, 1)
    strategy = fake_strategy(model, mbatch=(x, y, torch.zeros(16, dtype=torch.long)),
                             optimizer=torch.optim.SGD(model.parameters(), lr=lr), _criterion=nn.MSELoss())
    plugin.before_training(strategy)
    fisher, score = None, torch.zeros(1, 2)
    for t in range(5):
        strategy.clock.train_iterations = t
        plugin.before_training_iteration(strategy)
        g = 2 / 16 * ((x @ model.weight.detach().T - y).T @ x)  # grad of the MSE at the current weights
        fisher = g ** 2 if fisher is None else alpha * g ** 2 + (1 - alpha) * fisher  # EWC++
        step = -lr * g
        with torch.no_grad():
            model.weight += step
        score += (-g * step) / (0.5 * fisher * step ** 2 + torch.finfo(torch.float32).eps)
        plugin.after_training_iteration(strategy)
    plugin.after_training_exp(strategy)
    expected = fisher / fisher.max() + score.clamp(min=0) / score.max()
    assert torch.allclose(plugin.exp_penalties["weight"].data, expected, rtol=1e-4)


def test_rwalk_keeps_the_model_in_training_mode():
    from strategies.rwalk import RWalkPlugin

    model = nn.Sequential(nn.Linear(2, 4), nn.Dropout(0.5), nn.Linear(4, 1))
    plugin = RWalkPlugin()
    x = torch.randn(4, 2)
    strategy = fake_strategy(model, mbatch=(x, torch.randn(4, 1), torch.zeros(4, dtype=torch.long)),
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1), _criterion=nn.MSELoss())
    model.train()
    plugin.before_training(strategy)
    plugin.before_training_iteration(strategy)
    assert model.training  # Avalanche's own plugin leaves it in eval mode: no dropout for the rest


# --- LFL ----------------------------------------------------------------------------------------

def test_lfl_freezes_the_trained_head_and_penalises_feature_drift():
    from strategies.lfl import LFLPlugin

    torch.manual_seed(5)
    model = MultiHeadClassifier(nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5)), 4, 2, n_heads=3)
    plugin = LFLPlugin(model, lambda_e=0.5)
    strategy = fake_strategy(model, experience=SimpleNamespace(task_labels=[1]))
    model.train()
    plugin.after_training_exp(strategy)
    frozen = [all(not p.requires_grad for p in head.parameters()) for head in model.heads]
    assert frozen == [False, True, False]  # the head of task 1, not the last Linear (task 2's)
    x = torch.randn(6, 3)
    assert plugin.penalty(x, model, 0.5).item() == 0.0  # nothing has moved yet
    with torch.no_grad():
        model.trunk[0].weight += 0.1
    model.eval()
    expected = 0.5 * nn.functional.mse_loss(model.trunk(x), plugin.prev_model.trunk(x))
    model.train()
    assert plugin.penalty(x, model, 0.5).item() == pytest.approx(expected.item(), rel=1e-6)
    assert model.training  # Avalanche's own plugin leaves the model in eval mode


def test_lfl_restores_its_frozen_head_on_resume():
    from strategies.lfl import LFLPlugin

    torch.manual_seed(6)
    model = SingleHeadClassifier(nn.Linear(3, 4), 4, 2)
    plugin = LFLPlugin(model, lambda_e=1.0)
    plugin.after_training_exp(fake_strategy(model, experience=SimpleNamespace(task_labels=[0])))
    fresh = SingleHeadClassifier(nn.Linear(3, 4), 4, 2)
    fresh.load_state_dict(model.state_dict())
    restored = LFLPlugin(fresh, lambda_e=1.0)
    restored.load_state_dict(plugin.state_dict())
    assert not any(p.requires_grad for p in fresh.head.parameters())
    assert all(p.requires_grad for p in fresh.trunk.parameters())
    x = torch.randn(5, 3)
    assert torch.equal(restored.prev_model(x), plugin.prev_model(x))


def test_lfl_needs_a_trunk():
    from strategies.lfl import build

    with pytest.raises(ConfigError, match="strategy 'lfl' needs a model with a feature trunk"):
        build(SimpleNamespace(lambda_e=1.0), nn.Sequential(nn.Linear(2, 2)), None, None)


# --- from scratch -------------------------------------------------------------------------------

def test_from_scratch_restores_weights_buffers_and_clears_the_optimizer():
    from strategies.from_scratch import FromScratchTrainingPlugin

    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    strategy = fake_strategy(model, optimizer=optimizer)
    plugin = FromScratchTrainingPlugin()
    plugin.before_training(strategy)
    for _ in range(2):  # an experience of training: weights, BN statistics and momentum all move
        plugin.before_training_exp(strategy)
        model.train()
        optimizer.zero_grad()
        model(torch.randn(8, 3)).pow(2).mean().backward()
        optimizer.step()
        assert not torch.equal(model[1].running_mean, initial["1.running_mean"]) and optimizer.state
    plugin.before_training_exp(strategy)
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())  # running stats too
    assert not optimizer.state


# --- config -------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("strategy=si strategy.si_lambda=-1", r"strategy.si_lambda must be a number >= 0, got -1"),
    ("strategy=si strategy.importance_clip=0", r"strategy.importance_clip must be null or a number > 0, got 0"),
    ("strategy=mas strategy.alpha=1.5", r"strategy.alpha must be a number in \[0, 1\], got 1.5"),
    ("strategy=rwalk strategy.delta_t=0", r"strategy.delta_t must be an integer >= 1, got 0"),
    ("strategy=lfl strategy.lambda_e=-0.1", r"strategy.lambda_e must be a number >= 0, got -0.1"),
    ("strategy=from_scratch strategy.reset_optimizer=2", r"strategy.reset_optimizer must be true or false, got 2"),
])
def test_bad_values_fail_with_one_line(override, message, run_job):
    with pytest.raises(ValueError, match=message) as caught:
        run_job(tiny(override.split()))
    assert "\n" not in str(caught.value)


def test_rwalk_penalty_is_finite_when_no_score_window_has_ended():
    from strategies.rwalk import RWalkPlugin

    torch.manual_seed(8)
    model = nn.Linear(2, 1)
    plugin = RWalkPlugin(delta_t=10)
    x = torch.randn(4, 2)
    strategy = fake_strategy(model, mbatch=(x, torch.randn(4, 1), torch.zeros(4, dtype=torch.long)),
                             optimizer=torch.optim.SGD(model.parameters(), lr=0.1), _criterion=nn.MSELoss())
    plugin.before_training(strategy)
    for t in range(3):  # an experience of 3 iterations: no 10-iteration window ends in it
        strategy.clock.train_iterations = t
        plugin.before_training_iteration(strategy)
        strategy.optimizer.step()
        plugin.after_training_iteration(strategy)
    plugin.after_training_exp(strategy)
    for name, penalty in plugin.exp_penalties.items():
        fisher = plugin.exp_importance[name].data
        assert torch.isfinite(penalty.data).all()  # Avalanche's own: 0/0
        assert torch.allclose(penalty.data, fisher / max(f.data.max() for f in plugin.exp_importance.values()))
