"""Deep generative replay with a VAE generator: Shin, Lee, Kim & Kim, "Continual Learning with Deep
Generative Replay", NeurIPS 2017, as Avalanche's GenerativeReplay strategy implements it (a
fully-connected VAE instead of the paper's GAN).

A scholar is a solver (the classifier) and a generator. From the second experience on, every
training batch is joined by as many generated samples (`replay_size` overrides the number),
labelled by the previous solver's argmax. After each experience the generator (Avalanche's
MlpVAE, trained by its VAETraining strategy with Adam) learns the experience's data joined in
the same way by samples of its own previous copy, so it keeps covering every task seen.

Deviations from Avalanche, each because its defaults assume MNIST:
- the VAE is built at the first experience for the stream's input shape (Avalanche: 1x28x28);
- its decoder maps its sigmoid output onto the data's per-channel range, measured on the first
  experience (Avalanche maps it with MNIST's normalisation constants, which for any other
  dataset puts generated pixels outside the data's range; on MNIST both are the same);
- the generator trains for the experience's epochs (`train.epochs` may differ per experience).
Class-incremental and domain-incremental only: generated samples carry no task label a
multi-head solver could use (Avalanche gives them the current batch's).
"""
from __future__ import annotations

import torch
from avalanche.models.generator import MlpVAE, VAE_loss
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import GenerativeReplayPlugin as AvalancheGenerativeReplayPlugin
from avalanche.training.supervised import VAETraining
from avalanche.training.templates import SupervisedTemplate
from torchvision import transforms

from cl_bench import preemption
from cl_bench.data.buffers import dataset_state
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, optional, positive, number_at_least


class SampleWithoutGrad(AvalancheGenerativeReplayPlugin):
    """Avalanche's GenerativeReplayPlugin, sampling the frozen copies without autograd. Avalanche
    records the old generator's graph in the replayed inputs: every backward then also runs
    through that copy, whose gradients nothing uses, and a second backward on the same batch
    (the refresh add-on's) fails on the freed graph. Trained weights are the same either way."""

    def before_training_iteration(self, strategy, **kwargs):
        with torch.no_grad():
            super().before_training_iteration(strategy, **kwargs)


class StopWhenPreempted(SupervisedPlugin):
    """The generator trains after the solver's last update of an experience, for as many epochs,
    without checkpoints of its own: a preemption stops it at once instead of after it."""

    def after_training_iteration(self, strategy, **kwargs):
        preemption.stop_during("the generator's training")


class GenerativeReplayPlugin(SampleWithoutGrad):
    """The solver's side of Avalanche's GenerativeReplay, which also trains the generator after
    each experience (Avalanche's TrainGeneratorAfterExpPlugin, run first as there). The generator,
    its optimizer and both replay flags are checkpointed."""

    def __init__(self, *, latent_dim: int, generator_lr: float, generator_weight_decay: float,
                 replay_size: int | None, increasing_replay_size: bool, train_mb_size: int, eval_mb_size: int,
                 device):
        super().__init__(replay_size=replay_size, increasing_replay_size=increasing_replay_size)
        self.latent_dim, self.generator_lr, self.generator_weight_decay = latent_dim, generator_lr, generator_weight_decay
        self.train_mb_size, self.eval_mb_size, self.device = train_mb_size, eval_mb_size, device
        self.shape = self.low = self.high = None

    def _build_generator(self, shape, low: torch.Tensor, high: torch.Tensor) -> None:
        from cl_bench.run import quiet_evaluator

        self.shape, self.low, self.high = list(shape), low, high
        vae = MlpVAE(tuple(shape), nhid=self.latent_dim, device=self.device).to(self.device)  # before any optimizer state
        # sigmoid output s in [0, 1] -> low + s * (high - low), per channel
        span = (high - low).clamp_min(1e-8)
        vae.decoder.invTrans = transforms.Normalize((-low / span).tolist(), (1 / span).tolist())
        # The generator replays its own previous copy's samples (Avalanche's default generator strategy).
        self.generator_replay = SampleWithoutGrad(replay_size=self.replay_size,
                                                  increasing_replay_size=self.increasing_replay_size)
        optimizer = torch.optim.Adam(vae.parameters(), lr=self.generator_lr, weight_decay=self.generator_weight_decay)
        self.generator_strategy = VAETraining(
            model=vae, optimizer=optimizer, criterion=VAE_loss, train_mb_size=self.train_mb_size,
            eval_mb_size=self.eval_mb_size, device=self.device, evaluator=quiet_evaluator(),
            plugins=[self.generator_replay, StopWhenPreempted()])
        self.generator = vae

    def before_training(self, strategy, *args, **kwargs):
        pass  # Avalanche would make the solver its own generator here, as none exists before the first experience

    def before_training_exp(self, strategy, **kwargs):
        if self.generator_strategy is None:
            x = dataset_state(strategy.experience.dataset)["x"]
            per_channel = x.transpose(0, 1).flatten(1)
            self._build_generator(x.shape[1:], per_channel.min(1).values, per_channel.max(1).values)
        super().before_training_exp(strategy, **kwargs)

    def after_training_exp(self, strategy, **kwargs):
        self.generator_strategy.train_epochs = strategy.train_epochs
        self.generator_strategy.train(strategy.experience)
        super().after_training_exp(strategy, **kwargs)

    def state_dict(self) -> dict:
        if self.generator_strategy is None:
            return {"generator": None}
        return {"generator": self.generator.state_dict(), "optimizer": self.generator_strategy.optimizer.state_dict(),
                "shape": self.shape, "low": self.low, "high": self.high,
                "untrained_solver": self.untrained_solver, "untrained_generator": self.generator_replay.untrained_solver}

    def load_state_dict(self, state: dict) -> None:
        if state["generator"] is None:
            return
        self._build_generator(state["shape"], state["low"].cpu(), state["high"].cpu())
        self.generator.load_state_dict(state["generator"])
        self.generator_strategy.optimizer.load_state_dict(state["optimizer"])
        # Avalanche clears an optimizer's state the first time a strategy trains; this one has trained.
        self.generator_strategy.optimized_param_id = dict(self.generator.named_parameters())
        self.untrained_solver = state["untrained_solver"]
        self.generator_replay.untrained_solver = state["untrained_generator"]


@register_strategy("generative_replay", rules={
    "latent_dim": at_least(1), "generator_lr": positive(), "generator_weight_decay": number_at_least(0),
    "replay_size": optional(at_least(1))},
    settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    replay = GenerativeReplayPlugin(
        latent_dim=int(cfg.latent_dim), generator_lr=float(cfg.generator_lr),
        generator_weight_decay=float(cfg.generator_weight_decay),
        replay_size=None if cfg.replay_size is None else int(cfg.replay_size),
        increasing_replay_size=bool(cfg.increasing_replay_size), train_mb_size=common["train_mb_size"],
        eval_mb_size=common["eval_mb_size"], device=common["device"])
    return SupervisedTemplate(model=model, optimizer=optimizer, criterion=criterion,
                              plugins=[replay, *plugins], **common)
