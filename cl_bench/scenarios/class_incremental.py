"""Class-incremental splits: each experience brings new classes; with `task_labels` the same
split becomes task-incremental (labels renumbered within each experience, one head per task)."""
from __future__ import annotations

from functools import partial

import torch

from cl_bench.errors import ConfigError
from cl_bench.data import DataSource
from cl_bench.registry import register_scenario
from cl_bench.rules import at_least
from cl_bench.scenarios.base import Experience, Scenario


def class_order(n_classes: int, order, shuffle: bool, seed: int) -> list[int]:
    if order is not None:
        order = [int(c) for c in order]
        if sorted(order) != list(range(n_classes)):
            raise ConfigError(
                f"scenario.class_order must be a permutation of 0..{n_classes - 1}, got {order}"
            )
        return order
    if shuffle:
        return torch.randperm(n_classes, generator=torch.Generator().manual_seed(seed)).tolist()
    return list(range(n_classes))


def split_by_class(data, n_experiences: int, order: list[int], task_labels: bool, name: str) -> Scenario:
    if n_experiences < 1 or data.n_classes % n_experiences:
        raise ConfigError(
            f"scenario.n_experiences must divide the {data.n_classes} classes of {data.name}, "
            f"got {n_experiences}"
        )
    per_exp = data.n_classes // n_experiences
    experiences = []
    for i in range(n_experiences):
        classes = order[i * per_exp:(i + 1) * per_exp]
        # Task-IL renumbers labels 0..per_exp-1 inside each task's own head.
        relabel = torch.full((data.n_classes,), -1, dtype=torch.long)
        relabel[classes] = torch.arange(per_exp) if task_labels else torch.tensor(classes)
        tr = torch.isin(data.y_train, torch.tensor(classes))
        te = torch.isin(data.y_test, torch.tensor(classes))
        experiences.append(Experience(
            x_train=data.x_train[tr], y_train=relabel[data.y_train[tr]],
            x_test=data.x_test[te], y_test=relabel[data.y_test[te]],
            task_label=i if task_labels else 0, classes=classes,
        ))
    return Scenario(
        name=name,
        experiences=experiences,
        n_classes=per_exp if task_labels else data.n_classes,
        input_shape=data.input_shape,
        multi_head=task_labels,
    )


def build_split(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    order = class_order(data.n_classes, cfg.get("class_order"), cfg.get("shuffle_classes", False), seed)
    return split_by_class(data, int(cfg.n_experiences), order, bool(cfg.get("task_labels", False)), name)


for _name, _dataset in {
    "split_digits": "digits",
    "split_mnist": "mnist",
    "split_fmnist": "fmnist",
    "split_cifar10": "cifar10",
    "split_cifar100": "cifar100",
    "split_tiny_imagenet": "tiny_imagenet",
}.items():
    register_scenario(_name, rules={"n_experiences": at_least(1)})(partial(build_split, dataset=_dataset, name=_name))
