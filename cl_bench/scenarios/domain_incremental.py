"""Domain-incremental streams: the same classes every experience, the input distribution shifts.

Experience 0 is always the original data (identity permutation, 0 degrees), so a permuted or
rotated stream starts from the plain dataset and each later task is one step away from it.
`train_per_experience` trains each task on a random subset of the training set (the test sets
stay whole): published Permuted-MNIST numbers often use 1,000 images a task, not all 60,000.
"""
from __future__ import annotations

from functools import partial

import torch
import torchvision.transforms.functional as TF

from cl_bench.data import DataSource
from cl_bench.errors import ConfigError
from cl_bench.registry import register_scenario
from cl_bench.rules import at_least, optional
from cl_bench.scenarios.base import Experience, Scenario


def _permute(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(1)
    return flat[:, perm].view_as(x)


def _training_subsets(cfg, n_train: int, seed: int):
    """One index set per experience: all of the training set, or `train_per_experience` of it
    drawn without replacement, independently per experience. Their own generator, so a stream's
    permutations do not depend on the subset size."""
    size = cfg.get("train_per_experience")
    if size is None:
        return [slice(None)] * int(cfg.n_experiences)
    if size > n_train:
        raise ConfigError(f"scenario.train_per_experience must be at most the {n_train} training images, got {size}")
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_train, generator=g)[:size].sort().values for _ in range(int(cfg.n_experiences))]


def build_permuted(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    n_pixels = data.x_train[0].numel()
    g = torch.Generator().manual_seed(seed)
    experiences = []
    for i, subset in enumerate(_training_subsets(cfg, len(data.y_train), seed)):
        perm = torch.arange(n_pixels) if i == 0 else torch.randperm(n_pixels, generator=g)
        experiences.append(Experience(
            x_train=_permute(data.x_train[subset], perm), y_train=data.y_train[subset],
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
    for i, subset in enumerate(_training_subsets(cfg, len(data.y_train), seed)):
        experiences.append(Experience(
            x_train=_rotate(data.x_train[subset], i * step), y_train=data.y_train[subset],
            x_test=_rotate(data.x_test, i * step), y_test=data.y_test,
            classes=list(range(data.n_classes)),
        ))
    return Scenario(name, experiences, data.n_classes, data.input_shape, setting="domain_incremental")


STREAM_RULES = {"n_experiences": at_least(1), "train_per_experience": optional(at_least(1))}
for _dataset in ("mnist", "digits"):
    register_scenario(f"permuted_{_dataset}", rules=STREAM_RULES)(partial(build_permuted, dataset=_dataset, name=f"permuted_{_dataset}"))
    register_scenario(f"rotated_{_dataset}", rules=STREAM_RULES)(partial(build_rotated, dataset=_dataset, name=f"rotated_{_dataset}"))
