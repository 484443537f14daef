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
the minibatch after its meta-update.
"""
from avalanche.training.supervised import MER as AvalancheMER

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, between
from strategies.replay import buffer_state, load_buffer_state


class MER(AvalancheMER):
    def _outer_update(self, **kwargs):
        super()._outer_update(**kwargs)
        self._before_backward(**kwargs)  # once per minibatch: the divergence guard checks its loss

    def _after_training_exp(self, **kwargs):
        self.buffer.storage_policy.post_adapt(self, self.experience)
        # the grandparent's: Avalanche's own would update the memory a second time, deprecated
        super(AvalancheMER, self)._after_training_exp(**kwargs)

    def state_dict(self) -> dict:
        return buffer_state(self.buffer.storage_policy)

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.buffer.storage_policy, state)


@register_strategy("mer", rules={"mem_size": at_least(1), "batch_size_mem": at_least(1), "n_inner_steps": at_least(1),
                                 "beta": between(0, 1), "gamma": between(0, 1)})
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> MER:
    return MER(model=model, optimizer=optimizer, criterion=criterion, plugins=list(plugins),
               mem_size=int(cfg.mem_size), batch_size_mem=int(cfg.batch_size_mem),
               n_inner_steps=int(cfg.n_inner_steps), beta=float(cfg.beta), gamma=float(cfg.gamma), **common)
