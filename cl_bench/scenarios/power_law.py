"""Rehearsal environments (Gandhi et al. 2024, arXiv 2401.10393): wrap any single-head scenario
so that phase t trains on task t plus, for every earlier task i, counts[t, i] of its training
samples (see rehearsal_schedule.py for the power-law, exponential, uniform, none and full
schedules and their budgets).

Storage of old tasks is unbounded by design: the environment keeps every old task's training
data and the schedule, not a memory buffer, limits what is rehearsed. Strategies see ordinary
experiences (new and old samples mixed), so any strategy runs on top, EWC or LwF included; an
experience holds its rehearsed samples as indices into the old tasks (Experience.rehearsal).
Recency is counted from a task's introduction (k = t - i, the paper's n_i(t)): every old task is
rehearsed at every phase, so "time since last rehearsal" would always be one phase.
"""
from __future__ import annotations

import torch

from cl_bench.data import DataSource
from cl_bench.errors import ConfigError
from cl_bench.registry import SCENARIOS, register_scenario
from cl_bench.scenarios.base import Experience, Scenario
from cl_bench.scenarios.rehearsal_schedule import rehearsal_counts


@register_scenario("power_law_rehearsal")  # the schedule checks its own keys (rehearsal_schedule.py)
def build_rehearsal_environment(cfg, source: DataSource, seed: int) -> Scenario:
    base_cfg = cfg.base
    if base_cfg.name == "power_law_rehearsal":
        raise ConfigError("scenario.base.name must be a base scenario, not power_law_rehearsal")
    SCENARIOS.check(base_cfg.name, base_cfg, "scenario.base")
    base = SCENARIOS.build(base_cfg.name, base_cfg, source, seed)
    if base.multi_head or base.test_sets is not None:
        raise ConfigError(f"scenario.base: '{base.name}' is multi-head or has its own test sets; rehearsal "
                         f"environments mix tasks in one experience and need a single-head, task-per-experience base")
    s = cfg.schedule
    counts = rehearsal_counts(
        str(s.kind), [len(e.y_train) for e in base.experiences], exponent=float(s.exponent),
        offset=float(s.offset), decay=float(s.decay), scale=s.get("scale"),
        per_phase_budget=s.get("per_phase_budget"), total_budget=s.get("total_budget"))
    g = torch.Generator().manual_seed(seed)
    experiences = []
    for t, new in enumerate(base.experiences):
        rehearsal = [(i, torch.randperm(len(base.experiences[i].y_train), generator=g)[:int(counts[t, i])])
                     for i in range(t) if counts[t, i]]
        experiences.append(Experience(
            x_train=new.x_train, y_train=new.y_train, x_test=new.x_test, y_test=new.y_test,
            task_label=new.task_label, classes=new.classes, rehearsal=rehearsal,
        ))
    scenario = Scenario(f"power_law_rehearsal({base.name})", experiences, base.n_classes, base.input_shape,
                        setting=base.setting)
    scenario.details = {"base": base.name, "schedule": str(s.kind), "rehearsal_counts": counts.tolist(),
                        "rehearsed_samples": int(counts.sum())}
    return scenario
