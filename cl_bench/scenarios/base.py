"""What every scenario builder returns: Avalanche streams plus the tensors behind them.

Experiences are Avalanche datasets over in-memory tensors, so any Avalanche strategy or plugin
works on them; the raw per-experience test tensors are kept too, because evaluation is much
faster as a few big forward passes than through Avalanche's evaluation loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from avalanche.benchmarks.scenarios import CLScenario
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
from avalanche.benchmarks.scenarios.task_aware import with_task_labels
from avalanche.benchmarks.utils import _make_taskaware_tensor_classification_dataset


@dataclass
class Experience:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor | None  # None when the scenario reports accuracy on its own test_sets
    y_test: torch.Tensor | None
    task_label: int = 0
    classes: list[int] = field(default_factory=list)
    # Samples of earlier experiences' training sets this one trains on too, as (experience index,
    # sample indices) pairs into their x_train: indices, not copies, so a stream that rehearses
    # every old task (power_law.py's `full` schedule) holds each task's images once.
    rehearsal: list[tuple[int, torch.Tensor]] = field(default_factory=list)

    @property
    def n_train(self) -> int:
        return len(self.y_train) + sum(len(idx) for _, idx in self.rehearsal)


@dataclass
class Scenario:
    name: str
    experiences: list[Experience]
    n_classes: int  # output units of a single head, or of each head when multi_head
    input_shape: tuple[int, ...]
    multi_head: bool = False  # task-incremental: one head per experience, task labels given
    # van de Ven et al.'s scenario: class_incremental (new classes, one head), domain_incremental
    # (same classes, new inputs), task_incremental (set for any multi-head scenario). Strategies
    # declare which they support; an unsupported pairing fails before training.
    setting: str = "class_incremental"
    # What accuracy is reported on, when it is not "each experience's own test set": long streams
    # (SCoLe) evaluate every class after every task, so their test sets are one per class and all
    # of them count as seen from the start. None: one test set per experience, seen once trained.
    test_sets: list[Experience] | None = None
    details: dict = field(default_factory=dict)  # scenario-specific facts recorded in results.json
    benchmark: CLScenario = field(init=False)

    def __post_init__(self):
        if self.multi_head:
            self.setting = "task_incremental"
        def dataset(x, y, t):
            return _make_taskaware_tensor_classification_dataset(x, y, task_labels=t)

        own = [dataset(e.x_train, e.y_train, e.task_label) for e in self.experiences]
        train = []
        for t, e in enumerate(self.experiences):
            if any(not 0 <= i < t for i, _ in e.rehearsal):
                raise ValueError(f"experience {t} rehearses {[i for i, _ in e.rehearsal]}: only earlier experiences can be")
            data = own[t]
            for i, idx in e.rehearsal:  # Avalanche's subset and concat index lazily: nothing is copied
                data = data.concat(own[i].subset(idx.tolist()))
            train.append(data)
        # Task labels and class timelines (classes_in_this_experience, ...) on every experience:
        # Avalanche's dynamic modules and several plugins read them.
        self.benchmark = with_classes_timeline(with_task_labels(
            benchmark_from_datasets(
                train=train,
                test=[dataset(e.x_test, e.y_test, e.task_label) for e in self.evaluation_sets],
            )
        ))

    @property
    def n_experiences(self) -> int:
        return len(self.experiences)

    @property
    def evaluation_sets(self) -> list[Experience]:
        return self.test_sets if self.test_sets is not None else self.experiences

    @property
    def evaluates_all_from_start(self) -> bool:
        return self.test_sets is not None

    @property
    def n_heads(self) -> int | None:
        return self.n_experiences if self.multi_head else None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "n_experiences": self.n_experiences,
            "n_classes": self.n_classes,
            "input_shape": list(self.input_shape),
            "multi_head": self.multi_head,
            "setting": self.setting,
            "classes_per_experience": [e.classes for e in self.experiences],
            "train_sizes": [e.n_train for e in self.experiences],
            "test_sizes": [len(e.y_test) for e in self.evaluation_sets],
            "test_sets": "per experience" if self.test_sets is None else [e.classes for e in self.test_sets],
            **self.details,
        }
