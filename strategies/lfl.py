"""Less-Forgetful Learning (Jung, Ju, Jung & Kim, "Less-forgetting Learning in Deep Neural
Networks", arXiv 1607.00122, 2016), through Avalanche's LFLPlugin.

After each experience the model is copied and frozen, and so is its classifier layer; on later
experiences the loss gains lambda_e * MSE(features, features of the frozen copy) on the new data,
so the feature space (and with the frozen classifier, the decision boundaries) moves little.
The paper's setting is a shift of the input domain with a fixed label set.

Deviations from Avalanche, which needs an Avalanche `BaseModel` with `get_features()` and freezes
the last `nn.Linear` it finds: features are cl-bench's `model.trunk(x)`, and the layer frozen
is the head of the experience just trained (the single `head`, or `heads[t]` for its task labels
t): with cl-bench's fixed set of heads the last Linear is the head of the LAST task, not yet
trained. Features of both models are computed in eval mode as in Avalanche, but the model is
put back in the mode it trained in (Avalanche leaves it in eval mode).
"""
from __future__ import annotations

import copy

from avalanche.training.plugins import LFLPlugin as AvalancheLFLPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import freeze_everything

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import number_at_least


class LFLPlugin(AvalancheLFLPlugin):
    """Avalanche's LFL on cl-bench's trunk + head(s) models, checkpointed: the previous model as a
    state dict, and which heads are frozen (requires_grad is not in a model's state dict)."""

    def __init__(self, model, lambda_e: float):
        super().__init__(lambda_e=lambda_e)
        self.model = model
        self.frozen_heads: list[int] = []  # task labels; [0] stands for the single head

    def _head(self, task: int):
        return self.model.heads[task] if hasattr(self.model, "heads") else self.model.head

    def before_training(self, strategy, **kwargs):
        pass  # Avalanche's check for BaseModel.get_features; build() checks for a trunk instead

    def compute_features(self, model, x):
        was_training = model.training
        model.eval()
        self.prev_model.eval()
        features, prev_features = model.trunk(x), self.prev_model.trunk(x)
        model.train(was_training)
        return features, prev_features

    def after_training_exp(self, strategy, **kwargs):
        self.prev_model = copy.deepcopy(strategy.model)
        freeze_everything(self.prev_model)
        tasks = strategy.experience.task_labels if hasattr(self.model, "heads") else [0]
        self.frozen_heads = sorted({*self.frozen_heads, *(int(t) for t in tasks)})
        self._freeze_heads()

    def _freeze_heads(self) -> None:
        for task in self.frozen_heads:
            for p in self._head(task).parameters():
                p.requires_grad = False

    def state_dict(self) -> dict:
        return {"prev_model": None if self.prev_model is None else self.prev_model.state_dict(),
                "frozen_heads": list(self.frozen_heads)}

    def load_state_dict(self, state: dict) -> None:
        self.prev_model = None
        if state["prev_model"] is not None:
            self.prev_model = copy.deepcopy(self.model)
            self.prev_model.load_state_dict(state["prev_model"])
            freeze_everything(self.prev_model)
        self.frozen_heads = list(state["frozen_heads"])
        self._freeze_heads()


@register_strategy("lfl", rules={"lambda_e": number_at_least(0)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if not hasattr(model, "trunk") or not (hasattr(model, "head") or hasattr(model, "heads")):
        raise ConfigError(f"strategy 'lfl' needs a model with a feature trunk and a classifier head; "
                          f"model '{type(model).__name__}' has no 'trunk' and 'head'/'heads'")
    lfl = LFLPlugin(model, lambda_e=float(cfg.lambda_e))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[lfl, *plugins], **common
    )
