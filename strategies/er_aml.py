"""ER with asymmetric metric learning, ER-AML (Caccia, Aljundi, Asadi, Tuytelaars, Pineau &
Belilovsky, "New Insights on Reducing Abrupt Representation Change in Online Continual
Learning", ICLR 2022).

Replay in which the incoming batch is not trained with cross-entropy but with a supervised
contrastive loss on the trunk's normalised features: each incoming sample is pulled toward a
memory sample of its class and pushed from one of another class (of the same task with
`same_task_neg`). The memory batch gets the ordinary cross-entropy.

Avalanche 0.6.0's ER_AML (offline variant: the class-balanced memory takes in the new
experience's data at its start, replay begins with the second experience), with two fixes:
- the positive/negative candidates come from one loader per class group with batch size
  train.batch_size and drop_last; a group smaller than a batch (200 samples over 8 classes at
  batch 32) yields no batch, and Avalanche's `cycle` then loops forever. Each group's batch is
  capped at the group's size;
- the buffer update goes through the storage policy's current API (0.6.0's `update` warns).
A multi-head run renumbers labels inside each task, so the class groups mix tasks and a
"positive" may be another task's class: ER-AML runs class- and domain-incremental only.
"""
import torch
from avalanche.training.supervised import ER_AML as AvalancheER_AML
from avalanche.training.utils import cycle

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import Rule, at_least, positive
from strategies.er_ace import QuietClassBalancedBuffer
from strategies.replay import buffer_state, load_buffer_state


class ER_AML(AvalancheER_AML):
    """Avalanche's ER_AML, its memory checkpointed as tensors."""
    midway_iterators = ("replay_loader", "pos_neg_loaders")  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.storage_policy = QuietClassBalancedBuffer(max_size=self.mem_size, adaptive_size=True)

    def _before_training_exp(self, **kwargs):
        super()._before_training_exp(**kwargs)
        if self.replay_loader is not None:  # Avalanche's loaders, none of them drawn from yet
            self.pos_neg_loaders = [
                cycle(torch.utils.data.DataLoader(group.buffer, batch_size=min(self.train_mb_size, len(group.buffer)),
                                                  shuffle=True, drop_last=True))
                for group in self.storage_policy.buffer_groups.values()
            ]

    def state_dict(self) -> dict:
        return buffer_state(self.storage_policy)

    def load_state_dict(self, state: dict) -> None:
        load_buffer_state(self.storage_policy, state)


@register_strategy("er_aml", rules={
    "mem_size": at_least(1),
    "batch_size_mem": at_least(1),
    "temp": positive(),
    "base_temp": positive(),
    "same_task_neg": Rule(lambda v: isinstance(v, bool), "true or false"),
}, settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> ER_AML:
    trunk = getattr(model, "trunk", None)
    if not isinstance(trunk, torch.nn.Module):
        raise ConfigError(f"strategy 'er_aml' needs a model with a feature trunk (`model.trunk`); "
                          f"model '{type(model).__name__}' has none")
    return ER_AML(model=model, feature_extractor=trunk, optimizer=optimizer, criterion=criterion,
                  temp=float(cfg.temp), base_temp=float(cfg.base_temp), same_task_neg=bool(cfg.same_task_neg),
                  mem_size=int(cfg.mem_size), batch_size_mem=int(cfg.batch_size_mem), plugins=list(plugins),
                  **common)
