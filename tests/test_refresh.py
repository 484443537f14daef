"""Refresh learning: composes with every strategy, is a no-op at rate 0, unlearns when on."""
import pytest
import torch

from cl_bench.registry import list_strategies
from strategies.refresh import RefreshPlugin
from tests.conftest import build_scenario, on_default_stream, tiny


def weights(run_dir):
    return torch.load(run_dir / "model.pt")


@pytest.mark.parametrize("variant", ["paper", "code"])
@pytest.mark.parametrize("strategy", ["naive", "ewc", "replay"])
def test_rate_zero_is_bit_identical_to_the_base_strategy(strategy, variant, run_job, tmp_path):
    base = tiny([*on_default_stream(strategy), "model.hidden_sizes=[32]", "eval=off"])
    run_job(base, name="base")
    run_job([*base, "+addons=refresh", "addons.refresh.rate=0", f"addons.refresh.variant={variant}"], name="refresh0")
    a, b = weights(tmp_path / "base"), weights(tmp_path / "refresh0")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # two runs per registered strategy; `pytest -m slow`, the second step of .ci/run
@pytest.mark.parametrize("strategy", list_strategies())
def test_refresh_composes_with_every_strategy(strategy, run_job, tmp_path):
    base = tiny([*on_default_stream(strategy), "model.hidden_sizes=[32]", "eval=off"])
    run_job(base, name="base")
    results = run_job([*base, "+addons=refresh", "addons.refresh.rate=0.01"], name="refresh")
    assert results["status"] == "completed"
    a, b = weights(tmp_path / "base"), weights(tmp_path / "refresh")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # it did something


def small_problem(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x, y = torch.randn(64, 8), torch.randint(0, 3, (64,))
    return model, torch.nn.CrossEntropyLoss(), x, y, torch.zeros(64, dtype=torch.long)


@pytest.mark.parametrize("variant", ["paper", "code"])
def test_unlearn_step_raises_the_current_batch_loss(variant):
    model, criterion, x, y, t = small_problem()
    before = criterion(model(x), y).item()
    rate = 0.05 if variant == "paper" else 0.05
    RefreshPlugin(rate=rate, variant=variant, temperature=0.0, noise=0.0).unlearn(model, criterion, x, y, t)
    assert criterion(model(x), y).item() > before


def test_paper_perturbation_is_preconditioned_gradient_ascent():
    model, criterion, x, y, t = small_problem()
    plugin = RefreshPlugin(rate=0.01, temperature=0.0, damping=0.5)
    plugin.fisher = {n: torch.full_like(p, 1.5) for n, p in model.named_parameters()}
    criterion(model(x), y).backward()
    expected = {n: p.detach() + 0.01 * p.grad / (1.5 + 0.5) for n, p in model.named_parameters()}
    plugin.unlearn(model, criterion, x, y, t)
    for n, p in model.named_parameters():
        assert torch.allclose(p, expected[n], atol=1e-7)


def test_paper_noise_has_the_langevin_variance():
    model = torch.nn.Linear(1000, 100, bias=False)
    torch.nn.init.zeros_(model.weight)
    x, y = torch.zeros(4, 1000), torch.zeros(4, dtype=torch.long)  # zero input: zero gradient
    plugin = RefreshPlugin(rate=0.01, temperature=0.5, damping=2.0)
    plugin.unlearn(model, torch.nn.CrossEntropyLoss(), x, y, torch.zeros(4, dtype=torch.long))
    assert model.weight.std().item() == pytest.approx((2 * 0.01 * 0.5 / 2.0) ** 0.5, rel=0.02)


def test_code_perturbation_norm_matches_formula():
    model, criterion, x, y, t = small_problem()
    plugin = RefreshPlugin(rate=1e-3, variant="code", noise=0.0, fisher_scale=0.5)
    plugin.fisher = {n: torch.full_like(p, 2.0) for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plugin.unlearn(model, criterion, x, y, t)
    for n, p in model.named_parameters():
        step = (p.detach() - before[n]).norm().item()
        assert step == pytest.approx(1e-3 * before[n].norm().item() / (1 + 0.5 * 2.0), rel=1e-4)


def test_fisher_accumulates_after_each_experience(run_job):
    from cl_bench.registry import MODELS, STRATEGIES
    from cl_bench.run import quiet_evaluator
    from tests.conftest import compose_config

    cfg = compose_config(["train.epochs=1"])
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, 10, scenario.input_shape, None)
    plugin = RefreshPlugin(rate=1e-3)
    strategy = STRATEGIES.build("naive", cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01),
                                torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=1, eval_mb_size=256,
                                device="cpu", evaluator=quiet_evaluator(), plugins=[plugin])
    assert plugin.fisher == {}
    strategy.train(scenario.benchmark.train_stream[0])
    first = {n: f.clone() for n, f in plugin.fisher.items()}
    assert first and all((f >= 0).all() for f in first.values()) and sum(f.sum() for f in first.values()) > 0
    strategy.train(scenario.benchmark.train_stream[1])
    assert all((plugin.fisher[n] >= first[n]).all() for n in first)  # decay 1: F only grows


def test_bad_refresh_settings(run_job):
    with pytest.raises(ValueError, match="addons.refresh.variant must be one of paper, code"):
        run_job(["+addons=refresh", "addons.refresh.variant=dpo"])
