"""Add-ons that change what evaluation classifies with: an EMA of the weights, a nearest-class-mean
classifier on running class means. Training must be untouched; evaluation must use the view."""
import json

import pytest
import torch
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.models.heads import SingleHeadClassifier
from tests.conftest import tiny
from strategies.ema import EMAPlugin
from strategies.ncm_eval import NCMEvalPlugin


class FakeStrategy:
    device = "cpu"

    def __init__(self, y=None):
        self.mb_y = y


def test_ema_average_follows_the_closed_form_over_a_weight_trajectory():
    model = nn.Linear(3, 2)
    ema = EMAPlugin(decay=0.9)
    average = ema.evaluated_model(model)
    expected = [p.detach().clone() for p in model.parameters()]
    ema.before_training_exp(FakeStrategy())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
        ema.after_training_iteration(FakeStrategy())
        expected = [0.9 * e + 0.1 * p.detach() for e, p in zip(expected, model.parameters())]
    for a, e in zip(average.parameters(), expected):
        assert torch.allclose(a, e, atol=1e-6)
    assert not torch.allclose(average.weight, model.weight)  # the trained weights are not what is evaluated


def test_ema_refuses_a_model_that_grows():
    model = nn.Sequential(nn.Linear(3, 2))
    ema = EMAPlugin(decay=0.5)
    ema.evaluated_model(model)
    model.append(nn.Linear(2, 2))  # as PNN adds a column
    with pytest.raises(ConfigError, match="addons.ema averages a fixed set of weights"):
        ema.before_training_exp(FakeStrategy())


def test_ncm_scores_are_cosine_similarities_to_running_class_means():
    torch.manual_seed(0)
    model = SingleHeadClassifier(nn.Identity(), 2, 3)
    ncm = NCMEvalPlugin(momentum=0.5)
    view = ncm.evaluated_model(model)
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    assert torch.equal(view(x), model.head(x))  # no class has a mean yet: the linear head answers
    model.train()
    model(x)
    ncm.after_forward(FakeStrategy(torch.tensor([0, 0, 1])))
    assert torch.allclose(view.means[0], torch.tensor([1.0, 0.0]))  # first batch of a class sets its mean
    assert view.seen.tolist() == [True, True, False]
    model(torch.tensor([[0.0, 1.0]]))
    ncm.after_forward(FakeStrategy(torch.tensor([0])))
    assert torch.allclose(view.means[0], torch.tensor([0.5, 0.5]))  # then momentum 0.5
    assert torch.allclose(view.means[1], torch.tensor([0.0, 1.0]))  # absent classes keep their mean
    model.eval()
    q = torch.tensor([[2.0, 1.0]])
    scores = view(q)
    cos = nn.functional.normalize(q, dim=1) @ nn.functional.normalize(view.means[:2], dim=1).T
    assert torch.allclose(scores[0, :2], cos[0])
    assert scores[0, 2] == float("-inf")  # a class never trained on is never predicted
    model(torch.tensor([[5.0, 5.0]]))  # an evaluation forward does not move the means
    ncm.after_forward(FakeStrategy(torch.tensor([1])))
    assert torch.allclose(view.means[1], torch.tensor([0.0, 1.0]))


def test_ncm_refuses_a_multi_head_model():
    from cl_bench.models.heads import MultiHeadClassifier

    with pytest.raises(ConfigError, match="addons.ncm_eval needs a single-head model"):
        NCMEvalPlugin().evaluated_model(MultiHeadClassifier(nn.Identity(), 2, 2, 3))


@pytest.mark.parametrize("addon", ["ema", "ncm_eval"])
def test_a_run_evaluates_the_view_and_trains_the_same_model(addon, run_job, tmp_path):
    base = tiny(["strategy=replay", "eval.schedule=every", "model.hidden_sizes=[32]", "seed=1"])
    plain = run_job(base, name="plain")
    viewed = run_job([*base, f"+addons={addon}"], name=addon)
    assert viewed["status"] == "completed"
    assert viewed["acc_matrix"] != plain["acc_matrix"]  # task-end numbers come from the view
    trained = [torch.load(tmp_path / name / "model.pt") for name in ("plain", addon)]
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])  # training untouched
    assert (tmp_path / addon / "curves.csv").read_text() != (tmp_path / "plain" / "curves.csv").read_text()
    assert json.loads((tmp_path / addon / "results.json").read_text())["config"]["addons"][addon]


def test_two_views_are_refused(run_job):
    with pytest.raises(ConfigError, match="addons ema and ncm_eval each replace the evaluated model; keep one"):
        run_job(tiny(["+addons=[ema,ncm_eval]"]))
