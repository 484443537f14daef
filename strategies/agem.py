"""Averaged GEM (Chaudhry, Ranzato, Rohrbach & Elhoseiny, "Efficient Lifelong Learning with
A-GEM", ICLR 2019), through Avalanche's AGEMPlugin.

A-GEM keeps `patterns_per_experience` random samples of every past experience. Before each update
it computes one reference gradient g_ref on a batch drawn from that memory; when the new
minibatch's gradient g points against it (g . g_ref < 0), g is projected onto the half-space of
non-negative dot products: g <- g - (g . g_ref / g_ref . g_ref) g_ref. One constraint on the
average past loss instead of GEM's one per task, so no quadratic program.

As in Avalanche, the reference batch is balanced over past experiences, `sample_size // n` from
each of n (the paper draws `sample_size` uniformly from the whole memory).
Deviations from Avalanche, both only where it would fail: the reference batch's task labels go to
the run's device with its inputs (Avalanche leaves them on the CPU for a multi-head model), and
once there are more past experiences than `sample_size` each gives one sample instead of none
(Avalanche's loader would be built with batch size 0, which a long stream reaches).
"""
from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader
from avalanche.training.plugins import AGEMPlugin as AvalancheAGEMPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.data.buffers import dataset_from_state, dataset_state
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least


class AGEMPlugin(AvalancheAGEMPlugin):
    """Avalanche's A-GEM, its per-experience memories checkpointed as tensors."""
    midway_iterators = ("buffer_dliter",)  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def before_training_exp(self, strategy, **kwargs):
        self.device = strategy.device

    def sample_from_memory(self):
        return [part.to(self.device) for part in super().sample_from_memory()]

    def update_memory(self, dataset, num_workers=0, **kwargs):
        super().update_memory(dataset, num_workers=num_workers, **kwargs)
        self._open_memory_loader()

    def _open_memory_loader(self) -> None:
        # Lazy: the loader draws its shuffling seeds from the torch RNG at the first batch, which in
        # a resumed run comes after the RNGs are restored, exactly as in an uninterrupted one.
        per_experience = max(1, self.sample_size // len(self.buffers))
        self.buffer_dataloader = GroupBalancedInfiniteDataLoader(self.buffers, batch_size=per_experience)
        self.buffer_dliter = iter(self.buffer_dataloader)

    def state_dict(self) -> dict:
        return {"buffers": [dataset_state(buffer) for buffer in self.buffers]}

    def load_state_dict(self, state: dict) -> None:
        self.buffers = [dataset_from_state(buffer) for buffer in state["buffers"]]
        if self.buffers:
            self._open_memory_loader()


@register_strategy("agem", rules={"patterns_per_experience": at_least(1), "sample_size": at_least(1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    agem = AGEMPlugin(patterns_per_experience=int(cfg.patterns_per_experience), sample_size=int(cfg.sample_size))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[agem, *plugins], **common
    )
