"""Dark Experience Replay, DER and DER++ (Buzzega, Boschini, Porrello, Abati & Calderara,
"Dark Experience for General Continual Learning: a Strong, Simple Baseline", NeurIPS 2020).

A replay memory keeps past inputs together with the logits the network gave them; training adds
to the cross-entropy on new data `alpha` * MSE between the current and the stored logits of a
memory batch (DER) and, with `beta` > 0, `beta` * cross-entropy on that batch's labels (DER++).
`beta=0` is DER, `beta>0` DER++.

Avalanche 0.6.0's DER, whose deviations from the paper (named in its source) we keep so numbers
match Avalanche's: the memory is class-balanced (a reservoir per class) instead of one reservoir
over the stream, it is filled at the END of each experience with the logits of the model trained
on it (the paper records them when a sample is first seen, mid-training), one memory batch serves
both terms (the paper draws two), and memory and new data go through one forward pass.
Avalanche computes the stored logits with `model(x)`, which a multi-head model cannot answer
without task labels: DER runs class- and domain-incremental here.
"""
import torch
from avalanche.benchmarks.utils import make_avalanche_dataset
from avalanche.benchmarks.utils.data_attribute import TensorDataAttribute
from avalanche.benchmarks.utils.flat_data import FlatData
from avalanche.training.storage_policy import ReservoirSamplingBuffer
from avalanche.training.supervised import DER as AvalancheDER

from cl_bench.data.buffers import dataset_from_state
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, number_at_least, optional


class DER(AvalancheDER):
    """Avalanche's DER, its memory (samples, stored logits, reservoir weights) checkpointed."""
    midway_iterators = ("replay_loader",)  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def state_dict(self) -> dict:
        policy = self.storage_policy
        return {"max_size": policy.max_size, "seen_classes": list(policy.seen_classes),
                "groups": [(c, group.max_size, group._buffer_weights, samples_with_logits(group.buffer))
                           for c, group in policy.buffer_groups.items()]}

    def load_state_dict(self, state: dict) -> None:
        policy = self.storage_policy
        policy.max_size = state["max_size"]
        policy.seen_classes = set(state["seen_classes"])  # a set of small ints: same order as saved
        policy.buffer_groups = {}
        for c, max_size, weights, samples in state["groups"]:
            group = ReservoirSamplingBuffer(max_size)
            group._buffer_weights = weights.cpu()
            group.buffer = dataset_with_logits(samples)
            policy.buffer_groups[c] = group


def samples_with_logits(dataset) -> dict:
    # A private generator: a DataLoader draws its base seed even when it does not shuffle.
    loader = torch.utils.data.DataLoader(dataset, batch_size=len(dataset), generator=torch.Generator())
    x, y, t, logits = next(iter(loader))
    return {"x": x, "y": y, "t": t, "logits": logits}


def dataset_with_logits(samples: dict):
    """The buffer's dataset as Avalanche's DER builds it: samples plus a `logits` attribute
    returned by __getitem__ after (x, y, t)."""
    data = dataset_from_state(samples)
    logits = list(samples["logits"].cpu().unbind(0))
    return make_avalanche_dataset(data, data_attributes=[
        TensorDataAttribute(FlatData([logits], discard_elements_not_in_indices=True), name="logits",
                            use_in_getitem=True)])


@register_strategy("der", rules={
    "mem_size": at_least(1),
    "batch_size_mem": optional(at_least(1)),
    "alpha": number_at_least(0),
    "beta": number_at_least(0),
}, settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> DER:
    return DER(model=model, optimizer=optimizer, criterion=criterion, mem_size=int(cfg.mem_size),
               batch_size_mem=cfg.get("batch_size_mem"), alpha=float(cfg.alpha), beta=float(cfg.beta),
               plugins=list(plugins), **common)
