"""Training from scratch on each experience (Avalanche's FromScratchTraining, through its
FromScratchTrainingPlugin): a reference point, not a continual-learning method. Before every
experience the model is put back to its initial weights and the optimizer state is cleared, so
each experience is learned alone: what remains of earlier ones is only chance.

Deviation from Avalanche: it restores the parameters only, so batch-norm running statistics
would carry over from the previous experience; here the whole state dict (buffers included) is
restored, which is what "from scratch" means.
"""
from collections import defaultdict

from avalanche.training.plugins import FromScratchTrainingPlugin as AvalancheFromScratchPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import Rule


class FromScratchTrainingPlugin(AvalancheFromScratchPlugin):
    """Avalanche's plugin, resetting buffers too; the initial weights are checkpointed (a
    resumed run's model already holds trained weights when training starts again)."""

    def before_training_exp(self, strategy, *args, **kwargs):
        strategy.model.load_state_dict(self.initial_weights)
        if self.reset_optimizer:
            # cl-bench's models keep one set of parameters, so this is all Avalanche's
            # reset_optimizer does for them; that function is deprecated and warns at every call.
            strategy.optimizer.state = defaultdict(dict)

    def state_dict(self) -> dict:
        return {"initial_weights": self.initial_weights}

    def load_state_dict(self, state: dict) -> None:
        self.initial_weights = state["initial_weights"]


@register_strategy("from_scratch", rules={"reset_optimizer": Rule(lambda v: isinstance(v, bool), "true or false")}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    scratch = FromScratchTrainingPlugin(reset_optimizer=bool(cfg.reset_optimizer))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[scratch, *plugins], **common
    )
