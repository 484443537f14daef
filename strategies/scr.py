"""Supervised Contrastive Replay (Mai, Li, Kim, Sanner; CVPR Workshops 2021), on Avalanche's SCR
strategy.

The feature trunk is trained with the supervised contrastive loss on each minibatch joined with
a class-balanced memory batch (same-class samples are pulled together, others pushed apart, on
the unit sphere), and classification is nearest class mean: after each experience the class
means of the memory's normalized features are the classifier. As in Avalanche: no review trick,
and the second view is the identity (Avalanche's default augmentation; the paper's image
augmentations do not apply to cl-bench's flat or 8x8 inputs).

How it sits on cl-bench's model (trunk + head): the strategy trains Avalanche's SCRModel made of
the model's trunk and, as projection, its own head followed by L2 normalization (the loss is
defined on unit vectors; Avalanche leaves the projection unnormalized); the model the run
evaluates keeps the trunk and gets the NCM classifier as its head.

Fixes to Avalanche's NCM classifier (each changes predictions, not only numbers):
- a class with no mean yet was a zero vector, i.e. a real point at distance 1 from every
  normalized feature, so it won over any seen class whose mean was less than 60 degrees away;
  unseen classes now score below every seen one;
- it failed before the first experience's end (no means at all), which continual evaluation
  calls; it then predicts class 0, as a model with no information;
- a class's new mean was averaged half-and-half with its mean under the previous, outdated
  encoder; it is replaced, as the paper computes the means from the memory with the current
  encoder. The means are a buffer of fixed shape (checkpointed with the model).
The training memory is cl-bench's ReplayPlugin (Avalanche's own warns at every experience).
"""
import torch
from avalanche.models import NCMClassifier, SCRModel
from avalanche.training.plugins.cope import L2Normalization
from avalanche.training.storage_policy import ClassBalancedBuffer
from avalanche.training.supervised import SCR as AvalancheSCR
from torch import nn

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, positive
from strategies.replay import ReplayPlugin

UNSEEN_SCORE = -4.0  # unit vectors are at most 2 apart: below every seen class, and finite for a loss


class SeenClassNCM(NCMClassifier):
    """Nearest class mean over the classes that have a mean (see the module doc)."""

    def __init__(self, n_classes: int, feature_size: int):
        super().__init__(normalize=False)
        self.class_means = torch.zeros(n_classes, feature_size)
        self.max_class = n_classes - 1

    def forward(self, x):
        # Avalanche's distance, with gradients: add-ons may take a loss on these scores.
        scores = -torch.cdist(x, self.class_means.to(x.device))
        unseen = (self.class_means == 0).all(dim=1).to(x.device)
        return scores.masked_fill(unseen, UNSEEN_SCORE)

    def update_class_means_dict(self, class_means_dict, momentum: float = 1.0):
        super().update_class_means_dict(class_means_dict, momentum)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.class_means_dict = {c: m.clone() for c, m in enumerate(self.class_means) if (m != 0).any()}


class SCR(AvalancheSCR):
    def __init__(self, *, criterion, mem_size: int, batch_size_mem: int, **kwargs):
        super().__init__(mem_size=mem_size, batch_size_mem=batch_size_mem, **kwargs)
        # cl-bench's ReplayPlugin in place of Avalanche's: same memory, checkpointed, no warning.
        replay = ReplayPlugin(mem_size=mem_size, batch_size=self.train_mb_size, batch_size_mem=batch_size_mem,
                              storage_policy=ClassBalancedBuffer(max_size=mem_size))
        self.plugins[self.plugins.index(self.replay_plugin)] = self.replay_plugin = replay
        # Add-ons that take a loss on the model's outputs get the run's criterion; training uses SCR's.
        self._criterion = criterion


@register_strategy("scr", rules={"mem_size": at_least(1), "batch_size_mem": at_least(1), "temperature": positive()},
                   settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> SCR:
    head = getattr(model, "head", None)
    if not hasattr(model, "trunk") or not isinstance(head, nn.Linear):
        raise ConfigError(f"strategy 'scr' needs a single-head model (trunk + linear head); "
                          f"model '{type(model).__name__}' is not one")
    ncm = SeenClassNCM(head.out_features, head.in_features)
    trained = SCRModel(feature_extractor=model.trunk, projection=nn.Sequential(head, L2Normalization()))
    trained.ncm = trained.eval_classifier = ncm
    model.head = nn.Sequential(L2Normalization(), ncm)  # what the run evaluates: trunk, normalize, nearest class mean
    return SCR(model=trained, optimizer=optimizer, criterion=criterion, plugins=list(plugins),
               mem_size=int(cfg.mem_size), batch_size_mem=int(cfg.batch_size_mem),
               temperature=float(cfg.temperature), **common)
