"""Classifier = feature trunk + output head; one head per task for task-incremental runs."""
from __future__ import annotations

import torch
from avalanche.models import MultiTaskModule
from torch import nn


class SingleHeadClassifier(nn.Module):
    def __init__(self, trunk: nn.Module, feature_dim: int, n_classes: int):
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x))


class MultiHeadClassifier(MultiTaskModule):
    """A fixed set of heads, known from the scenario up front, so the optimizer never has to be
    rebuilt for new parameters. Avalanche passes task labels to MultiTaskModule subclasses."""

    def __init__(self, trunk: nn.Module, feature_dim: int, n_classes: int, n_heads: int):
        super().__init__()
        self.trunk = trunk
        self.heads = nn.ModuleList(nn.Linear(feature_dim, n_classes) for _ in range(n_heads))

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.heads[task_label](self.trunk(x))

    def forward(self, x: torch.Tensor, task_labels) -> torch.Tensor:
        if task_labels is None:  # Avalanche's convention (used by LwF): every seen head, as a dict
            return self.forward_all_tasks(x)
        features = self.trunk(x)
        if isinstance(task_labels, int):
            return self.heads[task_labels](features)
        # Every head on the shared features, then each sample picks its own task's output.
        all_heads = torch.stack([head(features) for head in self.heads])
        return all_heads[task_labels, torch.arange(len(x), device=x.device)]


def classifier(trunk: nn.Module, feature_dim: int, n_classes: int, n_heads: int | None) -> nn.Module:
    if n_heads is None:
        return SingleHeadClassifier(trunk, feature_dim, n_classes)
    return MultiHeadClassifier(trunk, feature_dim, n_classes, n_heads)
