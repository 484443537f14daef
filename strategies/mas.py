"""Memory Aware Synapses (Aljundi, Babiloni, Elhoseiny, Rohrbach & Tuytelaars, "Memory Aware
Synapses: Learning what (not) to forget", ECCV 2018), through Avalanche's MASPlugin.

After each experience a weight's importance is the mean magnitude of the gradient of the squared
L2 norm of the model's output over that experience's data: no labels are needed, only how
sensitive the learned function is to the weight. Later experiences pay
lambda_reg * sum importance * (theta - theta_end)^2.

Avalanche follows FACIL rather than the paper in two respects: the absolute value is taken of the
minibatch-mean gradient (the paper averages per-sample magnitudes), and importances are combined
across experiences as alpha * old + (1 - alpha) * new instead of summed.
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import MASPlugin as AvalancheMASPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData

from cl_bench.registry import register_strategy
from cl_bench.rules import between, number_at_least


class MASPlugin(AvalancheMASPlugin):
    """Avalanche's MAS, with its anchors and importances checkpointed as tensors."""

    def before_backward(self, strategy, **kwargs):
        # Avalanche's version refuses a minibatch whose loss is exactly 0 (`if not strategy.loss`
        # raises "Loss is not available"), which a well-fit float32 batch reaches; the penalty
        # is the same.
        if strategy.clock.train_exp_counter == 0:
            return
        penalty = sum(torch.sum(self.importance[name].data * (p - self.params[name].data).pow(2))
                      for name, p in strategy.model.named_parameters() if name in self.importance)
        strategy.loss += self._lambda * penalty

    def state_dict(self) -> dict:
        def plain(params):
            return None if params is None else {name: p.data for name, p in params.items()}

        return {"params": plain(self.params), "importance": plain(self.importance)}

    def load_state_dict(self, state: dict) -> None:
        def wrapped(params):
            if params is None:
                return None
            return {name: ParamData(name, init_tensor=t, device=t.device) for name, t in params.items()}

        self.params = wrapped(state["params"])
        self.importance = wrapped(state["importance"])


@register_strategy("mas", rules={"lambda_reg": number_at_least(0), "alpha": between(0, 1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    mas = MASPlugin(lambda_reg=float(cfg.lambda_reg), alpha=float(cfg.alpha))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[mas, *plugins], **common
    )
