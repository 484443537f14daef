"""In-place surgery shared by the parameter-isolation methods (PNN, PackNet) on cl-bench's
multi-head model (`trunk` + one head per task).

cl-bench evaluates and saves the very model object a strategy was built with, calling
`model(x, task_labels)`, whose trunk sees no task label. A method whose features depend on the
task therefore gets a trunk that returns every task's features side by side (one block of
`width` per task) and heads that each read their own task's block: `model(x, t)` is then the
method's prediction for task t, for one label or a tensor of per-sample labels.
"""
from __future__ import annotations

import torch
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.models.heads import MultiHeadClassifier


class TaskBlockHead(nn.Module):
    """Task `task`'s head, reading block `task` of the trunk's per-task features."""

    def __init__(self, task: int, width: int, head: nn.Linear):
        super().__init__()
        self.task, self.width, self.head = task, width, head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features[:, self.task * self.width:(self.task + 1) * self.width])


def mlp_widths(strategy: str, model: nn.Module) -> tuple[int, list[int]]:
    """(input size, hidden widths) of a multi-head model with an MLP trunk, or a one-line refusal."""
    if not isinstance(model, MultiHeadClassifier):
        raise ConfigError(f"strategy '{strategy}' needs cl-bench's multi-head model (scenario.task_labels=true); "
                          f"got {type(model).__name__}")
    layers = list(model.trunk) if isinstance(model.trunk, nn.Sequential) else [model.trunk]
    other = sorted({type(m).__name__ for m in layers if not isinstance(m, (nn.Flatten, nn.Linear, nn.ReLU, nn.Dropout))})
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    if other or not linears:
        raise ConfigError(f"strategy '{strategy}' needs the mlp model (a trunk of Linear and ReLU layers); "
                          f"this trunk has {', '.join(other) or 'no Linear layer'}")
    return linears[0].in_features, [m.out_features for m in linears]


def replace_trunk(model: MultiHeadClassifier, trunk: nn.Module, width: int, optimizer: torch.optim.Optimizer) -> None:
    """Give `model` a per-task trunk and heads reading their blocks; the optimizer (built by the
    run on the old parameters) then holds the new ones, so a checkpoint's optimizer state fits."""
    model.trunk = trunk
    model.heads = nn.ModuleList(TaskBlockHead(k, width, head) for k, head in enumerate(model.heads))
    (group,) = optimizer.param_groups  # the run builds one group over model.parameters()
    group["params"] = list(model.parameters())
    optimizer.state.clear()
