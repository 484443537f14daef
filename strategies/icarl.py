"""iCaRL, incremental classifier and representation learning (Rebuffi, Kolesnikov, Sperl &
Lampert, "iCaRL: Incremental Classifier and Representation Learning", CVPR 2017).

The network trains on new data plus a memory of exemplars with sigmoid binary cross-entropy whose
targets for old classes are the previous network's outputs (distillation). After each experience
the exemplars of every class are chosen by herding (greedily, so that their mean feature tracks
the class mean) and the memory is cut to `memory_size / classes seen` per class, keeping each
class's first-chosen exemplars. Prediction is by the nearest mean of exemplars (NME) in the
L2-normalised feature space.

Built on Avalanche 0.6.0's iCaRL loss (`ICaRLLossPlugin`) and its herding rule
(`HerdingSelectionStrategy`); Avalanche's ICaRL strategy itself cannot be used as it stands: it
wraps the model in a new `TrainEvalModel` that cl-bench's evaluation never sees, reads class
orders only `nc_benchmark` streams have, and its NCM buffer changes shape in the state dict. Here
the model's own `head` becomes an `NMEHead`: the linear head in training, the NME classifier in
eval mode, so task-end and continual evaluation both classify by NME; the class means are buffers
of that head, checkpointed with the model. Deviations, and why:
- class means are the plain means of the exemplars' normalised features (the paper's definition);
  Avalanche also averages in horizontally flipped images, an augmentation of the CIFAR code that
  cl-bench never trains with;
- `memory_size // classes seen` exemplars per class (the paper's K/t; Avalanche rounds up and can
  exceed K); herding picks only as many exemplars as are kept;
- the one-hot targets span the current experience's classes and distillation the other seen
  classes (the paper's "new" and "old" when classes never repeat). A class that comes back (long
  streams, few-shot sessions) is learned from its new samples, and its exemplars are re-herded
  from old exemplars plus new samples;
- before the first experience ends there are no exemplars, so the NME classifier is undefined:
  the head answers with its linear layer until then; later, a class without exemplars yet (the
  current experience's, during its training) cannot be predicted, as in the paper.
"""
from __future__ import annotations

import copy

import torch
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset, concat_datasets
from avalanche.training.losses import ICaRLLossPlugin
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import Rule, at_least


class NMEHead(nn.Module):
    """A linear head in training mode; in eval mode the nearest-mean-of-exemplars classifier:
    scores are minus the distance of the normalised feature to each class mean, -inf for classes
    without exemplars."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.register_buffer("class_means", torch.zeros(linear.out_features, linear.in_features))
        self.register_buffer("has_mean", torch.zeros(linear.out_features, dtype=torch.bool))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.training or not bool(self.has_mean.any()):
            return self.linear(features)
        distances = torch.cdist(nn.functional.normalize(features, dim=1), self.class_means)
        return (-distances).masked_fill(~self.has_mean, float("-inf"))


def network_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's own outputs (trunk + linear head), whatever mode the model is in; fp32 in bf16
    runs too (the loss writes them into an fp32 target)."""
    return model.head.linear(model.trunk(x)).float()


@torch.no_grad()
def normalized_features(model: nn.Module, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    return torch.cat([nn.functional.normalize(model.trunk(x[i:i + batch_size].to(device)).float(), dim=1)
                      for i in range(0, len(x), batch_size)])


def herding_order(features: torch.Tensor, m: int) -> list[int]:
    """The first `m` exemplars by iCaRL's herding: each step adds the sample that brings the
    running mean of the chosen ones closest to the mean of all (Avalanche's
    HerdingSelectionStrategy rule, stopped after m picks instead of ordering every sample)."""
    center = features.mean(dim=0)
    chosen_sum = torch.zeros_like(center)
    available = torch.ones(len(features), dtype=torch.bool, device=features.device)
    order: list[int] = []
    for k in range(1, min(m, len(features)) + 1):
        distances = ((center - (chosen_sum + features) / k) ** 2).sum(dim=1)
        distances[~available] = float("inf")
        best = int(distances.argmin())
        order.append(best)
        available[best] = False
        chosen_sum += features[best]
    return order


class ICaRLLoss(ICaRLLossPlugin):
    """Avalanche's iCaRL loss (sigmoid BCE, distillation targets on old classes), the previous
    network evaluated in eval mode through its linear head, "old" meaning seen and not in the
    current experience, and checkpointed."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.seen: set[int] = set()

    def before_training_exp(self, strategy, **kwargs):
        current = set(int(c) for c in strategy.experience.classes_in_this_experience)
        self.old_classes = sorted(self.seen - current)

    def before_forward(self, strategy, **kwargs):
        if self.old_model is not None and self.old_classes:
            with torch.no_grad():
                self.old_logits = network_logits(self.old_model, strategy.mb_x)

    def after_training_exp(self, strategy, **kwargs):
        self.seen |= set(int(c) for c in strategy.experience.classes_in_this_experience)
        self.old_model = copy.deepcopy(strategy.model).eval()
        for p in self.old_model.parameters():
            p.requires_grad = False

    def state_dict(self) -> dict:
        return {"seen": sorted(self.seen),
                "old_model": None if self.old_model is None else self.old_model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.seen = set(state["seen"])
        self.old_model = None
        if state["old_model"] is not None:
            self.old_model = copy.deepcopy(self.model).eval()
            self.old_model.load_state_dict(state["old_model"])
            for p in self.old_model.parameters():
                p.requires_grad = False


class ICaRLPlugin(SupervisedPlugin):
    """Exemplar memory (herding, reduction by keeping the first-chosen) and the NME class means."""

    def __init__(self, memory_size: int, fixed_memory: bool):
        super().__init__()
        self.memory_size = memory_size
        self.fixed_memory = fixed_memory
        self.exemplars: dict[int, torch.Tensor] = {}  # class -> inputs, first-chosen first

    def per_class(self) -> int:
        return self.memory_size // len(self.exemplars) if self.fixed_memory else self.memory_size

    def after_train_dataset_adaptation(self, strategy, **kwargs):
        if not self.exemplars:
            return
        classes = sorted(self.exemplars)
        x = torch.cat([self.exemplars[c] for c in classes])
        y = torch.cat([torch.full((len(self.exemplars[c]),), c, dtype=torch.long) for c in classes])
        memory = _make_taskaware_tensor_classification_dataset(x, y, task_labels=0)
        strategy.adapted_dataset = concat_datasets([strategy.adapted_dataset, memory])

    def after_training_exp(self, strategy, **kwargs):
        model, device, batch = strategy.model, strategy.device, strategy.eval_mb_size
        was_training = model.training
        model.eval()
        try:
            x_new, y_new = experience_tensors(strategy.experience.dataset)
            new_classes = sorted(set(y_new.tolist()))
            for c in new_classes:  # placeholders first, so the per-class share counts them
                self.exemplars.setdefault(c, x_new[:0])
            m = self.per_class()
            for c in new_classes:
                candidates = torch.cat([self.exemplars[c], x_new[y_new == c]])
                order = herding_order(normalized_features(model, candidates, batch, device), m)
                self.exemplars[c] = candidates[order]
            for c in self.exemplars:
                self.exemplars[c] = self.exemplars[c][:m]  # iCaRL's ReduceExemplarSet
            self.update_class_means(model, device, batch)
        finally:
            model.train(was_training)

    def update_class_means(self, model, device, batch: int) -> None:
        head = model.head
        for c, x in self.exemplars.items():
            head.class_means[c] = nn.functional.normalize(normalized_features(model, x, batch, device).mean(dim=0), dim=0)
            head.has_mean[c] = True

    def state_dict(self) -> dict:
        return {"classes": sorted(self.exemplars), "exemplars": [self.exemplars[c] for c in sorted(self.exemplars)]}

    def load_state_dict(self, state: dict) -> None:
        self.exemplars = {c: x.cpu() for c, x in zip(state["classes"], state["exemplars"])}


def experience_tensors(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    # A private generator: a DataLoader draws its base seed even when it does not shuffle.
    x, y, *_ = next(iter(torch.utils.data.DataLoader(dataset, batch_size=len(dataset), generator=torch.Generator())))
    return x, y


@register_strategy("icarl", rules={"memory_size": at_least(1),
                                   "fixed_memory": Rule(lambda v: isinstance(v, bool), "true or false")},
                   settings=("class_incremental",), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if not (isinstance(getattr(model, "trunk", None), nn.Module) and isinstance(getattr(model, "head", None), nn.Linear)):
        raise ConfigError(f"strategy 'icarl' needs a single-head model with a feature trunk and a linear head "
                          f"(`model.trunk`, `model.head`); model '{type(model).__name__}' has not")
    model.head = NMEHead(model.head)  # the same Linear: the optimizer keeps its parameters
    loss = ICaRLLoss(model)  # iCaRL's own loss replaces the run's cross-entropy
    icarl = ICaRLPlugin(int(cfg.memory_size), bool(cfg.fixed_memory))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=loss, plugins=[icarl, loss, *plugins],
                              **common)
