"""One progress bar per experience (iterations, with the epoch and loss), on stderr, and only when
stderr is a terminal: logs, CI and sweeps launched into files stay free of bar noise."""
from __future__ import annotations

import sys

from avalanche.training.plugins import SupervisedPlugin
from tqdm import tqdm


class ProgressBar(SupervisedPlugin):
    def __init__(self, n_experiences: int, enabled: bool | None = None):
        super().__init__()
        self.n_experiences = n_experiences
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar = None
        self.experience = 0

    def before_training_exp(self, strategy, **kwargs):
        if self.enabled:
            self.bar = tqdm(desc=f"experience {self.experience + 1}/{self.n_experiences}", unit="it",
                            leave=False, file=sys.stderr, dynamic_ncols=True)

    def before_training_epoch(self, strategy, **kwargs):
        if self.bar is not None:
            self.bar.total = strategy.train_epochs * len(strategy.dataloader)
            self.bar.set_postfix(epoch=f"{strategy.clock.train_exp_epochs + 1}/{strategy.train_epochs}")

    def after_training_iteration(self, strategy, **kwargs):
        if self.bar is not None:
            self.bar.update()
            if self.bar.n % 20 == 0:  # reading the loss syncs with the device: not every step
                self.bar.set_postfix(epoch=f"{strategy.clock.train_exp_epochs + 1}/{strategy.train_epochs}",
                                     loss=f"{float(strategy.loss.detach()):.3f}")

    def after_training_exp(self, strategy, **kwargs):
        self.experience += 1
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def state_dict(self) -> dict:
        return {"experience": self.experience}

    def load_state_dict(self, state: dict) -> None:
        self.experience = state["experience"]
