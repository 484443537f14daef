"""GEM, A-GEM, GDumb and online (per-sample reservoir) replay: each mechanism does what its paper
says, on small tensors with fixed seeds; bad hyperparameters fail with one line."""
from types import SimpleNamespace

import pytest
import torch
from avalanche.training.plugins import SupervisedPlugin

from cl_bench.registry import MODELS, STRATEGIES
from cl_bench.run import quiet_evaluator
from strategies.agem import AGEMPlugin
from strategies.gem import GEMPlugin
from strategies.online_replay import OnlineReservoirReplayPlugin
from tests.conftest import build_scenario, compose_config


def flat_grad(model) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def set_grad(model, g: torch.Tensor) -> None:
    offset = 0
    for p in model.parameters():
        p.grad = g[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def fake_strategy(model, experiences_done: int):
    return SimpleNamespace(model=model, device=torch.device("cpu"),
                           clock=SimpleNamespace(train_exp_counter=experiences_done))


def build(name: str, overrides=(), epochs=1, batch=32):
    cfg = compose_config([f"strategy={name}", "model.hidden_sizes=[32]", *overrides])
    torch.manual_seed(0)
    scenario = build_scenario("split_digits", cfg.scenario, None, 0)
    model = MODELS.build("mlp", cfg.model, 10, scenario.input_shape, None)
    strategy = STRATEGIES.build(name, cfg.strategy, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9),
                                torch.nn.CrossEntropyLoss(), train_mb_size=batch, train_epochs=epochs, eval_mb_size=256,
                                device="cpu", evaluator=quiet_evaluator())
    return scenario, model, strategy, strategy.plugins[0]


# --- GEM ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("memory_strength", [0.0, 0.5])
def test_gem_projection_satisfies_every_memory_constraint(memory_strength):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    n = sum(p.numel() for p in model.parameters())
    plugin = GEMPlugin(patterns_per_experience=8, memory_strength=memory_strength)
    plugin.G = torch.randn(3, n)  # one memory gradient per past experience
    g = -plugin.G[0] - 0.3 * plugin.G[1] + 0.1 * torch.randn(n)  # against the first two
    assert (plugin.G @ g < 0).sum() >= 1
    set_grad(model, g)
    plugin.after_backward(fake_strategy(model, experiences_done=3))
    projected = flat_grad(model)
    # g~ = g + G^T v with dual v >= memory_strength; the QP's ridge (1e-3 I, as in the authors'
    # code) lets a constraint miss zero by at most 1e-3 v.
    v = torch.linalg.lstsq(plugin.G.T, (projected - g).unsqueeze(1)).solution.squeeze(1)
    assert (v >= memory_strength - 1e-4).all()
    assert (plugin.G @ projected >= -1e-3 * v - 1e-5).all()
    assert (plugin.G @ projected).min() > (plugin.G @ g).min() + 1.0


def test_gem_leaves_an_agreeing_gradient_alone():
    torch.manual_seed(1)
    model = torch.nn.Linear(4, 3)
    plugin = GEMPlugin(patterns_per_experience=8, memory_strength=0.5)
    plugin.G = torch.randn(2, 15)
    g = plugin.G.sum(0) * 10  # positive dot product with both
    assert (plugin.G @ g > 0).all()
    set_grad(model, g)
    plugin.after_backward(fake_strategy(model, experiences_done=2))
    assert torch.equal(flat_grad(model), g)


# --- A-GEM --------------------------------------------------------------------------------------

def test_agem_projects_onto_the_reference_gradient_half_space():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    plugin = AGEMPlugin(patterns_per_experience=8, sample_size=8)
    plugin.buffers = ["a past experience"]  # non-empty memory: A-GEM is active
    reference = torch.randn(15)
    plugin.reference_gradients = reference
    g = -2 * reference + torch.randn(15)
    assert g @ reference < 0
    set_grad(model, g)
    plugin.after_backward(fake_strategy(model, experiences_done=1))
    projected = flat_grad(model)
    assert projected @ reference == pytest.approx(0.0, abs=1e-4)  # on the boundary: the closest point
    assert torch.allclose(projected, g - (g @ reference) / (reference @ reference) * reference, atol=1e-6)

    agreeing = reference + 0.1 * torch.randn(15)
    set_grad(model, agreeing)
    plugin.after_backward(fake_strategy(model, experiences_done=1))
    assert torch.equal(flat_grad(model), agreeing)


def test_agem_reference_batch_is_balanced_over_past_experiences():
    scenario, _, strategy, plugin = build("agem", ["strategy.patterns_per_experience=20", "strategy.sample_size=12"])
    for exp in list(scenario.benchmark.train_stream)[:3]:
        strategy.train(exp)
    assert [len(b) for b in plugin.buffers] == [20, 20, 20]
    x, y, t = plugin.sample_from_memory()
    classes = [set(exp.classes_in_this_experience) for exp in list(scenario.benchmark.train_stream)[:3]]
    assert [sum(int(c) in cs for c in y) for cs in classes] == [4, 4, 4]
    plugin.sample_size = 2  # fewer than the experiences in memory: one from each, not an empty batch
    plugin._open_memory_loader()
    assert len(plugin.sample_from_memory()[1]) == 3


# --- GDumb --------------------------------------------------------------------------------------

def test_gdumb_trains_from_scratch_only_on_its_class_balanced_memory():
    scenario, model, strategy, plugin = build("gdumb", ["strategy.mem_size=20"], epochs=2, batch=8)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    trained_on, weights_at_start = [], []

    class Spy(SupervisedPlugin):
        def before_training_exp(self, strategy, **kwargs):
            weights_at_start.append({k: v.clone() for k, v in strategy.model.state_dict().items()})
            trained_on.clear()

        def before_training_iteration(self, strategy, **kwargs):
            trained_on.extend(map(tuple, strategy.mb_x.tolist()))

    strategy.plugins.insert(1, Spy())
    for exp in list(scenario.benchmark.train_stream)[:2]:
        strategy.train(exp)
    memory_x, memory_y, _ = next(iter(torch.utils.data.DataLoader(plugin.storage_policy.buffer, batch_size=100)))
    counts = torch.bincount(memory_y)
    assert counts[counts > 0].tolist() == [5, 5, 5, 5]  # 20 samples over the 4 classes seen
    assert sorted(trained_on) == sorted(map(tuple, memory_x.tolist() * 2))  # each once per epoch, nothing else
    assert all(torch.equal(weights_at_start[1][k], initial[k]) for k in initial)  # from scratch again
    assert not torch.equal(model.state_dict()["head.weight"], initial["head.weight"])


# --- online reservoir replay --------------------------------------------------------------------

def test_reservoir_keeps_each_of_n_samples_with_probability_m_over_n():
    torch.manual_seed(0)
    n, m, trials = 40, 8, 1500
    kept = torch.zeros(n)
    for _ in range(trials):
        plugin = OnlineReservoirReplayPlugin(mem_size=m)
        for start in range(0, n, 5):  # the stream in minibatches of 5
            ids = torch.arange(start, start + 5)
            plugin.insert(ids.float().unsqueeze(1), ids, torch.zeros(5, dtype=torch.long))
        stored = plugin.memory[1][:plugin.size]
        assert plugin.size == m and len(set(stored.tolist())) == m
        kept[stored] += 1
    p = m / n
    sd = (trials * p * (1 - p)) ** 0.5
    assert ((kept - trials * p).abs() < 4.5 * sd).all(), kept  # every sample, alone
    # the first m (kept by filling, then at risk the longest) and the last m (offered last) alike:
    # Algorithm R's off-by-ones would bias one group by several standard deviations
    for group in (kept[:m], kept[-m:]):
        assert abs(group.mean() - trials * p) < 3 * sd / m ** 0.5


def test_memory_batch_joins_every_iteration_from_the_first_experience_on():
    scenario, _, strategy, plugin = build("online_replay", ["strategy.mem_size=50", "strategy.batch_size_mem=10"],
                                          batch=16)
    batches = []  # (memory size, new samples, samples trained on) per iteration
    original = plugin.before_training_iteration

    def spy(strategy, **kwargs):
        original(strategy, **kwargs)
        batches.append((plugin.size, len(plugin.incoming[1]), len(strategy.mb_y)))

    plugin.before_training_iteration = spy
    strategy.train(scenario.benchmark.train_stream[0])
    assert batches[0] == (0, 16, 16)  # nothing to replay before the first update
    assert all(size > 0 and joined == new + min(10, size) for size, new, joined in batches[1:])
    assert plugin.seen == len(scenario.benchmark.train_stream[0].dataset)


# --- config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("strategy, override, message", [
    ("gem", "strategy.patterns_per_experience=0", "strategy.patterns_per_experience must be an integer >= 1, got 0"),
    ("gem", "strategy.memory_strength=-0.5", "strategy.memory_strength must be a number >= 0, got -0.5"),
    ("agem", "strategy.sample_size=0", "strategy.sample_size must be an integer >= 1, got 0"),
    ("gdumb", "strategy.mem_size=0", "strategy.mem_size must be an integer >= 1, got 0"),
    ("online_replay", "strategy.batch_size_mem=0", "strategy.batch_size_mem must be null or an integer >= 1, got 0"),
])
def test_bad_hyperparameters_fail_with_one_line(strategy, override, message, run_job):
    with pytest.raises(ValueError, match=message) as caught:
        run_job([f"strategy={strategy}", override])
    assert "\n" not in str(caught.value)
