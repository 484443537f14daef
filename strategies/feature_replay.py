"""Feature replay: Avalanche's FeatureReplay, which replays stored penultimate-layer features to the
output layer following the PR-ACE protocol of Magistri et al., "Elastic Feature Consolidation for
Cold Start Exemplar-free Incremental Learning", ICLR 2024 (the idea of replaying latent
activations instead of inputs: Pellegrini et al., "Latent Replay for Real-Time Continual
Learning", IROS 2020).

After each experience the features of its samples (computed by the trunk, no gradient) enter a
class-balanced memory. While later experiences train, the loss is 0.5 * masked CE on the new
batch (the whole network) + 0.5 * CE of the output layer alone over all seen classes, on a memory
batch of features and on the new batch's detached features, weighted 1 - 1/(k+1) and 1/(k+1) at
experience k. Stored features are not updated as the trunk keeps training (no drift
compensation), as in Avalanche.

Deviations from Avalanche, both because cl-bench evaluates the model it built: Avalanche swaps
the named last layer for an Identity inside the model and wraps the result, which would leave
that model computing features; here the wrapper holds the model's own trunk and head, the same
computation with the model intact. The current-batch loss is Avalanche's MaskedCrossEntropy, not
the run's plain cross-entropy, masked to the current classes by default (`current_loss_mask:
new`, PR-ACE's asymmetric loss and what Avalanche's docstring describes); Avalanche's constructor
defaults to MaskedCrossEntropy(mask="seen"), which on split_digits forgets almost like fine-tuning.
"""
import torch
from avalanche.benchmarks.utils import _taskaware_classification_subset
from avalanche.models.utils import FeatureExtractorModel
from avalanche.training.losses import MaskedCrossEntropy as AvalancheMaskedCrossEntropy
from avalanche.training.storage_policy import ReservoirSamplingBuffer
from avalanche.training.supervised import FeatureReplay as AvalancheFeatureReplay
from avalanche.training.supervised.feature_replay import FeatureDataset
from avalanche.training.utils import cycle

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, one_of
from strategies.replay import buffer_state


class MaskedCrossEntropy(AvalancheMaskedCrossEntropy):
    """Avalanche's MaskedCrossEntropy, learning the experience's classes through the same call as
    its own before_training_exp, which is marked deprecated and warns at every experience."""

    def before_training_exp(self, strategy, **kwargs):
        self._adaptation(strategy.experience.classes_in_this_experience)


class FeatureReplay(AvalancheFeatureReplay):
    """Avalanche's FeatureReplay on cl-bench's trunk + head model; its feature memory and its
    criterion's class sets are checkpointed."""
    midway_iterators = ("replay_loader",)  # iterators over the memory, fixed inside an experience (cl_bench/midway.py)

    def __init__(self, *, model, **kwargs):
        super().__init__(model=model, last_layer_name="head", **kwargs)
        model.head = self.model.train_classifier  # undo Avalanche's Identity swap (see module docstring)
        self.model = FeatureExtractorModel(model.trunk, model.head)

    def _after_training_exp(self, **kwargs):
        super()._after_training_exp(**kwargs)
        if len(self.storage_policy.buffer) < self.batch_size_mem:  # Avalanche's loader would then cycle forever
            raise ConfigError(f"strategy.batch_size_mem ({self.batch_size_mem}) exceeds the "
                              f"{len(self.storage_policy.buffer)} features in memory after experience "
                              f"{self.experience.current_experience}")

    def _make_replay_loader(self) -> None:
        # As Avalanche's _after_training_exp builds it: a resumed run must draw the same batches.
        self.replay_loader = cycle(torch.utils.data.DataLoader(
            self.storage_policy.buffer, batch_size=self.batch_size_mem, shuffle=True, drop_last=True))

    def _load_memory(self, state: dict) -> None:
        # Rebuilt as Avalanche builds the memory from features (a subset of a FeatureDataset), so
        # restored and newly stored samples collate alike (cl-bench's tensor datasets give int labels).
        policy = self.storage_policy
        policy.max_size, policy.seen_classes = state["max_size"], set(state["seen_classes"])
        policy.buffer_groups = {}
        for label, group_state in state["groups"]:
            group = ReservoirSamplingBuffer(group_state["max_size"])
            group._buffer_weights = group_state["weights"].cpu()
            x, y = group_state["data"]["x"].cpu(), group_state["data"]["y"].cpu()
            group.buffer = _taskaware_classification_subset(FeatureDataset(x, y), indices=list(range(len(y))))
            policy.buffer_groups[label] = group

    def state_dict(self) -> dict:
        return {"memory": buffer_state(self.storage_policy),
                "current_classes": sorted(self._criterion.current_classes),
                "old_classes": sorted(self._criterion.old_classes),
                "has_replay": self.replay_loader is not None}

    def load_state_dict(self, state: dict) -> None:
        self._load_memory(state["memory"])
        self._criterion.current_classes = set(state["current_classes"])
        self._criterion.old_classes = set(state["old_classes"])
        self.replay_loader = None
        if state["has_replay"]:
            self._make_replay_loader()


@register_strategy("feature_replay", rules={
    "mem_size": at_least(1), "batch_size_mem": at_least(1), "current_loss_mask": one_of("seen", "new")},
    settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> FeatureReplay:
    if not (hasattr(model, "trunk") and hasattr(model, "head")):
        raise ConfigError(f"strategy 'feature_replay' needs a model with a trunk and one output head; "
                          f"{type(model).__name__} has none")
    if cfg.batch_size_mem > cfg.mem_size:  # the memory loader drops incomplete batches: it would yield none
        raise ConfigError(f"strategy.batch_size_mem must be <= strategy.mem_size ({cfg.mem_size}), "
                          f"got {cfg.batch_size_mem}")
    # The run's criterion is plain cross-entropy; the method's current-batch loss is masked.
    return FeatureReplay(model=model, optimizer=optimizer, criterion=MaskedCrossEntropy(mask=cfg.current_loss_mask),
                         mem_size=int(cfg.mem_size), batch_size_mem=int(cfg.batch_size_mem),
                         plugins=list(plugins), **common)
