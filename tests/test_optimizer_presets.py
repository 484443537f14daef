"""The `optimizer` presets take the update of torch's reference (for-loop) implementation of their
class, whatever kernel they name for speed, and their state survives a checkpoint exactly."""
import io

import pytest
import torch
from torch import nn

from cl_bench.run import build_optimizer
from tests.conftest import compose_config


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def steps(net: nn.Module, optimizer: torch.optim.Optimizer, seeds: range) -> None:
    for seed in seeds:
        generator = torch.Generator().manual_seed(seed)
        x, y = torch.randn(4, 8, generator=generator), torch.randint(0, 3, (4,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()


def weights(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in net.parameters()])


@pytest.mark.parametrize("preset", ["adam", "sgd"])
def test_a_preset_takes_the_reference_update(preset):
    cfg = compose_config([f"optimizer={preset}"]).optimizer
    ours, reference = model(), model()
    arguments = {k: v for k, v in cfg.items() if k not in ("_target_", "fused", "foreach")}
    steps(ours, build_optimizer(cfg, ours.parameters()), range(50))
    steps(reference, getattr(torch.optim, cfg._target_.split(".")[-1])(reference.parameters(), foreach=False, **arguments),
          range(50))
    assert not torch.equal(weights(ours), weights(model())), "the steps moved the weights"
    torch.testing.assert_close(weights(ours), weights(reference), rtol=0, atol=1e-5)


@pytest.mark.parametrize("preset", ["adam", "sgd"])
def test_a_presets_state_resumes_exactly(preset):
    cfg = compose_config([f"optimizer={preset}"]).optimizer
    straight = model()
    steps(straight, build_optimizer(cfg, straight.parameters()), range(6))

    resumed = model()
    first = build_optimizer(cfg, resumed.parameters())
    steps(resumed, first, range(3))
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    second = build_optimizer(cfg, resumed.parameters())
    second.load_state_dict(torch.load(io.BytesIO(saved.getvalue()), weights_only=True))
    steps(resumed, second, range(3, 6))
    assert torch.equal(weights(resumed), weights(straight))
