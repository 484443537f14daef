"""Long streams with re-occurrence (SCoLe; Lesort et al., CoLLAs 2023, arXiv 2207.04543).

Hundreds of short tasks; each draws `classes_per_task` classes without replacement from a fixed
pool (uniformly, or skewed with Zipf weights p_c ~ (rank + 1) ** -zipf_exponent, or with explicit
weights) and `samples_per_class` fresh random training samples of each. Classes come back again
and again, so the question is whether plain SGD accumulates knowledge over the stream. Accuracy
is measured on the full test split of every class after every task (one test set per class, all
evaluated from the start), not per task.
"""
from __future__ import annotations

from functools import partial

import torch

from cl_bench.errors import ConfigError
from cl_bench.data import DataSource
from cl_bench.registry import register_scenario
from cl_bench.rules import at_least
from cl_bench.scenarios.base import Experience, Scenario


def class_weights(spec, n_classes: int, zipf_exponent: float) -> torch.Tensor:
    if spec == "uniform":
        return torch.ones(n_classes)
    if spec == "zipf":
        return (torch.arange(n_classes, dtype=torch.float64) + 1).pow(-float(zipf_exponent)).float()
    if isinstance(spec, str):
        raise ConfigError(f"scenario.class_weights must be uniform, zipf or a list of {n_classes} weights, got '{spec}'")
    weights = torch.tensor([float(w) for w in spec])
    if len(weights) != n_classes or (weights < 0).any() or weights.sum() <= 0:
        raise ConfigError(f"scenario.class_weights must be {n_classes} non-negative weights, got {list(spec)}")
    return weights


def build_long_stream(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    n_tasks, per_task, shots = int(cfg.n_tasks), int(cfg.classes_per_task), int(cfg.samples_per_class)
    weights = class_weights(cfg.class_weights, data.n_classes, cfg.get("zipf_exponent", 1.0))
    if not 1 <= per_task <= int((weights > 0).sum()):
        raise ConfigError(f"scenario.classes_per_task must be between 1 and the {int((weights > 0).sum())} "
                         f"classes with non-zero weight, got {per_task}")
    g = torch.Generator().manual_seed(seed)
    by_class = [torch.nonzero(data.y_train == c).flatten() for c in range(data.n_classes)]
    experiences = []
    for _ in range(n_tasks):
        classes = sorted(torch.multinomial(weights, per_task, replacement=False, generator=g).tolist())
        idx = torch.cat([by_class[c][torch.randint(len(by_class[c]), (shots,), generator=g)] for c in classes])
        experiences.append(Experience(data.x_train[idx], data.y_train[idx], None, None, classes=classes))
    test_sets = []
    for c in range(data.n_classes):
        te = data.y_test == c
        test_sets.append(Experience(data.x_train[:0], data.y_train[:0], data.x_test[te], data.y_test[te], classes=[c]))
    scenario = Scenario(name, experiences, data.n_classes, data.input_shape, test_sets=test_sets)
    scenario.details = {"class_weights": (weights / weights.sum()).tolist()}
    return scenario


for _dataset in ("digits", "mnist"):
    register_scenario(f"scole_{_dataset}", rules={"n_tasks": at_least(1), "samples_per_class": at_least(1)})(partial(build_long_stream, dataset=_dataset, name=f"scole_{_dataset}"))
