"""La-MAML: one update is the paper's look-ahead step in second and first order (checked by hand
on a linear model), the learned learning rates move and a negative one stops its weight, the
memory replays past experiences behind the new data, a small batch takes fewer inner steps
instead of an empty one; bad hyperparameters fail with one line."""
from collections import OrderedDict

import pytest
import torch
from avalanche.training.plugins import SupervisedPlugin
from torch import nn

from cl_bench.registry import MODELS, STRATEGIES
from cl_bench.run import quiet_evaluator
from tests.conftest import build_scenario, compose_config

CE = nn.CrossEntropyLoss()


def clipped(grads, max_norm):
    """torch.nn.utils.clip_grad_norm_'s rule, by hand."""
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    return [g * min(1.0, max_norm / (float(norm) + 1e-6)) for g in grads]


def one_rate_per_weight(model, alpha_init: float) -> nn.ParameterDict:
    """What Avalanche sets up before the first experience."""
    return nn.ParameterDict(OrderedDict((n.replace(".", "_"), nn.Parameter(torch.full_like(p, alpha_init)))
                                        for n, p in model.named_parameters()))


@pytest.mark.parametrize("second_order", [True, False])
def test_one_update_is_the_look_ahead_step_with_clipped_learning_rates(second_order):
    from strategies.lamaml import LaMAML

    torch.manual_seed(1)
    model = nn.Linear(3, 3)
    clip, lr_alpha, alpha_init = 0.5, 50.0, 0.01  # a large eta drives some learning rates below zero
    lamaml = LaMAML(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=CE, mem_size=10,
                    batch_size_mem=4, n_inner_updates=2, second_order=second_order, grad_clip_norm=clip, learn_lr=True,
                    lr_alpha=lr_alpha, alpha_init=alpha_init, train_mb_size=4, evaluator=quiet_evaluator())
    lamaml.alpha_params = one_rate_per_weight(model, alpha_init)
    lamaml.optimizer_alpha = torch.optim.SGD(lamaml.alpha_params.parameters(), lr=lr_alpha)
    w0 = [p.detach().clone() for p in model.parameters()]  # after Avalanche's re-initialisation
    x, y, t = torch.randn(8, 3), torch.randint(0, 3, (8,)), torch.zeros(8, dtype=torch.long)
    lamaml.buffer.tensors = [x[4:], y[4:], t[4:]]  # a later experience: a memory of 4 samples
    lamaml.mbatch = [x[:4], y[:4], t[:4]]  # and 4 new ones
    lamaml._inner_updates()
    lamaml._outer_update()

    # by hand: two inner steps on halves of the new data, the meta-loss on new + memory after each
    slow = [w.clone().requires_grad_(True) for w in w0]
    alphas = [torch.full_like(w, alpha_init, requires_grad=True) for w in w0]
    fast, meta_losses = slow, []
    for part in (slice(0, 2), slice(2, 4)):
        inner_loss = CE(nn.functional.linear(x[part], *fast), y[part])
        grads = torch.autograd.grad(inner_loss, fast, create_graph=second_order)  # first order: constants
        fast = [w - a * g.clamp(-clip, clip) for w, a, g in zip(fast, alphas, grads)]
        meta_losses.append(CE(nn.functional.linear(x, *fast), y))
    meta_loss = sum(meta_losses) / 2
    grad_slow = torch.autograd.grad(meta_loss, slow, retain_graph=True)
    grad_alpha = torch.autograd.grad(meta_loss, alphas)
    new_alphas = [a.detach() - lr_alpha * g for a, g in zip(alphas, clipped(grad_alpha, clip))]
    expected = [w - g * torch.relu(a) for w, g, a in zip(w0, clipped(grad_slow, clip), new_alphas)]

    learned = list(lamaml.alpha_params.values())
    for a, ref in zip(learned, new_alphas):
        assert torch.allclose(a, ref, atol=1e-5)
    for p, ref in zip(model.parameters(), expected):
        assert torch.allclose(p, ref, atol=1e-6)
    negative = torch.cat([(a < 0).flatten() for a in learned])
    assert negative.any() and not negative.all()  # some learning rates went below zero ...
    moved = torch.cat([(p != w).flatten() for p, w in zip(model.parameters(), w0)])
    assert not (moved & negative).any() and moved[~negative].all()  # ... and their weights stood still
    assert lamaml.loss.item() == pytest.approx(meta_loss.item(), rel=1e-6)


class JoinedBatches(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.labels = []

    def after_training_iteration(self, strategy, **kwargs):
        self.labels.append(strategy.mb_y.clone())


def test_memory_replays_past_experiences_behind_the_new_data():
    cfg = compose_config(["strategy=lamaml", "model.hidden_sizes=[32]", "strategy.mem_size=30",
                          "strategy.batch_size_mem=6"])
    torch.manual_seed(0)
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, 10, scenario.input_shape, None)
    seen = JoinedBatches()
    lamaml = STRATEGIES.build("lamaml", cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01), CE,
                              train_mb_size=20, train_epochs=1, eval_mb_size=256, device="cpu",
                              evaluator=quiet_evaluator(), plugins=[seen])
    first, second = scenario.benchmark.train_stream[:2]
    old, new = set(first.classes_in_this_experience), set(second.classes_in_this_experience)
    lamaml.train(first, eval_streams=[])
    sizes = [len(y) for y in seen.labels]  # no memory yet; the last, incomplete batch is trained on too
    assert sum(sizes) == len(first.dataset) and len(sizes) == -(-len(first.dataset) // 20)
    assert len(lamaml.buffer) == 30 and set(lamaml.buffer.tensors[1].tolist()) <= old
    alphas_after_first = {n: a.detach().clone() for n, a in lamaml.alpha_params.items()}
    assert any(not torch.equal(a, torch.full_like(a, 0.1)) for a in alphas_after_first.values())
    seen.labels.clear()
    lamaml.train(second, eval_streams=[])
    assert sum(len(y) - 6 for y in seen.labels) == len(second.dataset)  # every batch: new data, then 6 replayed
    for y in seen.labels:
        assert set(y[:-6].tolist()) <= new and set(y[-6:].tolist()) <= old
    # the learned rates carry over from one experience to the next (they are not re-initialised)
    assert all(not torch.equal(lamaml.alpha_params[n], a) for n, a in alphas_after_first.items())


def test_a_batch_too_small_for_every_inner_update_takes_fewer():
    from strategies.lamaml import LaMAML

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    lamaml = LaMAML(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=CE, mem_size=10,
                    batch_size_mem=2, n_inner_updates=5, train_mb_size=12, evaluator=quiet_evaluator())
    lamaml.alpha_params = one_rate_per_weight(model, 0.1)
    lamaml.optimizer_alpha = torch.optim.SGD(lamaml.alpha_params.parameters(), lr=0.1)
    for n, steps in ((12, 4), (3, 3)):  # chunks of ceil(12/5) = 3: Avalanche's fifth was empty, a NaN loss
        lamaml.mbatch = [torch.randn(n, 3), torch.randint(0, 2, (n,)), torch.zeros(n, dtype=torch.long)]
        lamaml._inner_updates()
        assert len(lamaml.meta_losses) == steps and all(torch.isfinite(loss) for loss in lamaml.meta_losses)
        lamaml._outer_update()
        assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("override, message", [
    ("strategy.alpha_init=0", "strategy.alpha_init must be a number > 0, got 0"),
    ("strategy.n_inner_updates=0", "strategy.n_inner_updates must be an integer >= 1, got 0"),
])
def test_bad_hyperparameter_is_one_line(override, message, run_job):
    with pytest.raises(ValueError, match=message) as caught:
        run_job(["strategy=lamaml", override])
    assert "\n" not in str(caught.value)
