"""Mechanisms of the logit- and exemplar-based strategies: DER, ER-ACE, ER-AML, iCaRL, BiC."""
import pytest
import torch

from cl_bench.registry import MODELS, STRATEGIES
from cl_bench.run import quiet_evaluator
from tests.conftest import build_scenario, compose_config


def build(strategy: str, overrides=(), seed=0, hidden="[32]"):
    cfg = compose_config([f"strategy={strategy}", f"model.hidden_sizes={hidden}", *overrides])
    torch.manual_seed(seed)
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, scenario.n_classes, scenario.input_shape, None)
    built = STRATEGIES.build(strategy, cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01),
                             torch.nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=1, eval_mb_size=256,
                             device="cpu", evaluator=quiet_evaluator())
    return scenario, model, built


def experiences(scenario):
    return list(scenario.benchmark.train_stream)


# --- DER ----------------------------------------------------------------------------------------

def der_memory(strategy):
    from strategies.der import samples_with_logits

    return samples_with_logits(strategy.storage_policy.buffer)


def test_der_stores_the_logits_seen_at_insertion_and_keeps_them():
    scenario, model, strategy = build("der")
    first, second = experiences(scenario)[:2]
    strategy.train(first)
    memory = der_memory(strategy)
    assert set(memory["y"].tolist()) == set(scenario.experiences[0].classes)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(memory["logits"], model(memory["x"]), atol=1e-6)  # the model that inserted them
    strategy.train(second)
    later = der_memory(strategy)
    old = torch.isin(later["y"], torch.tensor(scenario.experiences[0].classes))
    # The first experience's samples keep the logits they were stored with, not the current model's.
    stored = {tuple(x.flatten().tolist()): l for x, l in zip(memory["x"], memory["logits"])}
    assert all(torch.equal(stored[tuple(x.flatten().tolist())], l) for x, l in zip(later["x"][old], later["logits"][old]))
    with torch.no_grad():
        model.eval()
        assert not torch.allclose(later["logits"][old], model(later["x"][old]), atol=1e-3)


def test_der_memory_survives_a_checkpoint_round_trip():
    scenario, _, strategy = build("der")
    strategy.train(experiences(scenario)[0])
    state = strategy.state_dict()
    _, _, fresh = build("der")
    fresh.load_state_dict(state)
    a, b = der_memory(strategy), der_memory(fresh)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_der_bad_value_and_multi_head_are_refused(run_job):
    with pytest.raises(ValueError, match=r"^strategy.alpha must be a number >= 0, got -1$"):
        run_job(["strategy=der", "strategy.alpha=-1"], name="alpha")
    with pytest.raises(ValueError, match="strategy 'der' runs class_incremental or domain_incremental only"):
        run_job(["strategy=der", "scenario.task_labels=true"], name="task_il")
