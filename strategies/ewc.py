"""Elastic weight consolidation, separate (one penalty per past task) or online (one decayed
penalty; Schwarz et al. 2018).

Uses Avalanche 0.6.0's EWCPlugin, whose conventions set what `ewc_lambda` means here:
penalty = lambda * sum_i F_i (theta_i - theta*_i)^2 (no 1/2), and F is the empirical minibatch
Fisher: squared gradients of minibatch-mean losses on the true labels, averaged over batches.
That F is about batch-size times smaller than a per-sample Fisher, so lambdas from papers that
use the per-sample Fisher do not transfer one to one.
"""
from collections import defaultdict

from avalanche.training.plugins import EWCPlugin as AvalancheEWCPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData

from cl_bench.registry import register_strategy
from cl_bench.rules import between, number_at_least, one_of

MODES = ("separate", "online")


class EWCPlugin(AvalancheEWCPlugin):
    """Avalanche's EWC, with its anchors and importances checkpointed as tensors."""

    def state_dict(self) -> dict:
        def plain(per_experience):
            return {exp: {name: p.data for name, p in params.items()} for exp, params in per_experience.items()}

        return {"saved_params": plain(self.saved_params), "importances": plain(self.importances)}

    def load_state_dict(self, state: dict) -> None:
        def wrapped(per_experience):
            out = defaultdict(dict)
            for exp, params in per_experience.items():
                out[exp] = {name: ParamData(name, init_tensor=t, device=t.device) for name, t in params.items()}
            return out

        self.saved_params = wrapped(state["saved_params"])
        self.importances = wrapped(state["importances"])


@register_strategy("ewc", rules={"mode": one_of(*MODES), "ewc_lambda": number_at_least(0), "decay_factor": between(0, 1)},
                   resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    decay = float(cfg.decay_factor) if cfg.mode == "online" else None
    ewc = EWCPlugin(ewc_lambda=float(cfg.ewc_lambda), mode=cfg.mode, decay_factor=decay)
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[ewc, *plugins], **common
    )
