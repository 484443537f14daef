"""Mechanism tests for gss, mir, mer, rar and scr (small tensors, fixed seeds), their config
checks, and the settings they refuse."""
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from tests.conftest import compose_config

CE = nn.CrossEntropyLoss()


def stub_strategy(model, x, y, **extra):
    return SimpleNamespace(model=model, mb_x=x, mb_y=y, mb_task_id=torch.zeros(len(y), dtype=torch.long),
                           device=torch.device("cpu"), _criterion=CE, **extra)


# --- MIR: the replayed samples are the most interfered candidates -------------------------------

def test_mir_replays_the_candidates_a_virtual_step_hurts_most():
    from strategies.mir import MIRPlugin

    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    cx, cy, ct = torch.randn(12, 4), torch.randint(0, 3, (12,)), torch.zeros(12, dtype=torch.long)
    plugin = MIRPlugin(mem_size=12, subsample=12, batch_size_mem=3)
    plugin.replay_loader = iter([(cx, cy, ct)])
    loss = CE(model(x), y)
    strategy = stub_strategy(model, x, y, loss=loss, optimizer=torch.optim.SGD(model.parameters(), lr=0.5))
    # expected: per-candidate loss increase after one SGD step of lr 0.5 on the batch loss
    grads = torch.autograd.grad(loss, list(model.parameters()), retain_graph=True)
    virtual = nn.Linear(4, 3)
    with torch.no_grad():
        for p, q, g in zip(virtual.parameters(), model.parameters(), grads):
            p.copy_(q - 0.5 * g)
        rise = nn.functional.cross_entropy(virtual(cx), cy, reduction="none") - nn.functional.cross_entropy(model(cx), cy, reduction="none")
    top = rise.topk(3).indices
    before = loss.item()  # Avalanche adds to the loss in place
    plugin.before_backward(strategy)
    assert strategy.loss.item() == pytest.approx(before + CE(model(cx[top]), cy[top]).item(), rel=1e-5)
    assert CE.reduction == "mean"  # Avalanche switches the criterion to per-sample losses and back


def test_mir_replays_the_experience_just_finished():
    """Avalanche left the last minibatch's classes out of the memory it replays: on a
    domain-incremental stream that was every class, i.e. no replay at all."""
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset
    from strategies.mir import MIRPlugin

    plugin = MIRPlugin(mem_size=20, subsample=20, batch_size_mem=2)
    x, y = torch.randn(20, 4), torch.arange(20) % 2
    data = _make_taskaware_tensor_classification_dataset(x, y, task_labels=0)
    strategy = SimpleNamespace(experience=SimpleNamespace(dataset=data), mb_y=torch.tensor([0, 1]))
    plugin.after_training_exp(strategy)
    _, replayed_y, _ = next(plugin.replay_loader)
    assert sorted(replayed_y.unique().tolist()) == [0, 1] and len(replayed_y) == 20


# --- GSS: memory filled with scores, scoring gradients never reach the step ---------------------

def test_gss_fills_its_memory_and_leaves_no_gradient_behind():
    from strategies.gss import GSSPlugin

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    plugin = GSSPlugin(mem_size=10, mem_strength=2)
    first = (torch.randn(6, 1, 2, 2), torch.randint(0, 3, (6,)))
    plugin.after_forward(stub_strategy(model, *first))
    assert plugin.ext_mem_list_current_index == 6 and torch.equal(plugin.ext_mem_list_x[:6], first[0])
    assert torch.allclose(plugin.buffer_score[:6], torch.full((6,), 0.1))  # Avalanche's first-insertion score
    # a batch larger than the memory so far (Avalanche had no memory subset to compare with then)
    second = (torch.randn(8, 1, 2, 2), torch.randint(0, 3, (8,)))
    plugin.after_forward(stub_strategy(model, *second))
    assert plugin.ext_mem_list_current_index == 10
    assert all(p.grad is None for p in model.parameters())
    # each new score is the largest cosine between the sample's gradient and the memory's
    scores = plugin.buffer_score[6:10]
    assert ((scores >= -1) & (scores <= 1)).all() and not torch.allclose(scores, torch.full((4,), 0.1))


def test_gss_scores_are_cosines_to_the_memory_gradient():
    from strategies.gss import GSSPlugin

    torch.manual_seed(1)
    model = nn.Linear(3, 2)
    plugin = GSSPlugin(mem_size=4, mem_strength=1)
    plugin.allocated = True
    plugin.ext_mem_list_x = torch.randn(4, 3)
    plugin.ext_mem_list_y = torch.tensor([0, 1, 0, 1])
    plugin.ext_mem_list_current_index = 4
    grad_dims = [p.numel() for p in model.parameters()]
    x, y = torch.randn(4, 3), torch.tensor([1, 0, 1, 0])
    strategy = stub_strategy(model, x, y)
    mem_grads = plugin.get_rand_mem_grads(strategy, grad_dims, 4)  # one subset: the whole memory
    flat = lambda loss: torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))])  # noqa: E731
    assert torch.allclose(mem_grads[0], flat(CE(model(plugin.ext_mem_list_x), plugin.ext_mem_list_y)), atol=1e-6)
    scores = plugin.get_each_batch_sample_sim(strategy, grad_dims, mem_grads, x, y)
    for i in range(4):
        g = flat(CE(model(x[i:i + 1]), y[i:i + 1]))
        assert scores[i].item() == pytest.approx(nn.functional.cosine_similarity(g, mem_grads[0], dim=0).item(), abs=1e-5)


# --- MER: per-sample steps, then the two Reptile interpolations ---------------------------------

def test_mer_update_is_reptile_of_per_sample_steps():
    from cl_bench.run import quiet_evaluator
    from strategies.mer import MER

    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    mer = MER(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), criterion=CE, mem_size=10,
              batch_size_mem=2, n_inner_steps=2, beta=0.3, gamma=0.5, train_mb_size=5, evaluator=quiet_evaluator())
    mer.mbatch = [x, y, torch.zeros(5, dtype=torch.long)]
    mer._before_inner_updates()
    mer._inner_updates()
    mer._outer_update()
    # by hand: each inner pass steps once per sample from where the last pass's Reptile left off
    reference = nn.Linear(3, 2)
    reference.load_state_dict(w0)
    start = dict(w0)
    for _ in range(2):
        for i in range(5):
            reference.zero_grad()
            CE(reference(x[i:i + 1]), y[i:i + 1]).backward()
            with torch.no_grad():
                for p in reference.parameters():
                    p -= 0.1 * p.grad
        with torch.no_grad():
            for n, p in reference.named_parameters():
                p.copy_(start[n] + 0.3 * (p - start[n]))
        start = {n: p.detach().clone() for n, p in reference.named_parameters()}
    for n, p in model.named_parameters():
        assert torch.allclose(p, w0[n] + 0.5 * (start[n] - w0[n]), atol=1e-6), n


# --- RAR: attack towards the nearest current-task neighbour of another class ----------------------

def test_rar_targets_the_nearest_current_class_of_another_label():
    from strategies.rar import nearest_other_class

    y_batch = torch.tensor([2, 3, 0, 3])     # sample 2 is a replayed class-0 sample, not current
    y_mem = torch.tensor([0, 1, 2])
    distance = torch.tensor([[5.0, 4.0, 0.1, 1.0],   # nearest is the replayed 0: same label anyway
                             [3.0, 9.0, 0.0, 8.0],   # the replayed sample is nearest but not current
                             [0.5, 2.0, 1.0, 0.7]])  # nearest is its own class: skipped
    assert nearest_other_class(distance, y_mem, y_batch, {2, 3}).tolist() == [3, 2, 3]


def test_rar_perturbation_moves_towards_the_target_within_epsilon():
    from strategies.rar import RARPlugin

    torch.manual_seed(0)
    model = nn.Linear(6, 3)
    x, target = torch.randn(16, 6), torch.randint(0, 3, (16,))
    plugin = RARPlugin(batch_size_mem=16, mem_size=16, epsilon_fgsm=0.2, iter_fgsm=3)
    x_req = x.clone().requires_grad_(True)
    grad, = torch.autograd.grad(CE(model(x_req), target), x_req)
    perturbed = plugin.mifgsm_attack(x, grad)
    assert (perturbed - x).abs().max().item() <= 0.2 + 1e-6
    assert CE(model(perturbed), target).item() < CE(model(x), target).item()
    assert (perturbed < 0).any()  # standardized inputs are not clamped to [0, 1]


# --- SCR: nearest class mean over the classes that have one -------------------------------------

def test_scr_classifies_by_nearest_seen_class_mean_and_restores_its_means():
    from strategies.scr import SeenClassNCM

    ncm = SeenClassNCM(n_classes=3, feature_size=2)
    assert ncm(torch.tensor([[1.0, 0.0]])).argmax(1).item() == 0  # no means yet: a valid prediction, no crash
    ncm.update_class_means_dict({0: torch.tensor([1.0, 0.0]), 2: torch.tensor([0.0, 1.0])})
    x = nn.functional.normalize(torch.tensor([[-1.0, 0.2], [0.9, 0.1], [0.1, 0.9]]), dim=1)
    # the first sample is more than 60 degrees from both means: Avalanche's zero "mean" of class 1 won
    assert ncm(x).argmax(1).tolist() == [2, 0, 2]
    ncm.update_class_means_dict({0: torch.tensor([0.0, -1.0])})
    assert torch.equal(ncm.class_means[0], torch.tensor([0.0, -1.0]))  # replaced, not averaged with the old one
    fresh = SeenClassNCM(n_classes=3, feature_size=2)
    nn.Sequential(fresh).load_state_dict(nn.Sequential(ncm).state_dict())
    assert sorted(fresh.class_means_dict) == [0, 2] and torch.equal(fresh(x), ncm(x))


# --- config checks ------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy, override, message", [
    ("gss", "strategy.mem_strength=0", "strategy.mem_strength must be an integer >= 1, got 0"),
    ("mir", "strategy.subsample=0", "strategy.subsample must be an integer >= 1, got 0"),
    ("mer", "strategy.beta=1.5", r"strategy.beta must be a number in \[0, 1\], got 1.5"),
    ("rar", "strategy.iter_fgsm=1", "strategy.iter_fgsm must be an integer >= 2, got 1"),
    ("scr", "strategy.temperature=0", "strategy.temperature must be a number > 0, got 0"),
])
def test_bad_hyperparameter_is_one_line(strategy, override, message, run_job):
    with pytest.raises(ValueError, match=message) as caught:
        run_job([f"strategy={strategy}", override])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("strategy", ["gss", "rar", "scr"])
def test_task_incremental_is_refused(strategy, run_job):
    with pytest.raises(ValueError, match=f"strategy '{strategy}' runs class_incremental or domain_incremental only; "
                                         "scenario 'split_digits' is task_incremental"):
        run_job([f"strategy={strategy}", "scenario.task_labels=true"])


@pytest.mark.parametrize("strategy", ["rar", "scr"])
def test_a_model_without_trunk_and_head_is_refused(strategy):
    from cl_bench.errors import ConfigError
    from cl_bench.registry import STRATEGIES

    cfg = compose_config([f"strategy={strategy}"])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ConfigError, match=f"strategy '{strategy}' needs .*model 'Sequential'"):
        STRATEGIES.build(strategy, cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.1), CE,
                         train_mb_size=8, train_epochs=1, eval_mb_size=8, device="cpu")
