"""Learning without Forgetting (Li & Hoiem 2016): distil the previous model's temperature-softened
outputs on the new data (Avalanche's LwFPlugin). `alpha` may be one value or one per experience."""
from avalanche.training.plugins import LwFPlugin
from avalanche.training.templates import SupervisedTemplate
from omegaconf import OmegaConf

from cl_bench.registry import register_strategy


@register_strategy("lwf")
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    # A ListConfig alpha would break Avalanche's per-experience indexing; hand it plain Python.
    alpha = OmegaConf.to_object(cfg.alpha) if OmegaConf.is_config(cfg.alpha) else float(cfg.alpha)
    lwf = LwFPlugin(alpha=alpha, temperature=float(cfg.temperature))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[lwf, *plugins], **common
    )
