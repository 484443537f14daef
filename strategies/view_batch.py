"""View-batch model (Kang et al., CVPR 2025, arXiv 2503.18371), an add-on for any strategy:
`cl-bench strategy=replay +addons=view_batch`.

Replay part: a sampler repeats each index V times in a row, so a batch of B holds B/V samples
x V views. Epochs come in blocks of V sharing one permutation (seeded by epoch // V); each
epoch of a block takes the next 1/V slice of it. Iterations per epoch are unchanged, and each
sample returns every V epochs: a V-fold longer recall interval at equal compute. With replay,
the memory is merged into the training set, so replayed samples are view-batched too.

Self-supervised part: after `warmup_epochs` epochs of the experience, loss += weight * mean over
groups and views v >= 2 of KL(stopgrad p(view 1) || p(view v)). Groups come from the sampler
(B must be a multiple of V), never from label heuristics. KL is the proper per-sample sum over
classes (the reference code's F.kl_div(reduction='mean') also divides by the number of classes).
Views 2..V can be augmented by random shifts of up to `shift` pixels (off by default: 2 pixels
suit 28x28 MNIST, but wreck 8x8 digits); without augmentation the views are identical and the
KL term is zero, leaving the sampler's schedule as the only change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from avalanche.benchmarks.utils.utils import concat_datasets
from avalanche.training.plugins import ReplayPlugin, SupervisedPlugin
from torch.utils.data import DataLoader, Sampler

from cl_bench.errors import ConfigError
from cl_bench.registry import register_addon
from cl_bench.rules import at_least, number_at_least


class ViewBatchSampler(Sampler[int]):
    def __init__(self, n: int, views: int, epoch: int, seed: int = 0):
        self.n, self.views, self.epoch, self.seed = n, views, epoch, seed

    def _slice(self) -> torch.Tensor:
        block, part = divmod(self.epoch, self.views)
        perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + block))
        return torch.tensor_split(perm, self.views)[part]

    def __iter__(self):
        return iter(self._slice().repeat_interleave(self.views).tolist())

    def __len__(self) -> int:
        return len(self._slice()) * self.views


def view_consistency_loss(logits: torch.Tensor, views: int) -> torch.Tensor:
    """Mean over groups and views v >= 2 of KL(stopgrad p(view 1) || p(view v))."""
    if views < 2:
        return logits.sum() * 0.0
    grouped = logits.view(-1, views, logits.shape[-1])
    target = F.softmax(grouped[:, :1].detach(), dim=-1)
    log_target = F.log_softmax(grouped[:, :1].detach(), dim=-1)
    log_pred = F.log_softmax(grouped[:, 1:], dim=-1)
    return (target * (log_target - log_pred)).sum(-1).mean()


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by up to max_shift pixels, filling with its background (minimum)."""
    m = max_shift
    h, w = x.shape[-2:]
    shifts = torch.randint(0, 2 * m + 1, (len(x), 2), generator=generator).tolist()
    out = []
    for img, (dy, dx) in zip(x, shifts):
        padded = F.pad(img, (m, m, m, m), value=float(img.min()))
        out.append(padded[..., dy:dy + h, dx:dx + w])
    return torch.stack(out)


class ViewBatchPlugin(SupervisedPlugin):
    def __init__(self, views: int = 4, weight: float = 1.0, warmup_epochs: int = 5, shift: int = 0, seed: int = 0):
        super().__init__()
        self.views, self.weight, self.warmup_epochs, self.shift, self.seed = views, weight, warmup_epochs, shift, seed
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0  # across experiences: the sampler's blocks keep going

    def _memory(self, strategy):
        """The replay buffer of the strategy's replay plugin, if any (Avalanche's ReplayPlugin
        or a subclass; one with a separate weighted memory batch cannot be merged)."""
        for plugin in strategy.plugins:
            if not isinstance(plugin, ReplayPlugin):
                continue
            if getattr(plugin, "new_data_weight", None) is not None:
                raise ConfigError("addons.view_batch merges replay memory into the training set; "
                                  "use strategy=replay without strategy.new_data_weight")
            if len(plugin.storage_policy.buffer):
                return plugin.storage_policy.buffer
        return None

    def before_training_exp(self, strategy, **kwargs):
        if strategy.train_mb_size % self.views:
            raise ConfigError(f"train.batch_size ({strategy.train_mb_size}) must be a multiple of "
                             f"addons.view_batch.views ({self.views})")

    def before_training_epoch(self, strategy, **kwargs):
        data = strategy.adapted_dataset
        memory = self._memory(strategy)
        if memory is not None:
            data = concat_datasets([data, memory.train()])
        sampler = ViewBatchSampler(len(data), self.views, self.epoch, self.seed)
        strategy.dataloader = DataLoader(data, batch_size=strategy.train_mb_size, sampler=sampler,
                                         generator=torch.Generator())
        self.epoch += 1

    def before_forward(self, strategy, **kwargs):
        if self.shift and self.views > 1:
            x = strategy.mbatch[0].view(-1, self.views, *strategy.mbatch[0].shape[1:]).clone()
            rest = x[:, 1:].reshape(-1, *x.shape[2:])
            x[:, 1:] = random_shift(rest.cpu(), self.shift, self.generator).to(x.device).view_as(x[:, 1:])
            strategy.mbatch[0] = x.view(-1, *x.shape[2:])

    def before_backward(self, strategy, **kwargs):
        if self.weight and strategy.clock.train_exp_epochs >= self.warmup_epochs:
            strategy.loss = strategy.loss + self.weight * view_consistency_loss(strategy.mb_output, self.views)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.generator.set_state(state["generator"].cpu())


@register_addon("view_batch", rules={
    "views": at_least(1), "weight": number_at_least(0), "warmup_epochs": at_least(0), "shift": at_least(0)})
def build(cfg, seed: int) -> ViewBatchPlugin:
    return ViewBatchPlugin(views=int(cfg.views), weight=float(cfg.weight), warmup_epochs=int(cfg.warmup_epochs),
                           shift=int(cfg.shift), seed=seed)
