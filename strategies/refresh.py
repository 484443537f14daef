"""Refresh learning (Wang et al., ICLR 2024, arXiv 2403.13249): before the normal step on a
minibatch, UNLEARN it a little, then let the base strategy relearn it. An add-on for any
strategy: `cl-bench strategy=replay +addons=refresh`.

Paper rule (variant "paper", the default), every `every` iterations, `steps` (J) times:
    theta <- theta + rate * P * grad L(theta) + sqrt(2 * rate * temperature * P) * xi,  xi ~ N(0, I)
with P = 1 / (F + damping) the inverse of the diagonal Fisher F of the previous tasks' parameters
(damped: F is 0 before the first experience ends) and L the cross-entropy on the current batch.
`temperature` scales the Langevin noise (1 is the paper's N(0, 2 rate F^-1); smaller values keep
the noise from swamping small networks).

Released code (variant "code"): one step every iteration, per parameter tensor l:
    u = ||theta_l|| * g_l / ||g_l||;   theta_l <- theta_l + delta * (u + sigma * xi) / (1 + c F_l)
(delta = rate, c = fisher_scale, sigma = noise). Its extra weight decay is not part of refresh
here: set optimizer.weight_decay for that.

F is the empirical Fisher (mean over batches of squared minibatch-mean gradients, at most
`fisher_samples` samples of the experience), accumulated after every experience as
F <- fisher_decay * F + F_new. Noise comes from a private generator and batch-norm statistics
are restored after the unlearn pass, so with rate 0 training is bit-identical to the base strategy.
"""
from __future__ import annotations

import torch
from avalanche.models.utils import avalanche_forward
from avalanche.training.plugins import SupervisedPlugin

from cl_bench.registry import register_addon
from cl_bench.rules import at_least, number_at_least, one_of, positive
from strategies._fisher import empirical_fisher

VARIANTS = ("paper", "code")


class RefreshPlugin(SupervisedPlugin):
    def __init__(self, rate: float, variant: str = "paper", steps: int = 1, every: int = 2, damping: float = 1.0,
                 temperature: float = 1.0, fisher_scale: float = 1e-3, noise: float = 1e-3,
                 fisher_decay: float = 1.0, fisher_samples: int = 1024, seed: int = 0):
        super().__init__()
        self.rate, self.variant, self.steps, self.every = rate, variant, steps, every
        self.damping, self.temperature = damping, temperature
        self.fisher_scale, self.noise = fisher_scale, noise
        self.fisher_decay, self.fisher_samples = fisher_decay, fisher_samples
        self.generator = torch.Generator().manual_seed(seed)
        self.fisher: dict[str, torch.Tensor] = {}
        self.iteration = 0

    def _params(self, model):
        return [(n, p) for n, p in model.named_parameters() if p.requires_grad]

    # --- unlearn ------------------------------------------------------------------------------

    def _noise_like(self, p: torch.Tensor) -> torch.Tensor:
        return torch.randn(p.shape, generator=self.generator).to(p.device)

    def unlearn(self, model, criterion, x, y, t) -> None:
        buffers = {n: b.clone() for n, b in model.named_buffers()}  # BN statistics
        params = self._params(model)
        for _ in range(self.steps if self.variant == "paper" else 1):
            model.zero_grad(set_to_none=True)
            criterion(avalanche_forward(model, x, t), y).backward()
            with torch.no_grad():
                for name, p in params:
                    if p.grad is None:
                        continue
                    fisher = self.fisher.get(name)
                    if fisher is None:
                        fisher = torch.zeros_like(p)
                    if self.variant == "paper":
                        precond = 1.0 / (fisher + self.damping)
                        noise = (2 * self.rate * self.temperature * precond).sqrt() * self._noise_like(p)
                        p.add_(self.rate * precond * p.grad + noise)
                    else:
                        g = p.grad
                        u = p.norm() * g / g.norm().clamp_min(1e-12)
                        p.add_(self.rate * (u + self.noise * self._noise_like(p)) / (1 + self.fisher_scale * fisher))
        model.zero_grad(set_to_none=True)
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(buffers[n])

    def before_training_iteration(self, strategy, **kwargs):
        self.iteration += 1
        every = self.every if self.variant == "paper" else 1
        if self.iteration % every:
            return
        self.unlearn(strategy.model, strategy._criterion, strategy.mb_x, strategy.mb_y, strategy.mb_task_id)

    # --- Fisher after each experience -----------------------------------------------------------

    def after_training_exp(self, strategy, **kwargs):
        for n, f in empirical_fisher(strategy, self.fisher_samples).items():
            self.fisher[n] = self.fisher_decay * self.fisher[n] + f if n in self.fisher else f

    def state_dict(self) -> dict:
        return {"fisher": self.fisher, "generator": self.generator.get_state(), "iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.fisher, self.iteration = state["fisher"], state["iteration"]
        self.generator.set_state(state["generator"].cpu())


@register_addon("refresh", rules={
    "variant": one_of(*VARIANTS), "rate": number_at_least(0), "steps": at_least(1), "every": at_least(1),
    "damping": positive(), "temperature": number_at_least(0), "fisher_scale": number_at_least(0),
    "noise": number_at_least(0), "fisher_decay": number_at_least(0), "fisher_samples": at_least(1),
})
def build(cfg, seed: int) -> RefreshPlugin:
    return RefreshPlugin(
        rate=float(cfg.rate), variant=str(cfg.variant), steps=int(cfg.steps), every=int(cfg.every),
        damping=float(cfg.damping), temperature=float(cfg.temperature), fisher_scale=float(cfg.fisher_scale),
        noise=float(cfg.noise), fisher_decay=float(cfg.fisher_decay), fisher_samples=int(cfg.fisher_samples),
        seed=seed,
    )
