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
    old = torch.isin(later["y"], torch.as_tensor(scenario.experiences[0].classes))
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


# --- ER-ACE -------------------------------------------------------------------------------------

def test_er_ace_incoming_loss_spans_only_the_incoming_classes():
    _, _, strategy = build("er_ace")
    torch.manual_seed(0)
    out_in = torch.randn(6, 10, requires_grad=True)
    y_in = torch.tensor([4, 5, 4, 5, 4, 5])
    out_buffer = torch.randn(4, 10, requires_grad=True)
    y_buffer = torch.tensor([0, 1, 2, 3])
    strategy.ace_criterion(out_in, y_in, out_buffer, y_buffer).backward()
    absent = [c for c in range(10) if c not in (4, 5)]
    assert torch.all(out_in.grad[:, absent] == 0)  # new data does not push old classes' logits down
    assert torch.all(out_in.grad[:, [4, 5]] != 0)
    assert torch.all(out_buffer.grad != 0)  # memory: cross-entropy over every class


def test_er_ace_memory_takes_in_each_experience_before_training_on_it():
    scenario, _, strategy = build("er_ace")
    exps = experiences(scenario)
    strategy.train(exps[0])
    strategy.train(exps[1])
    classes = set(strategy.storage_policy.buffer.targets)
    assert classes == set(scenario.experiences[0].classes) | set(scenario.experiences[1].classes)
    assert len(strategy.storage_policy.buffer) == 200


# --- ER-AML -------------------------------------------------------------------------------------

def test_er_aml_trains_the_head_only_through_the_memory_cross_entropy():
    scenario, model, strategy = build("er_aml")
    torch.manual_seed(0)
    x = torch.as_tensor(scenario.experiences[0].x_train[:8])
    y = torch.as_tensor(scenario.experiences[0].y_train[:8])
    t = torch.zeros(8, dtype=torch.long)
    memory = (x, y, t)  # positives and negatives for every incoming sample
    loss = strategy.aml_criterion(x, y, t, model(x).detach(), y, memory)  # memory term without gradient
    loss.backward()
    assert model.head.weight.grad is None  # the incoming data never reaches the head ...
    assert model.trunk[1].weight.grad.abs().sum() > 0  # ... it shapes the features (metric learning)


def test_er_aml_runs_with_class_groups_smaller_than_a_batch():
    # 40 samples over 4 classes: groups of 10 < batch 32. Avalanche's own loaders would yield no
    # batch here and its `cycle` loop would never return.
    scenario, _, strategy = build("er_aml", ["strategy.mem_size=40"])
    for exp in experiences(scenario)[:2]:
        strategy.train(exp)
    assert {len(group.buffer) for group in strategy.storage_policy.buffer_groups.values()} == {10}


# --- iCaRL --------------------------------------------------------------------------------------

def test_herding_picks_first_the_sample_nearest_the_mean_then_tracks_it():
    from strategies.icarl import herding_order

    torch.manual_seed(0)
    features = torch.randn(50, 4)
    order = herding_order(features, 10)
    mean = features.mean(dim=0)
    assert order[0] == int(((features - mean) ** 2).sum(dim=1).argmin())
    assert len(set(order)) == 10
    # each prefix's mean is the closest any one added sample could bring it
    for k in range(1, 10):
        chosen = features[order[:k]].sum(dim=0)
        rest = [i for i in range(50) if i not in order[:k]]
        best = min(rest, key=lambda i: float(((mean - (chosen + features[i]) / (k + 1)) ** 2).sum()))
        assert order[k] == best


def test_icarl_classifies_by_the_nearest_mean_of_exemplars():
    scenario, model, strategy = build("icarl")
    icarl = strategy.plugins[0]
    for exp in experiences(scenario)[:2]:
        strategy.train(exp)
    seen = sorted(icarl.exemplars)
    assert seen == sorted(scenario.experiences[0].classes + scenario.experiences[1].classes)
    assert all(len(icarl.exemplars[c]) == 200 // 4 for c in seen)  # K / classes seen
    x = torch.as_tensor(scenario.experiences[0].x_test[:64])
    model.eval()
    with torch.no_grad():
        def features(inputs):
            return torch.nn.functional.normalize(model.trunk(inputs), dim=1)

        means = torch.stack([torch.nn.functional.normalize(features(icarl.exemplars[c]).mean(dim=0), dim=0) for c in seen])
        nearest = torch.tensor(seen)[torch.cdist(features(x), means).argmin(dim=1)]
        assert torch.equal(model(x).argmax(dim=1), nearest)
        model.train()
        assert torch.equal(model(x), model.head.linear(model.trunk(x)))  # training: the network's own head


def test_icarl_distils_old_classes_and_one_hots_the_current_ones():
    scenario, model, strategy = build("icarl")
    loss = next(p for p in strategy.plugins if type(p).__name__ == "ICaRLLoss")
    exps = experiences(scenario)
    strategy.train(exps[0])
    strategy.experience = exps[1]
    loss.before_training_exp(strategy)
    assert loss.old_classes == sorted(scenario.experiences[0].classes)
    logits, targets = torch.zeros(3, 10), torch.as_tensor(scenario.experiences[1].classes[:1] * 3)
    loss.old_logits = torch.full((3, 10), 2.0)
    expected = torch.zeros(3, 10)
    expected[:, loss.old_classes] = torch.sigmoid(torch.tensor(2.0))
    expected[range(3), targets] = 1.0
    assert loss(logits, targets).item() == pytest.approx(torch.nn.functional.binary_cross_entropy(
        torch.sigmoid(logits), expected).item())


# --- BiC ----------------------------------------------------------------------------------------

def test_bic_distils_the_class_distribution_at_temperature_t():
    _, _, strategy = build("bic")
    bic = strategy.plugins[0]
    torch.manual_seed(0)
    new, old = torch.randn(5, 4), torch.randn(5, 4)
    expected = -(torch.softmax(old / bic.T, dim=1) * torch.log_softmax(new / bic.T, dim=1)).sum(dim=1).mean()
    assert bic.cross_entropy(new, old).item() == pytest.approx(expected.item(), rel=1e-6)


def test_bic_corrects_the_last_experiences_classes_in_eval_mode_only():
    scenario, model, strategy = build("bic", ["strategy.stage_2_epochs=20"])
    for exp in experiences(scenario)[:2]:
        strategy.train(exp)
    head = model.head
    assert head.corrected.nonzero().flatten().tolist() == sorted(scenario.experiences[1].classes)
    assert (head.alpha.item(), head.beta.item()) != (1.0, 0.0)  # the stage fitted something
    x = torch.as_tensor(scenario.experiences[0].x_test[:16])
    with torch.no_grad():
        raw = head.linear(model.trunk(x))
        model.train()
        assert torch.equal(model(x), raw)
        model.eval()
        corrected = raw.clone()
        corrected[:, head.corrected] = head.alpha * raw[:, head.corrected] + head.beta
        assert torch.allclose(model(x), corrected)


# --- declared rules and settings ----------------------------------------------------------------

@pytest.mark.parametrize("strategy, override, message", [
    ("er_ace", "strategy.mem_size=0", r"^strategy.mem_size must be an integer >= 1, got 0$"),
    ("er_aml", "strategy.temp=0", r"^strategy.temp must be a number > 0, got 0$"),
    ("icarl", "strategy.memory_size=-5", r"^strategy.memory_size must be an integer >= 1, got -5$"),
    ("bic", "strategy.val_percentage=1.5", r"^strategy.val_percentage must be a number in \(0, 1\), got 1.5$"),
])
def test_bad_values_fail_with_one_line(strategy, override, message, run_job):
    with pytest.raises(ValueError, match=message):
        run_job([f"strategy={strategy}", override])


@pytest.mark.parametrize("strategy, supported", [
    ("er_aml", "class_incremental or domain_incremental"),
    ("icarl", "class_incremental"),
    ("bic", "class_incremental"),
])
def test_multi_head_runs_are_refused(strategy, supported, run_job):
    with pytest.raises(ValueError, match=f"strategy '{strategy}' runs {supported} only; scenario 'split_digits' is task_incremental"):
        run_job([f"strategy={strategy}", "scenario.task_labels=true"])
