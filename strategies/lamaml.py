"""Look-ahead MAML (La-MAML; Gupta, Yadav & Paull, "La-MAML: Look-ahead Meta Learning for
Continual Learning", NeurIPS 2020), on Avalanche's LaMAML strategy (`avalanche.training.
supervised.lamaml`, which runs the inner loop through the `higher` package).

Every weight has its own learning rate alpha (all `alpha_init` at the start). For each minibatch
of new data, the weights are copied into fast weights and those take `n_inner_updates` steps,
each on one chunk of the minibatch (gradients clamped to +-`grad_clip_norm`, step alpha * g);
after each step the loss of the fast weights on the minibatch joined with `batch_size_mem`
samples of a replay memory is taken. Their mean is the meta-loss, differentiated through the
inner steps into the slow weights and into the alphas (`second_order`; false: the inner gradients
are taken as constants, as in the paper's MNIST runs). The alphas take one SGD step of `lr_alpha`
(`learn_lr`), then the slow weights step by their meta-gradient (clipped to norm
`grad_clip_norm`) times max(0, alpha): a learning rate driven negative stops its weight instead
of reversing it. The update uses the learned rates, not the `optimizer` group, unless
`sync_update` (the paper's "sync" variant: the run's optimizer steps the weights; with
`learn_lr=false` that is C-MAML). The memory is a reservoir sample of the data seen, updated at
each experience's end as in Avalanche's `lamaml_v2` (the paper's code offers every sample as it
arrives). What the run keeps across experiences, and checkpoints: that memory and the alphas.

As in Avalanche: the model's Linear and Conv2d weights are re-drawn (Kaiming normal, zero bias)
when the strategy is built, and the ReLU applies to the outer step only (the paper's code also
applies it in the inner loop).

Changes to Avalanche:
- the inner loop is ours, around Avalanche's inner step and outer update: Avalanche drops the
  last incomplete minibatch of every epoch (its loop finds the new data by position in the joined
  batch), so an experience smaller than one batch, as in few-shot and long streams, was never
  trained on, and a batch that `n_inner_updates` chunks of Avalanche's size ceil(batch / n) do not
  all reach got an empty chunk and a NaN loss. Ours knows where the new data end, keeps every
  batch and takes one inner step per non-empty chunk of that size; full batches are split as
  Avalanche splits them. In first order Avalanche kept only the last fast weights, so only the
  last inner step's meta-loss reached the slow weights and the alphas; ours keeps them all, so
  first order differs from second only in the inner gradients being constants (as in the paper's
  code and in Avalanche's `lamaml_v2`).
- the memory is Avalanche's `lamaml_v2` buffer, updated through the storage policy's current API
  (its `update` warns at every experience) and drawn from as it draws (a random subset without
  repeats), from a copy held as tensors on the device instead of a dataset read one sample at a
  time.
- Avalanche's meta-learning loop never calls `before_backward`, so the divergence guard could not
  see a non-finite loss: it is called once per minibatch with the meta-loss, before any weight
  moves.
Avalanche's `lamaml_v2` strategy itself (torch.func instead of `higher`; the one
continual-learning-baselines runs, with a multi-task model) is not used: it calls
`model(x, task_labels)` on every model, which a single-head classifier does not take.
"""
import math
import warnings
from collections import OrderedDict

import higher
import torch
from avalanche.models.utils import avalanche_forward
from avalanche.training.supervised.lamaml import LaMAML as AvalancheLaMAML
from avalanche.training.supervised.lamaml_v2 import Buffer
from avalanche.training.templates.base import PositionalArgumentsDeprecatedWarning
from torch import nn

from cl_bench.data.buffers import dataset_state
from cl_bench.registry import register_strategy
from cl_bench.rules import Rule, at_least, positive
from strategies.replay import buffer_state, load_buffer_state


class TensorLaMAMLBuffer(Buffer):
    """Avalanche's La-MAML memory (a reservoir), sampled from a tensor copy taken whenever it changes."""

    def __init__(self, mem_size: int, batch_size_mem: int, device):
        super().__init__(max_buffer_size=mem_size, buffer_mb_size=batch_size_mem, device=device)
        self.cache()

    def update(self, strategy):
        self.storage_policy.post_adapt(strategy, strategy.experience)
        self.cache()

    def cache(self):
        state = dataset_state(self.storage_policy.buffer)
        self.tensors = None if state["x"] is None else [state[k].to(self.device) for k in ("x", "y", "t")]

    def __len__(self):
        return 0 if self.tensors is None else len(self.tensors[1])

    def get_buffer_batch(self):
        chosen = torch.randperm(len(self))[: self.buffer_mb_size]  # the draw Avalanche makes
        return [v[chosen.to(self.device)] for v in self.tensors]


class LaMAML(AvalancheLaMAML):
    def __init__(self, *, mem_size: int, batch_size_mem: int, **kwargs):
        # We pass keywords; Avalanche's LaMAML hands them on to its template positionally, and the
        # template warns at every run about an argument style no caller of ours can change.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Avalanche is transitioning to strategy constructors",
                                    category=PositionalArgumentsDeprecatedWarning)
            super().__init__(**kwargs)
        self.buffer = TensorLaMAMLBuffer(mem_size, batch_size_mem, self.device)

    def make_train_dataloader(self, **kwargs):
        # Avalanche asks for drop_last: its inner loop finds the new data by position in the batch.
        super().make_train_dataloader(**{**kwargs, "drop_last": False})

    def _inner_updates(self, **kwargs):
        new = self.mbatch  # x, y, task labels of the new data; the memory batch goes behind them
        if len(self.buffer) > 0:
            self.mbatch = [torch.cat([part, old]) for part, old in zip(new, self.buffer.get_buffer_batch())]
        # Every step's fast weights are kept, also in first order (the inner gradients are then
        # constants): Avalanche's track_higher_grads=second_order keeps only the last ones.
        self.fast_model = higher.patch.monkeypatch(self.model, copy_initial_weights=True, track_higher_grads=True)
        size = math.ceil(len(new[0]) / self.n_inner_updates)  # Avalanche's chunk size
        self.meta_losses = []
        for x, y, t in zip(*(part.split(size) for part in new)):
            self.inner_update_step(self.fast_model, x, y, t)
            logits = avalanche_forward(self.fast_model, self.mb_x, self.mb_task_id)
            self.meta_losses.append(self._criterion(logits, self.mb_y))

    def _outer_update(self, **kwargs):
        self.loss = sum(self.meta_losses) / len(self.meta_losses)  # the meta-loss Avalanche steps on
        self._before_backward(**kwargs)  # once per minibatch, before any step: the divergence guard
        super()._outer_update(**kwargs)

    def _after_training_exp(self, **kwargs):
        self.buffer.update(self)
        super()._after_training_exp(**kwargs)

    def state_dict(self) -> dict:
        # (name, rate) pairs in Avalanche's order: it pairs the rates with the model's parameters by
        # position, and a ParameterDict built from a plain dict sorts its keys.
        alphas = [(name, alpha.detach()) for name, alpha in self.alpha_params.items()]
        return {"buffer": buffer_state(self.buffer.storage_policy), "alpha": alphas}

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.buffer.storage_policy, state["buffer"])
        self.buffer.cache()
        alphas = OrderedDict((name, nn.Parameter(alpha.clone())) for name, alpha in state["alpha"])
        self.alpha_params = nn.ParameterDict(alphas)
        # Avalanche makes the alphas' optimizer (plain SGD, no state) again before every experience.
        self.alpha_params_initialized = len(self.alpha_params) > 0


BOOLEAN = Rule(lambda v: isinstance(v, bool), "true or false")


@register_strategy("lamaml", rules={
    "mem_size": at_least(1), "batch_size_mem": at_least(1), "n_inner_updates": at_least(1),
    "second_order": BOOLEAN, "grad_clip_norm": positive(), "learn_lr": BOOLEAN, "lr_alpha": positive(),
    "alpha_init": positive(), "sync_update": BOOLEAN,
})
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> LaMAML:
    return LaMAML(model=model, optimizer=optimizer, criterion=criterion, plugins=list(plugins),
                  mem_size=int(cfg.mem_size), batch_size_mem=int(cfg.batch_size_mem),
                  n_inner_updates=int(cfg.n_inner_updates), second_order=bool(cfg.second_order),
                  grad_clip_norm=float(cfg.grad_clip_norm), learn_lr=bool(cfg.learn_lr),
                  lr_alpha=float(cfg.lr_alpha), sync_update=bool(cfg.sync_update),
                  alpha_init=float(cfg.alpha_init), **common)
