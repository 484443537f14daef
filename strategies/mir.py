"""Maximally Interfered Retrieval (Aljundi, Caccia, Belilovsky, Caccia, Lin, Charlin, Tuytelaars;
NeurIPS 2019), on Avalanche's MIRPlugin.

Experience replay whose memory batch is chosen, not drawn: at every step a `subsample` of the
class-balanced memory is scored by how much its loss would rise after a virtual SGD step on the
current batch, and the `batch_size_mem` most interfered samples are replayed (their loss is
added to the batch loss). The memory is updated at the end of each experience.

Fix to Avalanche: its plugin leaves out of the replay memory the classes of the experience's
last minibatch. In the online stream it was written for that is the task being learned; here
an experience is a whole task, so it dropped the task just finished from replay during the next
one, and on a domain-incremental stream (every class in every task) it emptied the memory, making
MIR fine-tuning. The memory, updated at an experience's end, holds only past data when the next
one trains, so nothing is excluded.
"""
import torch
from avalanche.training.plugins import MIRPlugin as AvalancheMIRPlugin
from avalanche.training.plugins.mir import cycle
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least
from strategies.replay import buffer_state, load_buffer_state


class MIRPlugin(AvalancheMIRPlugin):
    """Avalanche's MIR with the whole memory retrievable (see the module doc) and the buffer
    updated through the storage policy's current API (0.6.0's `update` warns at every
    experience); the buffer is checkpointed as tensors."""
    midway_iterators = ("replay_loader",)  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def after_training_exp(self, strategy, **kwargs):
        self.storage_policy.post_adapt(strategy, strategy.experience)
        self._make_replay_loader()

    def _make_replay_loader(self):
        buffer = self.storage_policy.buffer
        self.replay_loader = None
        if len(buffer) > self.batch_size_mem:
            # Iterated lazily: the shuffle is drawn at the first replayed step, so a resumed run
            # draws it at the same point of the RNG stream as an uninterrupted one.
            self.replay_loader = cycle(torch.utils.data.DataLoader(buffer, batch_size=self.subsample, shuffle=True))

    def state_dict(self) -> dict:
        return buffer_state(self.storage_policy)

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.storage_policy, state)
        self._make_replay_loader()


@register_strategy("mir", rules={"mem_size": at_least(1), "subsample": at_least(1), "batch_size_mem": at_least(1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    mir = MIRPlugin(mem_size=int(cfg.mem_size), subsample=int(cfg.subsample), batch_size_mem=int(cfg.batch_size_mem))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion, plugins=[mir, *plugins], **common)
