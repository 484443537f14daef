"""GDumb (Prabhu, Torr & Dokania, "GDumb: A Simple Approach that Questions Our Progress in
Continual Learning", ECCV 2020), through Avalanche's GDumbPlugin.

GDumb keeps a class-balanced memory of at most `mem_size` samples and, at every experience,
trains the model from its initial weights on that memory alone: the experience's data only reach
the learner through the memory. The memory is Avalanche's ClassBalancedBuffer (mem_size split
equally over the classes seen so far, a reservoir per class), updated with the new experience
before training on it.

Deviations from the paper, as in Avalanche: the per-class reservoir keeps a uniform sample of
each class where the paper's greedy sampler keeps its first samples (evicting at random from the
largest class only when a new class needs room); no logit masking to the seen classes at test time,
and the run's optimizer, epochs and batch size instead of the paper's SGD with warm restarts
and cutmix. Classes are the labels the scenario gives: in a task-incremental run, where every
task numbers its classes from 0, the memory balances over those numbers, each holding a random
sample of that label across the tasks.
Deviations from Avalanche's plugin, which would not run correctly here: the reset loads the
initial weights into the model in place instead of handing the strategy a copy (cl-bench
evaluates, saves and checkpoints the model it built, which would otherwise stay untrained), and
clears the optimizer state, as Avalanche's fresh parameters implicitly did; the buffer is
updated through the storage policy's current API (the deprecated `update` warns every experience).
"""
from avalanche.training.plugins import GDumbPlugin as AvalancheGDumbPlugin
from avalanche.training.templates import SupervisedTemplate

from cl_bench.registry import register_strategy
from cl_bench.rules import at_least
from strategies.replay import buffer_state, load_buffer_state


class GDumbPlugin(AvalancheGDumbPlugin):
    """Avalanche's GDumb, resetting the model in place; its initial weights and class-balanced
    memory are checkpointed as tensors."""

    def __init__(self, mem_size: int):
        super().__init__(mem_size=mem_size)
        self.initial_weights = None

    def before_train_dataset_adaptation(self, strategy, **kwargs):
        model = strategy.model
        if self.initial_weights is None:
            self.initial_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return
        model.load_state_dict(self.initial_weights)
        strategy.optimizer.state.clear()  # from scratch: no momentum from the last experience

    def before_eval_dataset_adaptation(self, strategy, **kwargs):
        pass  # Avalanche adapts its copy of the initial model here; cl-bench's models are static

    def after_train_dataset_adaptation(self, strategy, **kwargs):
        self.storage_policy.post_adapt(strategy, strategy.experience)
        strategy.adapted_dataset = self.storage_policy.buffer

    def state_dict(self) -> dict:
        return {"initial_weights": self.initial_weights, "memory": buffer_state(self.storage_policy)}

    def load_state_dict(self, state: dict) -> None:
        self.initial_weights = state["initial_weights"]
        load_buffer_state(self.storage_policy, state["memory"])


@register_strategy("gdumb", rules={"mem_size": at_least(1)}, resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SupervisedTemplate:
    gdumb = GDumbPlugin(mem_size=int(cfg.mem_size))
    return SupervisedTemplate(
        model=model, optimizer=optimizer, criterion=criterion, plugins=[gdumb, *plugins], **common
    )
