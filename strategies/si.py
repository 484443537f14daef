"""Synaptic Intelligence (Zenke, Poole & Ganguli, "Continual Learning Through Synaptic
Intelligence", ICML 2017), through Avalanche's SynapticIntelligencePlugin.

While training on an experience, each weight accumulates its contribution to the drop in loss
along the optimisation path, omega = -sum_t g_t * (theta_t+1 - theta_t) (a path integral of the
gradient). At the end of the experience its importance grows by omega / ((theta_end -
theta_start)^2 + eps), and later experiences pay lambda/2 * sum importance * (theta - theta_end)^2.

Avalanche follows the Caffe variant of Maltoni & Lomonaco (2019, "Continuous learning in
single-incremental-task scenarios") rather than the paper in one respect: each importance is
clipped from above at 0.001, hard-coded. Here the clip is `importance_clip`, off by default (the
paper): with Avalanche's clip and lambda 1, split_digits gives exactly fine-tuning's accuracies.
The penalty has the 1/2, so lambda = 2c for the paper's c. The gradient in omega is that of the
total (penalised) loss, as in Avalanche.

Fixed from Avalanche: on a CPU model its weight snapshots are views of the live weights, so SI
did nothing at all there (see `before_training_exp` below).
"""
from __future__ import annotations

import math
import warnings

from avalanche.training.plugins import SynapticIntelligencePlugin as AvalancheSIPlugin
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData

from cl_bench.registry import register_strategy
from cl_bench.rules import number_at_least, optional, positive


class SynapticIntelligencePlugin(AvalancheSIPlugin):
    """Avalanche's SI with its importance clip as a parameter, and its state checkpointed: what
    outlives an experience (anchors, importances, the running sum over experiences) and the
    experience's own path integral so far."""

    def __init__(self, si_lambda: float, eps: float, importance_clip: float | None):
        super().__init__(si_lambda=si_lambda, eps=eps)
        self.importance_clip = math.inf if importance_clip is None else importance_clip

    # Avalanche snapshots weights as `param.detach().cpu().flatten()`: on a CPU model that is a
    # view of the live weights, not a copy, so the snapshots at the start of an experience (the
    # anchor) and of a step move with the weights, every displacement is 0, the importances stay
    # 0 and SI is exactly fine-tuning (on CUDA `.cpu()` copies). The two snapshots are copied here.
    def before_training_exp(self, strategy, **kwargs):
        super().before_training_exp(strategy, **kwargs)
        _own_copies(self.ewc_data[0])

    def before_training_iteration(self, strategy, **kwargs):
        super().before_training_iteration(strategy, **kwargs)
        _own_copies(self.syn_data["old_theta"])

    def after_training_exp(self, strategy, **kwargs):
        # Avalanche's own after_training_exp passes clip_to=0.001 and c=1 as constants. Its
        # np.square on a tensor is right but NumPy 2 warns about it (__array_wrap__) every time.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="__array_wrap__ must accept context", category=DeprecationWarning)
            self.update_ewc_data(strategy.model, self.ewc_data, self.syn_data, self.importance_clip,
                                 self.excluded_parameters, 1, eps=self.eps)

    def state_dict(self) -> dict:
        anchors, importances = self.ewc_data
        return {"anchors": {n: p.data for n, p in anchors.items()},
                "importances": {n: p.data for n, p in importances.items()},
                "cum_trajectory": {n: p.data for n, p in self.syn_data["cum_trajectory"].items()},
                # the path integral of the experience so far (zeroed at each experience's start)
                "trajectory": {n: p.data for n, p in self.syn_data["trajectory"].items()}}

    def load_state_dict(self, state: dict) -> None:
        # Avalanche keeps these flat on the CPU and creates the per-iteration buffers only for
        # parameters it has not seen, so all of them are rebuilt here.
        self.ewc_data = ({}, {})
        self.syn_data = {key: {} for key in self.syn_data}
        for name, anchor in state["anchors"].items():
            self.ewc_data[0][name] = ParamData(name, init_tensor=anchor.cpu())
            self.ewc_data[1][name] = ParamData(f"imp_{name}", init_tensor=state["importances"][name].cpu())
            for key in self.syn_data:
                self.syn_data[key][name] = ParamData(f"{key}_{name}", anchor.shape)
            self.syn_data["cum_trajectory"][name].data = state["cum_trajectory"][name].cpu()
            self.syn_data["trajectory"][name].data = state["trajectory"][name].cpu()


def _own_copies(snapshot: dict) -> None:
    for param_data in snapshot.values():
        param_data.data = param_data.data.clone()


@register_strategy("si", rules={"si_lambda": number_at_least(0), "eps": positive(),
                                "importance_clip": optional(positive())}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    clip = cfg.get("importance_clip")
    si = SynapticIntelligencePlugin(si_lambda=float(cfg.si_lambda), eps=float(cfg.eps),
                                    importance_clip=None if clip is None else float(clip))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[si, *plugins], **common
    )
