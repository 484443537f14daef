"""Progressive Neural Networks: Rusu, Rabinowitz, Desjardins, Soyer, Kirkpatrick, Kavukcuoglu,
Pascanu & Hadsell, "Progressive Neural Networks", arXiv 1606.04671, 2016. Built on Avalanche's
PNNColumn and its lateral adapters (avalanche.models.pnn).

Each task gets its own column, an MLP with the model's hidden widths whose layer l also reads,
through an adapter, layer l-1 of every earlier column (`adapter: mlp` is the paper's non-linear
adapter, U relu(V [alpha_j h_j]); `linear` sums one linear map per earlier column). While task t
trains, only column t and head t learn; earlier columns are frozen, so earlier tasks' predictions
never change: no forgetting, at the price of a network that grows with every task. Needs task
labels: the task label picks the column and head.

Deviations from Avalanche's PNN model, none in what a column computes:
- every task's column is built up front (cl-bench knows the number of tasks, as it does for its
  heads), so the parameter set is fixed and a checkpoint fits a freshly built model; a column is
  only trained, and read, from its task on, which is what adding it then would give. The trunk
  computes all columns and each head reads its own (strategies/_task_columns.py);
- Avalanche's PNN gives its first layer the MLP adapter whatever `adapter` says (the argument is
  not passed on); here every layer uses the configured one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from avalanche.models.pnn import PNNColumn
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.templates import SupervisedTemplate
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import one_of
from strategies._task_columns import mlp_widths, replace_trunk


class ProgressiveTrunk(nn.Module):
    """One column per task; the output is every column's last hidden layer, side by side."""

    def __init__(self, in_features: int, widths: list[int], n_columns: int, adapter: str):
        super().__init__()
        fan_ins = [in_features, *widths[:-1]]
        self.layers = nn.ModuleList(
            nn.ModuleList(PNNColumn(fan_in, width, k, adapter=adapter) for k in range(n_columns))
            for fan_in, width in zip(fan_ins, widths))

    def columns(self, k: int):
        return [layer[k] for layer in self.layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = [x.flatten(1)] * len(self.layers[0])
        for layer in self.layers:  # column k reads the previous layer of columns 0..k
            h = [F.relu(column(h[:k + 1])) for k, column in enumerate(layer)]
        return torch.cat(h, dim=1)


class PNNPlugin(SupervisedPlugin):
    """Trains the current task's column and head only. Nothing to checkpoint: which parameters
    train follows from the experience's task label, and the columns are the model's weights."""

    def before_training_exp(self, strategy, **kwargs):
        labels = strategy.experience.task_labels
        if len(labels) != 1:
            raise ConfigError(f"strategy 'pnn' needs one task label per experience; experience "
                              f"{strategy.experience.current_experience} has {sorted(labels)}")
        task = labels[0]
        model = strategy.model
        model.requires_grad_(False)
        for column in model.trunk.columns(task):
            column.requires_grad_(True)
        model.heads[task].requires_grad_(True)


@register_strategy("pnn", rules={"adapter": one_of("mlp", "linear")}, settings=("task_incremental",), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    in_features, widths = mlp_widths("pnn", model)
    if any(isinstance(m, nn.Dropout) for m in model.trunk.modules()):
        raise ConfigError("strategy 'pnn' builds its columns without dropout; set model.dropout=0")
    trunk = ProgressiveTrunk(in_features, widths, len(model.heads), str(cfg.adapter))
    replace_trunk(model, trunk, widths[-1], optimizer)
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion,
                              plugins=[PNNPlugin(), *plugins], **common)
