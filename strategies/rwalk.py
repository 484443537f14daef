"""Riemannian Walk (Chaudhry, Dokania, Ajanthan & Torr, "Riemannian Walk for Incremental
Learning: Understanding Forgetting and Intransigence", ECCV 2018), through Avalanche's RWalkPlugin.

A weight's penalty weight combines two importances, each scaled to [0, 1] by its maximum: the
diagonal Fisher kept as a running average over every iteration (EWC++, factor `ewc_alpha`), and
a path-integral score, the first-order loss drop along the trajectory divided by the Fisher-
weighted squared step, summed over windows of `delta_t` iterations and averaged over experiences.
Later experiences pay ewc_lambda * sum penalty * (theta - theta_end)^2.

The paper pairs RWalk with a small episodic memory in class-incremental runs; this is the
regulariser alone, as in Avalanche (compose with replay for the paper's setting). The Fisher is
the empirical one of minibatch-mean gradients, as in cl-bench's EWC.
"""
from avalanche.training.plugins import RWalkPlugin as AvalancheRWalkPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, between, number_at_least

# What outlives an experience, and what an experience accumulates (its per-window checkpoint_*
# dicts, reset at every train() call, and the last update's parameters, gradient, importance).
STATE = ("iter_importance", "exp_scores", "exp_params", "exp_importance", "exp_penalties",
         "checkpoint_loss", "checkpoint_scores", "checkpoint_params", "iter_grad", "iter_params")


class RWalkPlugin(AvalancheRWalkPlugin):
    """Avalanche's RWalk, checkpointed, and training in the mode it was in."""

    def _update_grad(self, strategy):
        # Avalanche computes this gradient in eval mode and leaves the model there, so the rest of
        # the experience would train without dropout and with frozen batch-norm statistics.
        was_training = strategy.model.training
        super()._update_grad(strategy)
        strategy.model.train(was_training)

    def after_training_exp(self, strategy, *args, **kwargs):
        super().after_training_exp(strategy, *args, **kwargs)
        # Avalanche divides the scores by their maximum. When no window of delta_t iterations
        # has ended yet (experiences shorter than delta_t), every score is 0 and that is 0/0: NaN
        # penalties and a diverged run. A score term that is 0 everywhere adds nothing.
        if max(score.data.max() for score in self.exp_scores.values()) == 0:
            max_importance = max(imp.data.max() for imp in self.exp_importance.values())
            for name, penalty in self.exp_penalties.items():
                penalty.data = self.exp_importance[name].data / max_importance

    def state_dict(self) -> dict:
        def plain(params):
            return None if params is None else {name: p.data for name, p in params.items()}

        return {key: plain(getattr(self, key, None)) for key in STATE}

    def load_state_dict(self, state: dict) -> None:
        def wrapped(params):
            if params is None:
                return None
            return {name: ParamData(name, init_tensor=t, device=t.device) for name, t in params.items()}

        for key in STATE:
            setattr(self, key, wrapped(state[key]))


@register_strategy("rwalk", rules={"ewc_lambda": number_at_least(0), "ewc_alpha": between(0, 1),
                                   "delta_t": at_least(1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    rwalk = RWalkPlugin(ewc_lambda=float(cfg.ewc_lambda), ewc_alpha=float(cfg.ewc_alpha), delta_t=int(cfg.delta_t))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[rwalk, *plugins], **common
    )
