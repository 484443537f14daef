"""Bias Correction, BiC (Wu, Chen, Wang, Ye, Liu, Guo & Fu, "Large Scale Incremental Learning",
CVPR 2019).

Replay with distillation from the previous model (weighted by the share of old classes), then a
second stage after each experience: with the network frozen, two scalars alpha, beta are fitted on
a small class-balanced validation set held out of the training data, correcting the logits of
the experience's new classes (alpha * z + beta), which a network trained on few old exemplars
favours. Predictions use the corrected logits.

Avalanche 0.6.0's BiCPlugin (after FACIL's implementation), with these changes:
- cl-bench evaluates the model itself, not through Avalanche's eval loop, where the plugin applies
  the correction (`after_eval_forward`). The model's head becomes a `BiCHead` that applies the
  last correction in eval mode, so task-end and continual evaluation both see it; its alpha, beta
  and class mask are buffers of fixed shape, checkpointed with the model;
- 0.6.0 distils `softmax(old_logits / 2, dim=0)`, a softmax over the BATCH at a hard-coded
  temperature; the original code and FACIL distil the class distribution at temperature T,
  which is what `cross_entropy` does here;
- "old" classes are the seen ones not in the current experience, so a class that comes back (long
  streams, few-shot sessions) is new again; 0.6.0 asserts there that the last bias layer covers
  exactly the previous experience's classes. The old model's targets always carry the correction
  it predicted with (none before the first one exists, as in 0.6.0);
- the validation samples are held out of the data the strategy trains on, not by assigning the
  experience's dataset, which 0.6.0's experiences make read-only; at most half of a class is
  held out, so that a few-shot session keeps training data;
- buffer updates go through the storage policy's current API (0.6.0's `update` warns), and the
  second stage is 0.6.0's loop without the `verbose` argument to MultiStepLR that torch (2.14 here)
  removed (0.6.0's own stage fails with a TypeError).
The validation set is taken out of each experience's training data and kept beside the replay
memory (`val_percentage * mem_size` samples in all), as in 0.6.0.
"""
from __future__ import annotations

import copy
from collections import defaultdict
from types import SimpleNamespace

import torch
from avalanche.models.bic_model import BiasLayer
from avalanche.benchmarks.utils import concat_datasets
from avalanche.training.plugins import BiCPlugin as AvalancheBiCPlugin
from avalanche.training.storage_policy import ExperienceBalancedBuffer, ReservoirSamplingBuffer
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_bench import preemption
from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import Rule, at_least, optional, positive
from strategies.icarl import experience_tensors
from strategies.replay import buffer_state, load_buffer_state


class BiCHead(nn.Module):
    """A linear head whose outputs, in eval mode, get the last bias correction: alpha * z + beta
    on the corrected classes, z elsewhere (Avalanche's BiasLayer, in buffers of fixed shape)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.register_buffer("alpha", torch.ones(1))
        self.register_buffer("beta", torch.zeros(1))
        self.register_buffer("corrected", torch.zeros(linear.out_features, dtype=torch.bool))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.linear(features)
        if self.training:
            return logits
        return torch.where(self.corrected, self.alpha * logits + self.beta, logits)

    def set_correction(self, layer: BiasLayer | None) -> None:
        self.corrected.zero_()
        self.alpha.fill_(1.0)
        self.beta.zero_()
        if layer is not None:
            self.corrected[layer.clss.to(self.corrected.device)] = True
            self.alpha.copy_(layer.alpha.detach())
            self.beta.copy_(layer.beta.detach())


class TrainingPartBuffer(ExperienceBalancedBuffer):
    """Avalanche's experience-balanced memory, filled from the data the experience trained on (its
    validation samples held out, as 0.6.0's BiC means it to be), through `post_adapt`: what
    0.6.0's deprecated `update` calls, without its DeprecationWarning."""

    def update(self, strategy, **kwargs):
        self.post_adapt(strategy, SimpleNamespace(dataset=strategy.adapted_dataset))


class BiCPlugin(AvalancheBiCPlugin):
    def __init__(self, model: nn.Module, **kwargs):
        super().__init__(storage_policy=TrainingPartBuffer(max_size=kwargs["mem_size"]), **kwargs)
        self.model = model
        self.training_part = None

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        """0.6.0's split of each class into validation samples (the first ones, into a reservoir
        per class) and training data, kept here: 0.6.0 assigns `experience.dataset`, which 0.6.0's
        own experiences make read-only. At most half of a class is held out, so a few-shot
        session keeps something to train on (0.6.0 could hold out all of it)."""
        data = strategy.experience.dataset
        by_class: dict[int, list[int]] = defaultdict(list)
        for i, c in enumerate(data.targets):
            by_class[int(c)].append(i)
        for c in by_class:
            self.class_to_tasks[c] = strategy.clock.train_exp_counter
        self.seen_classes.update(by_class)
        lengths = dict(zip(self.seen_classes, self.get_group_lengths(len(self.seen_classes))))
        training = []
        for c, indices in by_class.items():
            held_out = min(lengths[c], len(indices) // 2)
            self.val_buffer.setdefault(c, ReservoirSamplingBuffer(lengths[c])).update_from_dataset(
                data.subset(indices[:held_out]))
            training.append(data.subset(indices[held_out:]))
        for c, buffer in self.val_buffer.items():
            buffer.resize(strategy, lengths[c])
        self.training_part = concat_datasets(training)

    def after_train_dataset_adaptation(self, strategy, **kwargs):
        strategy.adapted_dataset = self.training_part.train()

    def after_eval_forward(self, strategy, **kwargs):
        pass  # the head corrects its outputs in eval mode already

    def cross_entropy(self, new_outputs, old_outputs):
        soft_targets = torch.softmax(old_outputs / self.T, dim=1)
        return nn.functional.cross_entropy(new_outputs / self.T, soft_targets)

    def make_distillation_loss(self, strategy):
        initial, previous, _ = self._classes_groups(strategy)
        old_classes = sorted(set(initial) | set(previous))
        if not old_classes:  # every seen class is back in this experience: nothing to distil
            return strategy.mb_output.sum() * 0.0
        with torch.no_grad():
            out_old = self.bias_forward(self.model_old(strategy.mb_x))  # the model_old is uncorrected
        return self.cross_entropy(strategy.mb_output[:, old_classes], out_old[:, old_classes])

    def after_training_exp(self, strategy, **kwargs):
        super().after_training_exp(strategy, **kwargs)
        self.model_old.head.set_correction(None)  # its correction is applied explicitly, from bias_layer
        strategy.model.head.set_correction(self.bias_layer)
        strategy.model.train()  # the second stage leaves the model in eval mode

    def bias_correction_step(self, strategy, **kwargs):
        """0.6.0's second stage, which fails under the installed torch (it passes MultiStepLR the
        removed `verbose` argument): the same loop, on the raw logits of the frozen model, computed
        once instead of at every epoch."""
        model = strategy.model
        model.eval()
        model.head.set_correction(None)
        self.bias_layer = BiasLayer(strategy.adapted_dataset.targets.uniques).to(strategy.device)
        self.bias_layer.train()
        optimizer = torch.optim.SGD(self.bias_layer.parameters(), lr=self.lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[50, 100, 150], gamma=0.1)
        # The model is frozen and in eval mode: its logits on the validation set are computed once.
        validation = concat_datasets([b.buffer for b in self.val_buffer.values()])
        x, y = experience_tensors(validation)
        with torch.no_grad():
            logits = model(x.to(strategy.device))
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(logits, y.to(strategy.device)),
                                             batch_size=strategy.train_mb_size, shuffle=True)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # a few dozen logits: intra-op threads only add synchronisation (10x slower)
        try:
            self._fit_bias_layer(loader, optimizer, scheduler)
        finally:
            torch.set_num_threads(threads)
        self.bias_layer.eval()
        for p in self.bias_layer.parameters():
            p.requires_grad = False

    def _fit_bias_layer(self, loader, optimizer, scheduler) -> None:
        for _ in range(self.stage_2_epochs):
            for batch_logits, batch_y in loader:
                loss = nn.functional.cross_entropy(self.bias_layer(batch_logits), batch_y)
                loss = loss + 0.1 * (self.bias_layer.beta.sum() ** 2) / 2  # the original code's L2 on beta
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            scheduler.step()
            preemption.stop_during("the bias-correction stage")

    # --- checkpoints ----------------------------------------------------------------------------

    def state_dict(self) -> dict:
        layer = self.bias_layer
        return {
            "memory": buffer_state(self.storage_policy),
            "val": [(c, buffer_state(b)) for c, b in self.val_buffer.items()],
            "seen_classes": list(self.seen_classes),
            "class_to_tasks": dict(self.class_to_tasks),
            "model_old": None if self.model_old is None else self.model_old.state_dict(),
            "is_first_experience": self.is_first_experience,
            "bias_layer": None if layer is None else {"clss": layer.clss, "alpha": layer.alpha.detach(),
                                                      "beta": layer.beta.detach()},
        }

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.storage_policy, state["memory"])
        self.val_buffer = {}
        for c, buffer in state["val"]:
            self.val_buffer[c] = ReservoirSamplingBuffer(buffer["max_size"])
            load_buffer_state(self.val_buffer[c], buffer)
        self.seen_classes = set(state["seen_classes"])
        self.class_to_tasks = dict(state["class_to_tasks"])
        self.is_first_experience = state["is_first_experience"]
        self.model_old = None
        if state["model_old"] is not None:
            self.model_old = copy.deepcopy(self.model).eval()
            self.model_old.load_state_dict(state["model_old"])
            for p in self.model_old.parameters():
                p.requires_grad = False
        self.bias_layer = None
        if state["bias_layer"] is not None:
            layer = state["bias_layer"]
            self.bias_layer = BiasLayer(layer["clss"].tolist()).to(layer["alpha"].device)
            with torch.no_grad():
                self.bias_layer.alpha.copy_(layer["alpha"])
                self.bias_layer.beta.copy_(layer["beta"])
            self.bias_layer.eval()
            for p in self.bias_layer.parameters():
                p.requires_grad = False


@register_strategy("bic", rules={
    "mem_size": at_least(1),
    "batch_size_mem": optional(at_least(1)),
    "val_percentage": Rule(lambda v: 0 < v < 1, "a number in (0, 1)"),
    "T": positive(),
    "stage_2_epochs": at_least(1),
    "lamb": Rule(lambda v: v == -1 or v >= 0, "-1 (the share of old classes) or a number >= 0"),
    "lr": positive(),
}, settings=("class_incremental",), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if not isinstance(getattr(model, "head", None), nn.Linear):
        raise ConfigError(f"strategy 'bic' needs a single-head model with a linear head (`model.head`); "
                          f"model '{type(model).__name__}' has not")
    model.head = BiCHead(model.head)  # the same Linear: the optimizer keeps its parameters
    bic = BiCPlugin(model, mem_size=int(cfg.mem_size), batch_size_mem=cfg.get("batch_size_mem"),
                    val_percentage=float(cfg.val_percentage), T=float(cfg.T), stage_2_epochs=int(cfg.stage_2_epochs),
                    lamb=float(cfg.lamb), lr=float(cfg.lr))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion, plugins=[bic, *plugins], **common)
