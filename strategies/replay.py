"""Experience replay with a bounded memory (Avalanche's ReplayPlugin).

By default each training minibatch of new data is concatenated with a minibatch of the same size
drawn from memory (the effective batch doubles once memory is non-empty), i.e. new and replayed
samples weigh equally in one mean loss. With `new_data_weight` set, the memory batch is drawn
separately and loss = w * CE(new batch) + (1 - w) * CE(memory batch), the ER of the
stability-gap paper (w = 0.3). The buffer is updated at the END of each experience under the
chosen storage policy:
- experience_balanced: equal share of the memory per past experience (Avalanche's default);
- class_balanced: equal share per seen class;
- reservoir: reservoir sampling over the experiences' data, applied at experience end (not the
  per-sample online reservoir of the online-CL literature).
"""
import torch
from avalanche.models.utils import avalanche_forward
from avalanche.training.plugins import ReplayPlugin as AvalancheReplayPlugin
from avalanche.training.storage_policy import (
    ClassBalancedBuffer,
    ExperienceBalancedBuffer,
    ReservoirSamplingBuffer,
)
from avalanche.training.templates import SupervisedTemplate

from cl_bench.data.buffers import dataset_from_state, dataset_state
from cl_bench.registry import register_strategy
from cl_bench.rules import Rule, at_least, one_of, optional

STORAGE_POLICIES = {
    "experience_balanced": lambda size: ExperienceBalancedBuffer(max_size=size, adaptive_size=True),
    "class_balanced": lambda size: ClassBalancedBuffer(max_size=size, adaptive_size=True),
    "reservoir": lambda size: ReservoirSamplingBuffer(max_size=size),
}


class StoragePolicyBuffer:
    """For an Avalanche plugin with a `storage_policy`: the buffer is updated at experience end
    through the policy's current API (0.6.0's plugins go through the deprecated `update`, the
    same call inside, which warns at every experience) and checkpointed as tensors."""

    def after_training_exp(self, strategy, **kwargs):
        self.storage_policy.post_adapt(strategy, strategy.experience)

    def state_dict(self) -> dict:
        return buffer_state(self.storage_policy)

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.storage_policy, state)


class ReplayPlugin(StoragePolicyBuffer, AvalancheReplayPlugin):
    """Avalanche's ReplayPlugin with its buffer updated and checkpointed as StoragePolicyBuffer says."""


def buffer_state(policy) -> dict:
    """A storage policy as tensors: its reservoir buffers (samples and their sampling weights),
    grouped by experience or class for the balanced policies, in the order Avalanche keeps them."""
    if isinstance(policy, ReservoirSamplingBuffer):
        return {"max_size": policy.max_size, "weights": policy._buffer_weights, "data": dataset_state(policy.buffer)}
    state = {"max_size": policy.max_size, "groups": [(key, buffer_state(group)) for key, group in policy.buffer_groups.items()]}
    if isinstance(policy, ExperienceBalancedBuffer):
        state["num_exps"] = policy._num_exps
    if isinstance(policy, ClassBalancedBuffer):
        state["seen_classes"] = list(policy.seen_classes)  # in the set's own order, which decides group sizes
    return state


def load_buffer_state(policy, state: dict) -> None:
    policy.max_size = state["max_size"]
    if isinstance(policy, ReservoirSamplingBuffer):
        policy._buffer_weights = state["weights"].cpu()
        policy.buffer = dataset_from_state(state["data"])
        return
    policy.buffer_groups = {}
    for key, group_state in state["groups"]:
        group = ReservoirSamplingBuffer(group_state["max_size"])
        load_buffer_state(group, group_state)
        policy.buffer_groups[key] = group
    if isinstance(policy, ExperienceBalancedBuffer):
        policy._num_exps = state["num_exps"]
    if isinstance(policy, ClassBalancedBuffer):
        policy.seen_classes = set(state["seen_classes"])


class WeightedReplayPlugin(ReplayPlugin):
    """Replay with its own memory batch and a weighted loss; Avalanche's buffer management."""

    def __init__(self, new_data_weight: float, **kwargs):
        super().__init__(**kwargs)
        self.new_data_weight = new_data_weight
        self.memory = None

    def before_training_exp(self, strategy, **kwargs):
        # Keep the strategy's own loader over new data; hold the memory as tensors on the device.
        buffer = self.storage_policy.buffer
        self.memory = None
        if len(buffer) > 0:
            x, y, t = next(iter(torch.utils.data.DataLoader(buffer, batch_size=len(buffer))))
            self.memory = (x.to(strategy.device), y.to(strategy.device), t.to(strategy.device))

    def before_backward(self, strategy, **kwargs):
        if self.memory is None:
            return
        x, y, t = self.memory
        size = min(self.batch_size_mem or strategy.train_mb_size, len(y))
        idx = torch.randperm(len(y))[:size].to(strategy.device)  # a batch without repeats
        replay_loss = strategy._criterion(avalanche_forward(strategy.model, x[idx], t[idx]), y[idx])
        w = self.new_data_weight
        strategy.loss = w * strategy.loss + (1 - w) * replay_loss


@register_strategy("replay", rules={
    "mem_size": at_least(1),
    "storage_policy": one_of(*STORAGE_POLICIES),
    "batch_size_mem": optional(at_least(1)),
    "new_data_weight": Rule(lambda w: w is None or 0 <= w <= 1, "null or in [0, 1]"),
}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    common_args = dict(
        mem_size=int(cfg.mem_size),
        batch_size_mem=cfg.get("batch_size_mem"),
        storage_policy=STORAGE_POLICIES[cfg.storage_policy](int(cfg.mem_size)),
    )
    w = cfg.get("new_data_weight")
    replay = ReplayPlugin(**common_args) if w is None else WeightedReplayPlugin(float(w), **common_args)
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[replay, *plugins], **common
    )
