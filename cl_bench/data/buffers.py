"""Avalanche datasets as plain tensors and back: how replay buffers and other stored samples go
into a checkpoint (`torch.load(weights_only=True)` reads tensors, never pickled datasets)."""
from __future__ import annotations

import torch


def dataset_state(dataset) -> dict:
    """An Avalanche dataset of (x, y, task) samples as three tensors, in order. Inputs are taken
    as the dataset returns them: cl-bench's datasets are tensors without transforms."""
    if len(dataset) == 0:
        return {"x": None, "y": None, "t": None}
    # A private generator: a DataLoader draws its base seed even when it does not shuffle.
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset), generator=torch.Generator())
    x, y, t = next(iter(loader))[:3]
    return {"x": x, "y": y, "t": t}


def dataset_from_state(state: dict):
    from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset, concat_datasets

    if state["x"] is None:
        return concat_datasets([])
    x, y, t = (state[k].cpu() for k in ("x", "y", "t"))
    # One piece per run of equal task labels, each labelled by a constant as the experiences'
    # datasets are: Avalanche cannot concatenate a per-sample label list with a constant one.
    starts = [0, *(torch.nonzero(t[1:] != t[:-1]).flatten() + 1).tolist(), len(t)]
    return concat_datasets([
        _make_taskaware_tensor_classification_dataset(x[a:b], y[a:b], task_labels=int(t[a]))
        for a, b in zip(starts[:-1], starts[1:])
    ])
