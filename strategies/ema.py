"""Evaluate an exponential moving average of the weights (an add-on for any strategy):
`cl-bench strategy=replay +addons=ema addons.ema.decay=0.99`.

Training is untouched; after every update the average moves towards the trained weights,
    w_avg <- decay * w_avg + (1 - decay) * w,
and every evaluation (continual and task-end) classifies with w_avg. Soutif-Cormerais et al.
("A Comprehensive Empirical Evaluation on Online Continual Learning", ICCV-W / CoLLAs 2023)
report that evaluating such an average makes the accuracy curve of online methods much more
stable; here it is tried against the stability gap. The average starts from the initial
weights, so it lags by about 1 / (1 - decay) updates: 100 at the default, against ~94 updates
per Split-MNIST task at batch 128. Buffers (BatchNorm statistics) are copied, not averaged.
"""
from __future__ import annotations

import copy

import torch
from avalanche.training.plugins import SupervisedPlugin

from cl_bench.errors import ConfigError
from cl_bench.registry import register_addon
from cl_bench.rules import between


class EMAPlugin(SupervisedPlugin):
    def __init__(self, decay: float = 0.99):
        super().__init__()
        self.decay = decay
        self.average: torch.nn.Module | None = None
        self.live: torch.nn.Module | None = None

    def evaluated_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module evaluation classifies with (called once, before training)."""
        self.live, self.average = model, copy.deepcopy(model)
        self.average.requires_grad_(False)
        return self.average

    def before_training_exp(self, strategy, **kwargs):
        shapes = [p.shape for p in self.live.parameters()]
        if shapes != [p.shape for p in self.average.parameters()]:
            raise ConfigError("addons.ema averages a fixed set of weights; this strategy changes the model's "
                              "parameters between experiences (columns, heads): remove +addons=ema")
        self.average.to(strategy.device)

    @torch.no_grad()
    def after_training_iteration(self, strategy, **kwargs):
        averaged, live = list(self.average.parameters()), list(self.live.parameters())
        torch._foreach_lerp_(averaged, live, 1.0 - self.decay)
        for a, b in zip(self.average.buffers(), self.live.buffers()):
            a.copy_(b)

    def state_dict(self) -> dict:
        return {"average": self.average.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state["average"])


@register_addon("ema", rules={"decay": between(0, 1, high_open=True)})
def build(cfg, seed: int) -> EMAPlugin:
    return EMAPlugin(decay=float(cfg.decay))
