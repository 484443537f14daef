"""Classify by the nearest class mean at evaluation (an add-on for any single-head strategy):
`cl-bench strategy=replay +addons=ncm_eval`.

Training is untouched. Every training forward's features (the model's trunk output, L2-normalised)
update a running mean per class seen in the minibatch,
    mu_c <- (1 - momentum) * mu_c + momentum * mean of the batch's class-c features
(the first batch of a class sets it), so old classes' means move only when replayed samples of
them pass through the network. Evaluation scores a sample by its cosine similarity to each class
mean (-inf for classes never trained on; the linear head until any class has a mean). The
linear head's bias towards the newest classes is what collapses old classes right after a task
switch in class-incremental learning; the nearest-mean classifier of iCaRL (Rebuffi et al. 2017)
has no such head, and here it is tried on any strategy, without exemplar herding, at no cost in
forward passes.
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.registry import register_addon
from cl_bench.rules import between


class FeatureCapture:
    """A forward hook keeping the trunk's last training output. Copies of the model (LwF's old
    model, EMA) copy their hooks: a deep copy of this hook is itself, and it ignores their trunks."""

    def __init__(self, trunk: nn.Module):
        self.trunk, self.features = trunk, None

    def __call__(self, module, inputs, output):
        if module is self.trunk and module.training:
            self.features = output.detach()

    def __deepcopy__(self, memo):
        return self


class NearestClassMean(nn.Module):
    """The evaluated view of the model: its trunk, then cosine similarity to the class means."""

    def __init__(self, model: nn.Module, n_classes: int, feature_dim: int):
        super().__init__()
        self.model = model
        self.register_buffer("means", torch.zeros(n_classes, feature_dim))
        self.register_buffer("seen", torch.zeros(n_classes, dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.trunk(x)
        scores = nn.functional.normalize(features.float(), dim=1) @ nn.functional.normalize(self.means, dim=1).T
        scores = scores.masked_fill(~self.seen, float("-inf"))
        return torch.where(self.seen.any(), scores, self.model.head(features).float())  # no host sync


class NCMEvalPlugin(SupervisedPlugin):
    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.momentum = momentum
        self.view: NearestClassMean | None = None

    def evaluated_model(self, model: nn.Module) -> nn.Module:
        head = getattr(model, "head", None)
        if not (isinstance(getattr(model, "trunk", None), nn.Module) and isinstance(head, nn.Linear)):
            raise ConfigError(f"addons.ncm_eval needs a single-head model with a feature trunk and a linear head "
                              f"(`model.trunk`, `model.head`); model '{type(model).__name__}' has not")
        self.view = NearestClassMean(model, head.out_features, head.in_features)
        self.capture = FeatureCapture(model.trunk)
        model.trunk.register_forward_hook(self.capture)
        return self.view

    def before_training_exp(self, strategy, **kwargs):
        self.view.to(strategy.device)

    @torch.no_grad()
    def after_forward(self, strategy, **kwargs):
        features, y = self.capture.features, strategy.mb_y
        self.capture.features = None
        if features is None or len(features) != len(y):  # a forward on something else than the minibatch
            return
        features = nn.functional.normalize(features.float(), dim=1)
        n = len(self.view.seen)
        counts = torch.bincount(y, minlength=n).float()
        sums = torch.zeros_like(self.view.means).index_add_(0, y, features)
        present = counts > 0
        batch_means = sums / counts.clamp(min=1).unsqueeze(1)
        rate = torch.where(self.view.seen, self.momentum, 1.0).unsqueeze(1)  # a class's first batch sets its mean
        updated = (1 - rate) * self.view.means + rate * batch_means
        self.view.means.copy_(torch.where(present.unsqueeze(1), updated, self.view.means))
        self.view.seen |= present

    def state_dict(self) -> dict:
        return {"means": self.view.means.clone(), "seen": self.view.seen.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.view.means.copy_(state["means"])
        self.view.seen.copy_(state["seen"])


@register_addon("ncm_eval", rules={"momentum": between(0, 1, low_open=True)})
def build(cfg, seed: int) -> NCMEvalPlugin:
    return NCMEvalPlugin(momentum=float(cfg.momentum))
