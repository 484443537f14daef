"""Retrospective Adversarial Replay (Kumari, Wang, Zhou, Bilmes; NeurIPS 2022), on Avalanche's
RARPlugin.

Experience replay (each minibatch of new data is joined by an equal-size batch from a reservoir
memory) plus adversarial replay: a memory batch is perturbed, with a few MI-FGSM steps of size
at most `epsilon_fgsm`, towards the class of each sample's nearest current-task neighbour in
feature space (features of a copy of the model after one look-ahead SGD step of rate `opt_lr` on
the current batch), and loss += beta_coef * CE(model(perturbed), true labels): replay near the
boundary the new task is pushing into the old classes. The paper's MixUp augmentation of the
replayed samples is not part of Avalanche's plugin and not implemented here.

A strategy rather than an add-on: Avalanche's plugin is a whole replay method (its own memory
and replay loader), so it would not compose with `strategy=replay` but duplicate it.

Fixes to Avalanche (each changes what the method does, not only its numbers):
- the attack target was the label of the FARTHEST other-class sample (the nearest-neighbour loop
  had no break); it is the nearest, among samples of the current experience's classes (the
  minibatch also holds replayed samples, which are not the current task);
- the perturbation went up the target class's loss, i.e. away from it; it goes down it, towards
  the target, as the paper describes;
- the perturbed inputs were clamped to [0, 1]; cl-bench's inputs are standardized, so the clamp
  wiped out every negative pixel; only the epsilon ball bounds the perturbation now;
- features are the model's trunk output (Avalanche traced the model at every step and took the
  node before the output, the logits of cl-bench's models, as "features");
- new data kept its batch size only when batch_size_mem was unset (Avalanche gave the new-data
  batch the memory batch's size); the memory iterator is restarted with each experience (a
  stale one kept drawing from the previous memory, and a resumed run could not know where it
  was); the memory is updated through the storage policy's current API (0.6.0's warns).
"""
import copy

import torch
from avalanche.training.utils import cycle
from avalanche.benchmarks.utils.data_loader import ReplayDataLoader
from avalanche.training.plugins import RARPlugin as AvalancheRARPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, between, number_at_least, optional, positive
from strategies.replay import StoragePolicyBuffer


class RARPlugin(StoragePolicyBuffer, AvalancheRARPlugin):
    midway_iterators = ("iter_replay",)  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def before_training_exp(self, strategy, num_workers=0, shuffle=True, drop_last=False, **kwargs):
        self.iter_replay = None
        if len(self.storage_policy.buffer) == 0:
            return
        self.batch_size_mem = self.batch_size_mem or strategy.train_mb_size
        self.replay_loader = torch.utils.data.DataLoader(self.storage_policy.buffer, batch_size=self.batch_size_mem,
                                                         shuffle=shuffle)
        # A fresh shuffled pass whenever one ends, as Avalanche's plugin re-iterates; lazy: the
        # first pass draws its order at the first replayed step.
        self.iter_replay = cycle(self.replay_loader)
        strategy.dataloader = ReplayDataLoader(
            strategy.adapted_dataset, self.storage_policy.buffer, oversample_small_tasks=True,
            batch_size=strategy.train_mb_size, batch_size_mem=self.batch_size_mem, task_balanced_dataloader=False,
            num_workers=num_workers, shuffle=shuffle, drop_last=drop_last)

    def get_buffer_batch(self):
        return next(self.iter_replay)

    def before_backward(self, strategy, **kwargs):
        if len(self.storage_policy.buffer) == 0 or not self.use_adversarial_replay:
            return
        x_mem, y_mem = (v.to(strategy.device) for v in self.get_buffer_batch()[:2])
        x_adv = self.adversarial_batch(strategy, x_mem, y_mem)
        strategy.loss += self.beta_coef * strategy._criterion(strategy.model(x_adv), y_mem)

    def adversarial_batch(self, strategy, x_mem, y_mem):
        lookahead = copy.deepcopy(strategy.model)
        optimizer = torch.optim.SGD(lookahead.parameters(), lr=self.opt_lr)
        optimizer.zero_grad()
        strategy._criterion(lookahead(strategy.mb_x), strategy.mb_y).backward()
        optimizer.step()
        with torch.no_grad():
            distance = torch.cdist(lookahead.trunk(x_mem), lookahead.trunk(strategy.mb_x))
        target = nearest_other_class(distance, y_mem, strategy.mb_y, strategy.experience.classes_in_this_experience)
        x_mem = x_mem.clone().requires_grad_(True)
        grad, = torch.autograd.grad(strategy._criterion(lookahead(x_mem), target), x_mem)
        return self.mifgsm_attack(x_mem.detach(), grad)

    def mifgsm_attack(self, input, data_grad):
        # Avalanche's MI-FGSM, down the target's loss and without the [0, 1] clamp (module doc).
        perturbed, g = input, 0
        alpha = self.epsilon_fgsm / self.iter_fgsm
        for _ in range(self.iter_fgsm - 1):
            g = self.decay_factor_fgsm * g + data_grad / torch.norm(data_grad, p=1)
            perturbed = perturbed - alpha * torch.sign(g)
            if torch.norm(perturbed - input, p=float("inf")) > self.epsilon_fgsm:
                break
        return perturbed


def nearest_other_class(distance, y_mem, y_batch, current_classes):
    """For each memory sample (a row of `distance`), the label of its nearest minibatch sample
    of another class among the current experience's classes; class 0 where there is none (as
    Avalanche)."""
    current = torch.isin(y_batch, torch.as_tensor(list(current_classes), device=y_batch.device))
    allowed = (y_mem[:, None] != y_batch[None, :]) & current[None, :]
    nearest = distance.masked_fill(~allowed, float("inf")).argmin(dim=1)
    return torch.where(allowed.any(dim=1), y_batch[nearest], torch.zeros_like(y_mem))


@register_strategy("rar", rules={
    "mem_size": at_least(1), "batch_size_mem": optional(at_least(1)), "opt_lr": positive(),
    "beta_coef": number_at_least(0), "epsilon_fgsm": number_at_least(0), "iter_fgsm": at_least(2),
    "decay_factor_fgsm": between(0, 1),
}, settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if not hasattr(model, "trunk"):
        raise ConfigError(f"strategy 'rar' needs a model with a feature trunk (model.trunk); "
                          f"model '{type(model).__name__}' has none")
    rar = RARPlugin(batch_size_mem=cfg.get("batch_size_mem"), mem_size=int(cfg.mem_size), opt_lr=float(cfg.opt_lr),
                    beta_coef=float(cfg.beta_coef), decay_factor_fgsm=float(cfg.decay_factor_fgsm),
                    epsilon_fgsm=float(cfg.epsilon_fgsm), iter_fgsm=int(cfg.iter_fgsm))
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion, plugins=[rar, *plugins], **common)
