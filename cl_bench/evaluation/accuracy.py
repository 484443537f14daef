"""The one accuracy kernel: batched forward passes over tensors, task labels dispatched to a
multi-head model, argmax, correct predictions counted per group. Task-end evaluation (full test
sets) and continual evaluation (subsets after every update) are both this function.

The model is put in eval mode and every module's own mode is restored afterwards, so evaluating
never changes training; counts stay on the device, so a caller can avoid waiting for the host.
"""
from __future__ import annotations

import torch
from avalanche.models import MultiTaskModule
from torch import nn

from cl_bench.scenarios.base import Experience


@torch.inference_mode()
def count_correct(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task_labels: int | torch.Tensor, device,
                  batch_size: int, groups: torch.Tensor | None = None, n_groups: int = 1) -> torch.Tensor:
    """Correct predictions per group (`groups[i]` in 0..n_groups-1; None: one group) as a float
    tensor on `device`. `task_labels`: one label for all samples, or one per sample."""
    modes = [m.training for m in model.modules()]
    model.eval()
    try:
        multi_head = isinstance(model, MultiTaskModule)
        correct = torch.zeros(n_groups, device=device)
        for start in range(0, len(y), batch_size):
            part = slice(start, start + batch_size)
            xb = x[part].to(device, non_blocking=True)
            yb = y[part].to(device, non_blocking=True)
            tb = task_labels[part] if isinstance(task_labels, torch.Tensor) else task_labels
            hits = ((model(xb, tb) if multi_head else model(xb)).argmax(dim=1) == yb).float()
            if groups is None:
                correct += hits.sum()
            else:  # a fixed-size scatter: a boolean mask or bincount would wait for the device to size its output
                correct.index_add_(0, groups[part], hits)
        return correct
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode


def evaluate_experiences(model: nn.Module, experiences: list[Experience], device, batch_size: int) -> list[float]:
    """Task-end accuracy on every experience's full test set (one host sync per experience)."""
    return [count_correct(model, e.x_test, e.y_test, e.task_label, device, batch_size).item() / len(e.y_test)
            for e in experiences]
