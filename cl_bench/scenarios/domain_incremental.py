"""Domain-incremental streams: the same classes every experience, the input distribution shifts.

Experience 0 is always the original data (identity permutation, 0 degrees), so a permuted or
rotated stream starts from the plain dataset and each later task is one step away from it.
"""
from __future__ import annotations

from functools import partial

import torch
import torchvision.transforms.functional as TF

from cl_bench.data import DataSource
from cl_bench.registry import register_scenario
from cl_bench.rules import at_least
from cl_bench.scenarios.base import Experience, Scenario


def _permute(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return flat[:, perm].view_as(x)


def build_permuted(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    n_pixels = data.x_train[0].numel()
    g = torch.Generator().manual_seed(seed)
    experiences = []
    for i in range(int(cfg.n_experiences)):
        perm = torch.arange(n_pixels) if i == 0 else torch.randperm(n_pixels, generator=g)
        experiences.append(Experience(
            x_train=_permute(data.x_train, perm), y_train=data.y_train,
            x_test=_permute(data.x_test, perm), y_test=data.y_test,
            classes=list(range(data.n_classes)),
        ))
    return Scenario(name, experiences, data.n_classes, data.input_shape, setting="domain_incremental")


def _rotate(x: torch.Tensor, degrees: float) -> torch.Tensor:
    if degrees % 360 == 0:
        return x
    # Rotate in pixel space and fill with the background (the minimum, i.e. normalized zero).
    background = float(x.min())
    return TF.rotate(x, degrees, interpolation=TF.InterpolationMode.BILINEAR, fill=background)


def build_rotated(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    step = float(cfg.angle_step)
    experiences = []
    for i in range(int(cfg.n_experiences)):
        experiences.append(Experience(
            x_train=_rotate(data.x_train, i * step), y_train=data.y_train,
            x_test=_rotate(data.x_test, i * step), y_test=data.y_test,
            classes=list(range(data.n_classes)),
        ))
    return Scenario(name, experiences, data.n_classes, data.input_shape, setting="domain_incremental")


STREAM_RULES = {"n_experiences": at_least(1)}
for _dataset in ("mnist", "digits"):
    register_scenario(f"permuted_{_dataset}", rules=STREAM_RULES)(partial(build_permuted, dataset=_dataset, name=f"permuted_{_dataset}"))
    register_scenario(f"rotated_{_dataset}", rules=STREAM_RULES)(partial(build_rotated, dataset=_dataset, name=f"rotated_{_dataset}"))
