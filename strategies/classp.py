"""CLASSP: Continual Learning through Adjustment Suppression and Sparsity Promotion
(Ludwig 2024, arXiv 2405.09637), an optimizer.

Per weight i at step t (the paper's rule, the default):
    if g_i^2 > threshold:  w_i <- w_i - lr * g_i / (eps + sum_{k<t} |g_{i,k}|^p)^(1/p)
                           accumulator_i += |g_i|^p
    else:                  w_i and accumulator_i unchanged
With apply_scaling=False the step is plain SGD (w_i <- w_i - lr * g_i) while the accumulator
keeps running, as in the authors' first task. Weights that moved a lot slow down (adjustment
suppression); only weights with a significant gradient move (sparsity promotion).

`rule` picks the update (`strategy.rule`):
- `paper` (the default): as above. Its first step on a weight divides by eps alone (nothing is
  accumulated yet), so with scaling on from the start a weight's first move is lr * g / eps.
- `safe_first_step`: the paper's gate and accumulator, but the current |g|^p is in the
  denominator, sum over k <= t, so the first step is at most lr * sign(g) in size.
- `code`: the released code. Its threshold test is per TENSOR and compares a bool with the
  threshold (`(grad**2).any() > threshold`, so thresholds < 1 never gate and thresholds >= 1
  freeze everything), it accumulates sum |g| whatever p is, and it adds the current gradient to
  the accumulator before scaling.

The strategy `classp` trains with this optimizer (its settings come from the strategy config;
the `optimizer` group is not used). Its state is one accumulator per weight, kept across
experiences: Avalanche only resets optimizer state before the first experience.
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import number_at_least, one_of, positive


class CLASSP(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 0.2, threshold: float = 0.5, eps: float = 1e-5, power: float = 1.0,
                 apply_scaling: bool = True, rule: str = "paper"):
        defaults = dict(lr=lr, threshold=threshold, eps=eps, power=power, apply_scaling=apply_scaling, rule=rule)
        super().__init__(params, defaults)

    def set_scaling(self, enabled: bool) -> None:
        for group in self.param_groups:
            group["apply_scaling"] = enabled

    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for s in self.state.values() for t in s.values() if torch.is_tensor(t))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, thr, eps, p = group["lr"], group["threshold"], group["eps"], group["power"]
            for w in group["params"]:
                if w.grad is None:
                    continue
                g = w.grad
                state = self.state[w]
                if "accumulator" not in state:
                    state["accumulator"] = torch.zeros_like(w)
                acc = state["accumulator"]
                if group["rule"] == "code":
                    gate_open = bool((g ** 2).any()) > thr  # the released code's tensor-wide test
                    if not gate_open:
                        continue
                    acc.add_(g.abs())
                    step = g / (eps + acc).pow(1 / p) if group["apply_scaling"] else g
                    w.sub_(lr * step)
                    continue
                active = g.pow(2) > thr
                seen = acc + g.abs().pow(p) if group["rule"] == "safe_first_step" else acc  # k <= t, or k < t
                step = g / (eps + seen).pow(1 / p) if group["apply_scaling"] else g
                w.sub_(lr * torch.where(active, step, torch.zeros_like(step)))
                acc.add_(torch.where(active, g.abs().pow(p), torch.zeros_like(g)))
        return loss


class ScalingPhaseSwitch(SupervisedPlugin):
    """The authors' protocol: plain steps (accumulator running) on the first experience,
    scaled steps from the second on."""

    def before_training_exp(self, strategy, **kwargs):
        strategy.optimizer.set_scaling(strategy.clock.train_exp_counter > 0)


@register_strategy("classp", rules={"lr": positive(), "threshold": number_at_least(0), "eps": positive(),
                                    "power": positive(), "rule": one_of("paper", "safe_first_step", "code")},
                   resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    classp = CLASSP(model.parameters(), lr=float(cfg.lr), threshold=float(cfg.threshold), eps=float(cfg.eps),
                    power=float(cfg.power), apply_scaling=bool(cfg.apply_scaling),
                    rule=str(cfg.rule))
    extra = [ScalingPhaseSwitch()] if cfg.phase_switch else []
    return SupervisedTemplate(model=model, optimizer=classp, criterion=criterion,
                              plugins=[*extra, *plugins], **common)
