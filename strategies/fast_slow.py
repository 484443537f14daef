"""Fast and slow weights for continual (few-shot) learning: this project's interpretation of
Wang et al. 2021 (arXiv 2104.09034), whose abstract is all that is public: "a pair of fast/slow
weights updated interdependently", with a two-step consolidation that learns the task sequence
"without forgetting in the fast weights" and improves generalization "without overfitting in
the slow weights". No official code exists; what is implemented here:

- Fast weights are the network the optimizer trains, carried from task to task. Step 1 of the
  consolidation, at the end of every experience: accumulate the diagonal empirical Fisher F
  (squared minibatch gradients, at most `fisher_samples` samples) and anchor the fast weights
  there; while later tasks train, loss += consolidation * sum_i F_i (w_i - anchor_i)^2
  (learning without forgetting). consolidation = 0 is fine-tuning of the fast weights.
- Slow weights start equal to the fast ones. Step 2, after step 1: slow <- slow + slow_step *
  (fast - slow), a Reptile-style move with its own small rate (generalizing without
  overfitting to the latest task). slow_step = 0 leaves them at their initial values.
- `predict_with` (slow | fast) chooses the set the model holds after each experience, i.e. the
  one task-end evaluation scores. Continual evaluation during an experience always sees the fast
  weights being trained (the slow ones only move at experience ends).
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, between, number_at_least, one_of
from strategies._fisher import empirical_fisher


class FastSlowPlugin(SupervisedPlugin):
    def __init__(self, model: torch.nn.Module, consolidation: float, slow_step: float, predict_with: str,
                 fisher_samples: int = 1024):
        super().__init__()
        self.consolidation, self.slow_step, self.predict_with = consolidation, slow_step, predict_with
        self.fisher_samples = fisher_samples
        self.slow = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.fast = None  # the fast weights, while the model holds the slow ones between experiences
        self.anchor: dict[str, torch.Tensor] = {}
        self.fisher: dict[str, torch.Tensor] = {}

    def _load(self, model, weights):
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(weights[n])

    def before_training_exp(self, strategy, **kwargs):
        if self.fast is not None:  # hand the optimizer its fast weights back
            self._load(strategy.model, self.fast)

    def before_backward(self, strategy, **kwargs):
        if not self.anchor or not self.consolidation:
            return
        penalty = sum((self.fisher[n] * (p - self.anchor[n]) ** 2).sum()
                      for n, p in strategy.model.named_parameters() if n in self.anchor)
        strategy.loss = strategy.loss + self.consolidation * penalty

    def after_training_exp(self, strategy, **kwargs):
        model = strategy.model
        # step 1: consolidate the fast weights
        for n, f in empirical_fisher(strategy, self.fisher_samples).items():
            self.fisher[n] = self.fisher[n] + f if n in self.fisher else f
        self.fast = {n: p.detach().clone() for n, p in model.named_parameters()}
        self.anchor = {n: w.clone() for n, w in self.fast.items()}
        # step 2: the slow weights take a step toward them
        for n, w in self.fast.items():
            slow = self.slow[n].to(w.device)  # built beside the model on the host; trained on the device
            self.slow[n] = slow + self.slow_step * (w - slow)
        if self.predict_with == "slow":
            self._load(model, self.slow)

    def state_dict(self) -> dict:
        return {"slow": self.slow, "fast": self.fast, "anchor": self.anchor, "fisher": self.fisher}

    def load_state_dict(self, state: dict) -> None:
        self.slow, self.fast, self.anchor, self.fisher = (state[k] for k in ("slow", "fast", "anchor", "fisher"))


@register_strategy("fast_slow", rules={
    "consolidation": number_at_least(0), "slow_step": between(0, 1), "predict_with": one_of("slow", "fast"),
    "fisher_samples": at_least(1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    fast_slow = FastSlowPlugin(model, consolidation=float(cfg.consolidation), slow_step=float(cfg.slow_step),
                               predict_with=str(cfg.predict_with), fisher_samples=int(cfg.fisher_samples))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion,
                              plugins=[fast_slow, *plugins], **common)
