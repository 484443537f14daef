"""Stop a run at the first non-finite training loss instead of training on NaNs to the end:
sweeps waste no compute on it, and results.json says where it happened (status "diverged")."""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin


class Diverged(RuntimeError):
    def __init__(self, experience: int, iteration: int, loss: str):
        self.where = {"experience": experience, "iteration": iteration, "loss": loss}
        super().__init__(f"non-finite training loss ({loss}) at experience {experience}, iteration {iteration} "
                         f"of that experience; lower the learning rate or the strategy's strength")


class DivergenceGuard(SupervisedPlugin):
    def before_backward(self, strategy, **kwargs):
        # One host sync per iteration: the price of never stepping on a NaN.
        if not torch.isfinite(strategy.loss).all():
            raise Diverged(strategy.clock.train_exp_counter, strategy.clock.train_exp_iterations, repr(float(strategy.loss.detach())))

    def after_training_exp(self, strategy, **kwargs):
        # The last update of an experience follows a finite loss but may itself blow up.
        if not all(torch.isfinite(p).all() for p in strategy.model.parameters()):
            raise Diverged(strategy.clock.train_exp_counter, strategy.clock.train_exp_iterations, "finite loss, "
                           "non-finite weights after the experience's last update")
