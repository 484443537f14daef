"""CLASSP's mechanism, pinned on fixed gradient sequences."""
import pytest
import torch

from cl_bench.registry import MODELS, STRATEGIES
from strategies.classp import CLASSP
from tests.conftest import build_scenario, compose_config


def apply(opt, w, grads):
    for g in grads:
        w.grad = g.clone()
        opt.step()


def test_update_equals_formula_p1():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = CLASSP([w], lr=0.2, threshold=0.0, eps=1e-5, power=1.0)
    grads = [torch.tensor([0.5, -1.0, 2.0]), torch.tensor([1.0, 0.5, -1.0]), torch.tensor([-0.25, 2.0, 0.5])]
    expected = torch.tensor([1.0, -2.0, 0.5])
    acc = torch.zeros(3)
    for g in grads:
        expected -= 0.2 * g / (1e-5 + acc)  # previous gradients only
        acc += g.abs()
        apply(opt, w, [g])
        assert torch.allclose(w.data, expected, rtol=1e-6), (w.data, expected)
    assert torch.allclose(opt.state[w]["accumulator"], acc)


def test_update_equals_formula_p2():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = CLASSP([w], lr=0.1, threshold=0.0, eps=1e-3, power=2.0)
    g1, g2 = torch.tensor([0.3, -0.4]), torch.tensor([0.6, 0.2])
    apply(opt, w, [g1, g2])
    expected = -0.1 * g1 / (1e-3) ** 0.5 - 0.1 * g2 / (1e-3 + g1 ** 2) ** 0.5
    assert torch.allclose(w.data, expected, rtol=1e-5)
    assert torch.allclose(opt.state[w]["accumulator"], g1 ** 2 + g2 ** 2)


def test_weights_below_threshold_neither_move_nor_accumulate():
    w = torch.nn.Parameter(torch.ones(4))
    opt = CLASSP([w], lr=0.2, threshold=0.5)
    g = torch.tensor([0.1, -0.5, 0.8, -2.0])  # squared: 0.01, 0.25, 0.64, 4.0
    apply(opt, w, [g, g])
    moved = w.data != 1.0
    assert moved.tolist() == [False, False, True, True]
    assert opt.state[w]["accumulator"].tolist() == pytest.approx([0.0, 0.0, 1.6, 4.0])


def test_sparsity_rises_with_threshold():
    torch.manual_seed(0)
    grads = [torch.randn(10_000) for _ in range(5)]
    fractions = []
    for thr in (0.0, 0.1, 0.5, 1.0, 4.0):
        w = torch.nn.Parameter(torch.zeros(10_000))
        apply(CLASSP([w], threshold=thr), w, grads)
        fractions.append((w.data != 0).float().mean().item())
    assert fractions == sorted(fractions, reverse=True) and fractions[0] == 1.0 and fractions[-1] < 0.5
    assert len(set(fractions)) == len(fractions)


def test_without_scaling_steps_are_plain_sgd_and_accumulator_runs():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = CLASSP([w], lr=0.2, threshold=0.0, apply_scaling=False)
    g = torch.tensor([1.0, -3.0])
    apply(opt, w, [g, g])
    assert torch.allclose(w.data, -0.4 * g)
    assert torch.allclose(opt.state[w]["accumulator"], 2 * g.abs())


def test_safe_first_step_puts_the_current_gradient_in_the_denominator():
    g1, g2 = torch.tensor([0.8, -3.0]), torch.tensor([2.0, 1.0])
    w = torch.nn.Parameter(torch.zeros(2))
    opt = CLASSP([w], lr=0.2, threshold=0.5, eps=1e-5, power=2.0, rule="safe_first_step")
    apply(opt, w, [g1])
    first = 0.2 * g1 / (1e-5 + g1 ** 2) ** 0.5
    assert torch.allclose(w.data, -first)  # about lr * sign(g): the paper rule would step by lr * g / eps**0.5
    assert first.abs().max() <= 0.2
    apply(opt, w, [g2])
    assert torch.allclose(w.data, -first - 0.2 * g2 / (1e-5 + g1 ** 2 + g2 ** 2) ** 0.5)
    assert torch.allclose(opt.state[w]["accumulator"], g1 ** 2 + g2 ** 2)


def test_code_rule_reproduces_released_code():
    g = torch.tensor([0.01, -2.0])
    # threshold < 1: the bool gate is always open, even for a tiny gradient element
    w = torch.nn.Parameter(torch.zeros(2))
    opt = CLASSP([w], lr=0.2, threshold=0.5, eps=1e-5, power=2.0, rule="code")
    apply(opt, w, [g])
    # sum |g| (not g^2) including the current gradient, then the p-th root
    assert torch.allclose(opt.state[w]["accumulator"], g.abs())
    assert torch.allclose(w.data, -0.2 * g / (1e-5 + g.abs()) ** 0.5)
    # threshold >= 1 freezes everything
    w2 = torch.nn.Parameter(torch.zeros(2))
    apply(CLASSP([w2], threshold=1.0, rule="code"), w2, [g])
    assert torch.equal(w2.data, torch.zeros(2))


def _strategy_on_digits(name, overrides=()):
    cfg = compose_config([f"strategy={name}", "train.epochs=1", *overrides])
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, scenario.n_classes, scenario.input_shape, None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    from cl_bench.run import quiet_evaluator

    strategy = STRATEGIES.build(name, cfg.strategy, model, optimizer, torch.nn.CrossEntropyLoss(),
                                train_mb_size=32, train_epochs=1, eval_mb_size=256, device="cpu",
                                evaluator=quiet_evaluator())
    return scenario, model, strategy


def test_state_persists_across_experiences_and_phase_switch():
    scenario, model, strategy = _strategy_on_digits("classp", ["strategy.phase_switch=true", "strategy.threshold=0.0"])
    stream = scenario.benchmark.train_stream
    strategy.train(stream[0])
    assert not strategy.optimizer.param_groups[0]["apply_scaling"]
    first = {k: v["accumulator"].clone() for k, v in enumerate(strategy.optimizer.state.values())}
    assert all(a.sum() > 0 for a in first.values())
    strategy.train(stream[1])
    assert strategy.optimizer.param_groups[0]["apply_scaling"]
    after = {k: v["accumulator"] for k, v in enumerate(strategy.optimizer.state.values())}
    for k in first:
        assert (after[k] >= first[k]).all() and (after[k] > first[k]).any()


def test_memory_footprint_smaller_than_ewc():
    scenario, model, classp = _strategy_on_digits("classp")
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    for exp in list(scenario.benchmark.train_stream)[:2]:
        classp.train(exp)
    assert classp.optimizer.state_bytes() == n_bytes

    scenario, model, ewc = _strategy_on_digits("ewc")
    for exp in list(scenario.benchmark.train_stream)[:2]:
        ewc.train(exp)
    plugin = next(p for p in ewc.plugins if type(p).__name__ == "EWCPlugin")
    held = sum(p.data.numel() * p.data.element_size() for d in (plugin.importances, plugin.saved_params)
               for per_exp in d.values() for p in per_exp.values())
    assert held >= 2 * n_bytes > classp.optimizer.state_bytes()
