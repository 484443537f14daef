"""Task-end evaluation on full test sets, as a few large forward passes over cached tensors."""
from __future__ import annotations

import torch
from avalanche.models import MultiTaskModule
from torch import nn

from cl_bench.scenarios.base import Experience


@torch.inference_mode()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task_label: int, device, batch_size: int) -> float:
    correct = torch.zeros((), dtype=torch.long, device=device)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].to(device, non_blocking=True)
        yb = y[start:start + batch_size].to(device, non_blocking=True)
        logits = model(xb, task_label) if isinstance(model, MultiTaskModule) else model(xb)
        correct += (logits.argmax(dim=1) == yb).sum()
    return correct.item() / len(x)  # one host sync per experience


def evaluate_experiences(model: nn.Module, experiences: list[Experience], device, batch_size: int) -> list[float]:
    """Accuracy on every experience's full test set; the model's train/eval mode is restored."""
    was_training = model.training
    model.eval()
    try:
        return [accuracy(model, e.x_test, e.y_test, e.task_label, device, batch_size) for e in experiences]
    finally:
        model.train(was_training)
