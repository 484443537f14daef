"""Learning without Forgetting (Li & Hoiem 2016): distil the previous model's temperature-softened
outputs on the new data (Avalanche's LwFPlugin). `alpha` may be one value or one per experience.

`scale_ce: true` divides the cross-entropy on experience t (0-based) by t + 1 before the
distillation term is added, as continual-learning-baselines' latest Split-MNIST LwF does
(loss = CE / (t + 1) + alpha_t * distillation); off by default (Avalanche's and the paper's loss)."""
import copy

from avalanche.training.plugins import LwFPlugin as AvalancheLwFPlugin
from avalanche.training.templates import SupervisedTemplate
from omegaconf import OmegaConf

from cl_bench.registry import register_strategy
from cl_bench.rules import number_at_least, positive, scalar_or_each


class LwFPlugin(AvalancheLwFPlugin):
    """Avalanche's LwF, checkpointed: the previous model as a state dict on a copy of the model."""

    def __init__(self, model, scale_ce: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.scale_ce = scale_ce

    def before_backward(self, strategy, **kwargs):
        if self.scale_ce:
            strategy.loss = strategy.loss / (strategy.clock.train_exp_counter + 1)
        super().before_backward(strategy, **kwargs)

    def state_dict(self) -> dict:
        lwf = self.lwf
        return {"prev_model": None if lwf.prev_model is None else lwf.prev_model.state_dict(),
                "expcount": lwf.expcount,
                "prev_classes_by_task": {t: sorted(c) for t, c in lwf.prev_classes_by_task.items()}}

    def load_state_dict(self, state: dict) -> None:
        lwf = self.lwf
        lwf.prev_model = None
        if state["prev_model"] is not None:
            lwf.prev_model = copy.deepcopy(self.model)
            lwf.prev_model.load_state_dict(state["prev_model"])
        lwf.expcount = state["expcount"]
        lwf.prev_classes_by_task.clear()
        lwf.prev_classes_by_task.update({t: set(c) for t, c in state["prev_classes_by_task"].items()})


@register_strategy("lwf", rules={"alpha": scalar_or_each(number_at_least(0)), "temperature": positive()}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    # A ListConfig alpha would break Avalanche's per-experience indexing; hand it plain Python.
    alpha = OmegaConf.to_object(cfg.alpha) if OmegaConf.is_config(cfg.alpha) else float(cfg.alpha)
    lwf = LwFPlugin(model, scale_ce=bool(cfg.get("scale_ce", False)), alpha=alpha, temperature=float(cfg.temperature))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[lwf, *plugins], **common
    )
