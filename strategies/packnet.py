"""PackNet: Mallya & Lazebnik, "PackNet: Adding Multiple Tasks to a Single Network by Iterative
Pruning", CVPR 2018. Built on Avalanche's PackNetModel (its layer wrappers, pruning, freezing and
the gradient hook that keeps frozen weights fixed) and PackNetPlugin (the optimizer reset).

Each task trains the weights no earlier task owns; then the `prune_proportion` of them with the
smallest magnitude is released for later tasks, and the rest are fine-tuned for the last
`post_prune_fraction` of the experience's iterations and frozen as the task's own. Task t
predicts with the weights of tasks 0..t only, so earlier tasks never change (no forgetting),
and the network's capacity is shared out task by task. Biases train on the first task only (as
in Avalanche). Needs task labels: the label picks the weight subset and the head (one head per
task, which the paper has too; Avalanche's example prunes a single shared output layer).

Deviations from Avalanche, and why:
- the prune point is a fraction of the experience's iterations, not `post_prune_epochs`:
  cl-bench runs may train an experience for one epoch (Avalanche needs more epochs than
  post-pruning epochs, and never prunes with none);
- a forward pass computes the features of every task's subset from the layers' task indices
  (the heads pick theirs, strategies/_task_columns.py) instead of switching the active subset
  with `activate_task`: cl-bench evaluates all seen tasks in one batch, also during training,
  and Avalanche's state machine refuses to activate an old task in the post-pruning phase.
PackNet's state is all in the model's buffers (task index of every weight), so checkpoints hold
it with the weights.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from avalanche.models.packnet import PackNetModel, PackNetPlugin as AvalanchePackNetPlugin, _PnConvNd, _PnLinear
from avalanche.training.templates import SupervisedTemplate
from omegaconf import OmegaConf
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import between, scalar_or_each
from strategies._task_columns import mlp_widths, replace_trunk


def _masked_forward(layer: nn.Module, x: torch.Tensor, task: int) -> torch.Tensor:
    """A layer with the weights of tasks 0..task (pruned weights carry a task index above any task)."""
    if isinstance(layer, (_PnLinear, _PnConvNd)):
        weight = layer.wrappee.weight * layer.task_index.le(task)
        if isinstance(layer, _PnLinear):
            return F.linear(x, weight, layer.wrappee.bias)
        return layer.wrappee._conv_forward(x, weight, layer.wrappee.bias)
    return layer(x)


class PackedTrunk(nn.Module):
    """The packed network; its output is every task's features side by side. A task not trained
    yet sees what the task in training sees, as Avalanche's PackNetModel gives it."""

    def __init__(self, trunk: nn.Sequential, n_tasks: int):
        super().__init__()
        self.packnet = PackNetModel(trunk)
        self.n_tasks = n_tasks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        trained = self.packnet.task_count
        features = []
        for task in range(min(trained, self.n_tasks - 1) + 1):
            h = x
            for layer in self.packnet.wrappee:
                h = _masked_forward(layer, h, task)
            features.append(h)
        features += [features[-1]] * (self.n_tasks - len(features))
        return torch.cat(features, dim=1)


class PackNetPlugin(AvalanchePackNetPlugin):
    """Avalanche's PackNetPlugin (a fresh optimizer per experience, so momentum cannot move frozen
    weights; freezing at the end), pruning after a fraction of the iterations."""

    def __init__(self, post_prune_fraction: float, prune_proportion: float | list[float]):
        super().__init__(post_prune_epochs=0, prune_proportion=prune_proportion)
        self.post_prune_fraction = post_prune_fraction
        self.prune_at = None

    def _get_model(self, strategy) -> PackNetModel:
        return strategy.model.trunk.packnet

    def before_training(self, strategy, *args, **kwargs):
        pass  # Avalanche's check that epochs exceed post-pruning epochs: the prune point is in iterations here

    def before_training_exp(self, strategy, *args, **kwargs):
        packnet = self._get_model(strategy)
        task = strategy.experience.task_labels
        if list(task) != [packnet.task_count]:
            raise ConfigError(f"strategy 'packnet' trains tasks once each, in order 0, 1, ...; experience "
                              f"{strategy.experience.current_experience} has task label(s) {sorted(task)}, "
                              f"expected {packnet.task_count}")
        packnet.activate_task(packnet.task_count)  # the free weights become trainable again
        for layer in packnet.modules():
            if isinstance(layer, (_PnLinear, _PnConvNd)) and layer.has_bias:
                # Avalanche freezes biases after the first task with requires_grad, which no
                # checkpoint holds: set it here from the task count, which the model's buffers hold.
                layer.wrappee.bias.requires_grad_(packnet.task_count == 0)
        iterations = strategy.train_epochs * len(strategy.dataloader)
        self.prune_at = math.floor((1 - self.post_prune_fraction) * iterations)
        super().before_training_exp(strategy, *args, **kwargs)

    def before_training_epoch(self, strategy, *args, **kwargs):
        pass  # Avalanche prunes at an epoch here; see before_training_iteration

    def _prune(self, strategy) -> None:
        self._get_model(strategy).prune(self.prune_proportion(strategy.clock.train_exp_counter))

    def before_training_iteration(self, strategy, *args, **kwargs):
        if strategy.clock.train_exp_iterations == self.prune_at:
            self._prune(strategy)

    def after_training_exp(self, strategy, *args, **kwargs):
        if self._get_model(strategy).state == PackNetModel.State.TRAINING:  # post_prune_fraction 0: no fine-tuning
            self._prune(strategy)
        super().after_training_exp(strategy, *args, **kwargs)


def prune_proportions(value, n_tasks: int) -> float | list[float]:
    """One share released after every task, or one per task (Avalanche takes either): a falling
    list gives the tasks about equal shares, as in continual-learning-baselines' Tiny ImageNet run."""
    if not (OmegaConf.is_list(value) or isinstance(value, list)):
        return float(value)
    shares = [float(v) for v in value]
    if len(shares) != n_tasks:
        raise ConfigError(f"strategy.prune_proportion must be one number or a list of {n_tasks} (one per "
                          f"experience), got {len(shares)} values")
    return shares


@register_strategy("packnet", rules={
    "prune_proportion": scalar_or_each(between(0, 1)), "post_prune_fraction": between(0, 1)},
    settings=("task_incremental",))
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    _, widths = mlp_widths("packnet", model)
    if optimizer.defaults.get("weight_decay", 0):
        raise ConfigError("strategy 'packnet' needs optimizer.weight_decay=0: decay would move the weights "
                          "frozen for earlier tasks")
    proportions = prune_proportions(cfg.prune_proportion, len(model.heads))
    replace_trunk(model, PackedTrunk(model.trunk, len(model.heads)), widths[-1], optimizer)
    packnet = PackNetPlugin(float(cfg.post_prune_fraction), proportions)
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion,
                              plugins=[packnet, *plugins], **common)
