"""Fast/slow weights: the two rates do what the interpretation says."""
import torch

from cl_bench.registry import MODELS, STRATEGIES
from cl_bench.run import quiet_evaluator
from tests.conftest import build_scenario, compose_config


def build(overrides=(), seed=0):
    cfg = compose_config(["strategy=fast_slow", *overrides])
    torch.manual_seed(seed)
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, 10, scenario.input_shape, None)
    strategy = STRATEGIES.build(cfg.strategy.name, cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01),
                                torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=1, eval_mb_size=256,
                                device="cpu", evaluator=quiet_evaluator())
    plugin = next(p for p in strategy.plugins if type(p).__name__ == "FastSlowPlugin")
    return scenario, model, strategy, plugin


def train(strategy, scenario, n=3):
    for exp in list(scenario.benchmark.train_stream)[:n]:
        strategy.train(exp)


def test_slow_step_zero_leaves_slow_weights_unchanged():
    scenario, model, strategy, plugin = build(["strategy.slow_step=0.0"])
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(strategy, scenario)
    assert all(torch.equal(plugin.slow[n], initial[n]) for n in initial)
    # predicting with the slow weights: the model holds them between experiences
    assert all(torch.equal(p, initial[n]) for n, p in model.named_parameters())


def test_consolidation_zero_is_fine_tuning_of_the_fast_weights():
    scenario, _, strategy, plugin = build(["strategy.consolidation=0.0", "strategy.predict_with=fast"])
    train(strategy, scenario)
    naive_cfg = compose_config(["strategy=naive"])
    torch.manual_seed(0)
    model = MODELS.build("mlp", naive_cfg.model, 10, scenario.input_shape, None)
    naive = STRATEGIES.build("naive", naive_cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01),
                             torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=1, eval_mb_size=256,
                             device="cpu", evaluator=quiet_evaluator())
    train(naive, scenario)
    assert all(torch.equal(plugin.fast[n], p) for n, p in model.named_parameters())


def test_state_persists_across_experiences():
    scenario, model, strategy, plugin = build()
    stream = list(scenario.benchmark.train_stream)
    strategy.train(stream[0])
    fisher_1 = {n: f.clone() for n, f in plugin.fisher.items()}
    fast_1 = {n: w.clone() for n, w in plugin.fast.items()}
    slow_1 = {n: w.clone() for n, w in plugin.slow.items()}
    strategy.train(stream[1])
    # the Fisher accumulates, the fast weights continue from where they were, slow moves toward them
    assert all((plugin.fisher[n] >= fisher_1[n]).all() for n in fisher_1)
    assert any(not torch.equal(plugin.fast[n], fast_1[n]) for n in fast_1)
    for n in slow_1:
        assert torch.allclose(plugin.slow[n], slow_1[n] + 0.5 * (plugin.fast[n] - slow_1[n]), atol=1e-6)


def test_fast_slow_runs_from_the_cli_config(run_job):
    results = run_job(["strategy=fast_slow", "train.epochs=1"])
    assert results["status"] == "completed"


def test_default_settings_train_a_small_model_without_diverging(run_job):
    results = run_job(["strategy=fast_slow", "train.epochs=1", "train.batch_size=64", "model.hidden_sizes=[32]"])
    assert results["status"] == "completed"
