import pytest
import torch
from avalanche.models import MultiTaskModule

from cl_bench.registry import MODELS, list_models
from tests.conftest import compose_config

SHAPES = {"mlp": [(1, 8, 8), (1, 28, 28)], "convnet": [(1, 8, 8), (1, 28, 28), (3, 32, 32)],
          "resnet18_reduced": [(3, 32, 32), (1, 28, 28)]}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_single_and_multi_head(name):
    cfg = compose_config([f"model={name}"]).model
    for shape in SHAPES.get(name, [(1, 28, 28)]):
        x = torch.randn(4, *shape)
        single = MODELS.build(name, cfg, 10, shape, None)
        assert single(x).shape == (4, 10)
        multi = MODELS.build(name, cfg, 2, shape, 5)
        assert isinstance(multi, MultiTaskModule)
        assert multi(x, torch.tensor([0, 1, 4, 1])).shape == (4, 2)
        assert multi(x, 3).shape == (4, 2)


def test_multi_head_routes_each_sample_to_its_task_head():
    cfg = compose_config(["model=mlp", "model.hidden_sizes=[16]"]).model
    model = MODELS.build("mlp", cfg, 2, (1, 8, 8), 3).eval()
    x = torch.randn(6, 1, 8, 8)
    tasks = torch.tensor([2, 0, 1, 1, 2, 0])
    mixed = model(x, tasks)
    for i, t in enumerate(tasks.tolist()):
        assert torch.allclose(mixed[i], model(x[i:i + 1], t)[0])


def test_mlp_hidden_sizes_are_configurable():
    cfg = compose_config(["model=mlp", "model.hidden_sizes=[32,16,8]"]).model
    model = MODELS.build("mlp", cfg, 10, (1, 28, 28), None)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [32, 16, 8, 10]


def test_reduced_resnet18_has_nf_20_widths():
    cfg = compose_config(["model=resnet18_reduced"]).model
    model = MODELS.build("resnet18_reduced", cfg, 10, (3, 32, 32), None)
    assert model.head.in_features == 160
    n_params = sum(p.numel() for p in model.parameters())
    assert 1.0e6 < n_params < 1.2e6  # the reduced ResNet-18 of GEM has about 1.1M parameters
