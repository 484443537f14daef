"""Few-shot continual learning: streams where new classes arrive with only K examples each.

- FSCIL (few-shot class-incremental; Tao et al., CVPR 2020): a base session with `base_classes`
  classes and all (or `base_shots`) of their training data, then `n_sessions` sessions of
  `n_way` new classes with `k_shot` examples each; accuracy on every seen class's test data.
- CFSL-style (continual few-shot; Antoniou et al. 2020): `n_tasks` small N-way K-shot tasks. With
  `repeat_classes: true` a task draws its classes from a pool of `pool_classes` and a class that
  comes back brings new instances (no training sample is ever shown in two tasks).

Labels are renumbered by first appearance (0, 1, ... as classes arrive), so the single head has
exactly as many outputs as the stream has classes, not Omniglot's 1623.
"""
from __future__ import annotations

from functools import partial

import torch

from cl_bench.errors import ConfigError
from cl_bench.data import DataSource
from cl_bench.registry import register_scenario
from cl_bench.rules import at_least, optional
from cl_bench.scenarios.base import Experience, Scenario
from cl_bench.scenarios.class_incremental import class_order


class ShotSampler:
    """Hands out training samples of each class in a seeded order, never the same one twice."""

    def __init__(self, y: torch.Tensor, generator: torch.Generator):
        self.queues = {}
        for c in torch.unique(y).tolist():
            idx = torch.nonzero(y == c).flatten()
            self.queues[c] = idx[torch.randperm(len(idx), generator=generator)]
        self.used = {c: 0 for c in self.queues}

    def take(self, c: int, shots: int | None) -> torch.Tensor:
        queue, start = self.queues[c], self.used[c]
        stop = len(queue) if shots is None else start + shots
        if stop > len(queue):
            raise ConfigError(
                f"scenario.k_shot: class {c} has {len(queue)} training samples, the stream needs {stop} "
                f"(lower k_shot, n_tasks or set repeat_classes=false)")
        self.used[c] = stop
        return queue[start:stop]


def _few_shot_scenario(data, sessions: list[list[int]], shots: list[int | None], test_shots, seed: int, name: str):
    g = torch.Generator().manual_seed(seed)
    sampler = ShotSampler(data.y_train, g)
    appearance: list[int] = []
    for classes in sessions:
        appearance += [c for c in classes if c not in appearance]
    relabel = torch.full((data.n_classes,), -1, dtype=torch.long)
    relabel[appearance] = torch.arange(len(appearance))
    experiences = []
    for classes, k in zip(sessions, shots):
        tr = torch.cat([sampler.take(c, k) for c in classes])
        te = torch.cat([torch.nonzero(data.y_test == c).flatten()[:test_shots] for c in classes])
        experiences.append(Experience(
            x_train=data.x_train[tr], y_train=relabel[data.y_train[tr]],
            x_test=data.x_test[te], y_test=relabel[data.y_test[te]], classes=list(classes),
        ))
    return Scenario(name, experiences, len(appearance), data.input_shape)


def build_fscil(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    base, n_way, k_shot, n_sessions = (int(cfg[k]) for k in ("base_classes", "n_way", "k_shot", "n_sessions"))
    if base + n_way * n_sessions > data.n_classes:
        raise ConfigError(
            f"scenario: base_classes + n_way * n_sessions = {base + n_way * n_sessions} exceeds the "
            f"{data.n_classes} classes of {data.name}")
    order = class_order(data.n_classes, cfg.get("class_order"), cfg.get("shuffle_classes", False), seed)
    sessions = [order[:base]] + [order[base + s * n_way: base + (s + 1) * n_way] for s in range(n_sessions)]
    base_shots = cfg.get("base_shots")
    shots = [None if base_shots is None else int(base_shots)] + [k_shot] * n_sessions
    return _few_shot_scenario(data, sessions, shots, cfg.get("test_shots"), seed, name)


def build_cfsl(cfg, source: DataSource, seed: int, dataset: str, name: str) -> Scenario:
    data = source.load(dataset)
    n_tasks, n_way, k_shot = (int(cfg[k]) for k in ("n_tasks", "n_way", "k_shot"))
    # Shuffled with the seed unless an order is given: which classes form the stream is part of the draw.
    order = class_order(data.n_classes, cfg.get("class_order"), cfg.get("shuffle_classes", True), seed)
    if cfg.get("repeat_classes", False):
        pool = order[:int(cfg.pool_classes)] if cfg.get("pool_classes") else order
        if not n_way <= len(pool):
            raise ConfigError(f"scenario.pool_classes ({len(pool)}) must be >= n_way ({n_way})")
        g = torch.Generator().manual_seed(seed + 1)
        sessions = [[pool[j] for j in torch.randperm(len(pool), generator=g)[:n_way].tolist()] for _ in range(n_tasks)]
    else:
        if n_tasks * n_way > data.n_classes:
            raise ConfigError(
                f"scenario: n_tasks * n_way = {n_tasks * n_way} exceeds the {data.n_classes} classes of "
                f"{data.name}; set repeat_classes=true to draw classes again")
        sessions = [order[t * n_way:(t + 1) * n_way] for t in range(n_tasks)]
    return _few_shot_scenario(data, sessions, [k_shot] * n_tasks, cfg.get("test_shots"), seed, name)


SHOT_RULES = {"n_way": at_least(1), "k_shot": at_least(1), "test_shots": optional(at_least(1))}
FSCIL_RULES = {**SHOT_RULES, "base_classes": at_least(1), "n_sessions": at_least(0), "base_shots": optional(at_least(1))}
CFSL_RULES = {**SHOT_RULES, "n_tasks": at_least(1), "pool_classes": optional(at_least(1))}
for _dataset in ("digits", "mnist", "cifar100", "omniglot"):
    register_scenario(f"fscil_{_dataset}", rules=FSCIL_RULES)(partial(build_fscil, dataset=_dataset, name=f"fscil_{_dataset}"))
    register_scenario(f"cfsl_{_dataset}", rules=CFSL_RULES)(partial(build_cfsl, dataset=_dataset, name=f"cfsl_{_dataset}"))
