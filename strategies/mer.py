"""Meta-Experience Replay (Riemer, Cases, Ajemian, Liu, Rish, Tu, Tesauro; ICLR 2019), on
Avalanche's MER strategy.

Experience replay with Reptile meta-updates, which favour steps whose gradients agree across
samples (transfer) over those that conflict (interference). For every minibatch, `n_inner_steps`
times: join it with `batch_size_mem` samples of a reservoir memory, take one optimizer step per
sample, then pull the weights back to beta of the way (within-batch Reptile); after the inner
loop the weights move gamma of the way from where the minibatch started (across-batch Reptile).
As in Avalanche, the memory is updated at each experience's end (not per sample, as the
paper's online stream) and a whole minibatch plays the part of the paper's single new sample.

Changes to Avalanche: the memory is updated through the storage policy's current API (0.6.0's
`update` warns at every experience); and Avalanche's meta-learning loop never calls the
`before_backward` callback, so a non-finite loss went on being trained on until the experience
ended and nothing could watch a step's loss: it is called once per minibatch, with the loss on
the minibatch after its meta-update. The memory batches are drawn as Avalanche draws them, from
the memory held as tensors (Avalanche read its dataset one sample at a time, ten per inner step).
"""
import torch
from avalanche.training.supervised import MER as AvalancheMER
from avalanche.training.supervised.mer import MERBuffer

from cl_bench.data.buffers import dataset_state
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, between
from strategies.replay import buffer_state, load_buffer_state


class TensorMERBuffer(MERBuffer):
    """Avalanche's MER memory, sampled from a tensor copy taken whenever the memory changes."""

    def cache(self):
        state = dataset_state(self.storage_policy.buffer)
        self.tensors = None if state["x"] is None else [state[k].to(self.device) for k in ("x", "y", "t")]

    def get_batch(self, x, y, t):
        if len(self) == 0:
            return x, y, t
        chosen = torch.randperm(len(self))[:min(len(self), self.batch_size_mem)]  # the draw Avalanche makes
        memory = [v[chosen.to(self.device)] for v in self.tensors]
        return tuple(torch.cat([a, b]) for a, b in zip((x, y, t), memory))


class MER(AvalancheMER):
    def __init__(self, *, mem_size: int, batch_size_mem: int, **kwargs):
        super().__init__(mem_size=mem_size, batch_size_mem=batch_size_mem, **kwargs)
        self.buffer = TensorMERBuffer(mem_size=mem_size, batch_size_mem=batch_size_mem, device=self.device)
        self.buffer.cache()

    def _outer_update(self, **kwargs):
        super()._outer_update(**kwargs)
        self._before_backward(**kwargs)  # once per minibatch: the divergence guard checks its loss

    def _after_training_exp(self, **kwargs):
        self.buffer.storage_policy.post_adapt(self, self.experience)
        self.buffer.cache()
        # the grandparent's: Avalanche's own would update the memory a second time, deprecated
        super(AvalancheMER, self)._after_training_exp(**kwargs)

    def state_dict(self) -> dict:
        return buffer_state(self.buffer.storage_policy)

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.buffer.storage_policy, state)
        self.buffer.cache()


@register_strategy("mer", rules={"mem_size": at_least(1), "batch_size_mem": at_least(1), "n_inner_steps": at_least(1),
                                 "beta": between(0, 1), "gamma": between(0, 1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> MER:
    return MER(model=model, optimizer=optimizer, criterion=criterion, plugins=list(plugins),
               mem_size=int(cfg.mem_size), batch_size_mem=int(cfg.batch_size_mem),
               n_inner_steps=int(cfg.n_inner_steps), beta=float(cfg.beta), gamma=float(cfg.gamma), **common)
