"""Experience replay with a bounded memory (Avalanche's ReplayPlugin).

Each training minibatch of new data is concatenated with a minibatch of the same size drawn from
memory (the effective batch doubles once memory is non-empty). The buffer is updated at the END
of each experience under the chosen storage policy:
- experience_balanced: equal share of the memory per past experience (Avalanche's default);
- class_balanced: equal share per seen class;
- reservoir: reservoir sampling over the experiences' data, applied at experience end (not the
  per-sample online reservoir of the online-CL literature).
"""
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import (
    ClassBalancedBuffer,
    ExperienceBalancedBuffer,
    ReservoirSamplingBuffer,
)
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy

STORAGE_POLICIES = {
    "experience_balanced": lambda size: ExperienceBalancedBuffer(max_size=size, adaptive_size=True),
    "class_balanced": lambda size: ClassBalancedBuffer(max_size=size, adaptive_size=True),
    "reservoir": lambda size: ReservoirSamplingBuffer(max_size=size),
}


@register_strategy("replay")
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if cfg.storage_policy not in STORAGE_POLICIES:
        raise ValueError(
            f"strategy.storage_policy must be one of {', '.join(STORAGE_POLICIES)}, got '{cfg.storage_policy}'"
        )
    if int(cfg.mem_size) < 1:
        raise ValueError(f"strategy.mem_size must be >= 1, got {cfg.mem_size}")
    replay = ReplayPlugin(
        mem_size=int(cfg.mem_size),
        batch_size_mem=cfg.get("batch_size_mem"),
        storage_policy=STORAGE_POLICIES[cfg.storage_policy](int(cfg.mem_size)),
    )
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[replay, *plugins], **common
    )
