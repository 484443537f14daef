"""Elastic weight consolidation, separate (one penalty per past task) or online (one decayed
penalty; Schwarz et al. 2018).

Uses Avalanche 0.6.0's EWCPlugin, whose conventions set what `ewc_lambda` means here:
penalty = lambda * sum_i F_i (theta_i - theta*_i)^2 (no 1/2), and F is the empirical minibatch
Fisher: squared gradients of minibatch-mean losses on the true labels, averaged over batches.
That F is about batch-size times smaller than a per-sample Fisher, so lambdas from papers that
use the per-sample Fisher do not transfer one to one.
"""
from avalanche.training.plugins import EWCPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy

MODES = ("separate", "online")


@register_strategy("ewc")
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    if cfg.mode not in MODES:
        raise ValueError(f"strategy.mode must be one of {', '.join(MODES)}, got '{cfg.mode}'")
    if float(cfg.ewc_lambda) < 0:
        raise ValueError(f"strategy.ewc_lambda must be >= 0, got {cfg.ewc_lambda}")
    decay = float(cfg.decay_factor) if cfg.mode == "online" else None
    ewc = EWCPlugin(ewc_lambda=float(cfg.ewc_lambda), mode=cfg.mode, decay_factor=decay)
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[ewc, *plugins], **common
    )
