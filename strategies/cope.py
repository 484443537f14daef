"""Continual Prototype Evolution (De Lange & Tuytelaars, "Continual Prototype Evolution:
Learning Online from Non-Stationary Data Streams", ICCV 2021, arXiv 2009.00919).

The network maps inputs to unit vectors (an embedding of `p_size` dimensions); every class has a
prototype on the same sphere, and classification is the nearest prototype (largest dot
product). Training minimizes the pseudo-prototypical proxy (PPP) loss on each minibatch joined
with an equally large class-balanced memory batch: an instance x of class c is attracted to its
prototype p_c and to the other instances of c in the batch (the pseudo-prototypes), and
repelled from the prototype and pseudo-prototypes of every other class, all through softmaxes at
temperature T over dot products. After every update each class's prototype moves towards the
normalized mean of its embeddings in the batch: p_c <- normalize(alpha p_c + (1 - alpha) mean).

Why not Avalanche's CoPEPlugin as is: it moves a prototype once per experience, which is once
per minibatch in the data-incremental stream it was written for (continual-learning-baselines
cuts Split-MNIST into experiences of 10 samples). On a stream whose experience is a whole task,
prototypes then stay at their random initialization through the task (alpha 0.99 moves them 1%
at its end), so the embeddings have nothing to evolve with. Here prototypes move after every
update, as in the paper, whatever an experience holds. The memory is updated at experience
ends (cl-bench's ReplayPlugin, class-balanced); the paper's per-batch reservoir is the online
variant (`online_replay.py` has one). Prototypes of classes not trained on yet exist from the
start, as in Avalanche (random unit vectors, seeded), and serve as the loss's negatives, but
evaluation chooses only among classes seen in training.
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import SupervisedPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer
from avalanche.training.templates import SupervisedTemplate
from torch import nn
from torch.nn.functional import normalize

from cl_bench.errors import ConfigError
from cl_bench.registry import register_strategy
from cl_bench.rules import at_least, between, positive
from strategies.replay import ReplayPlugin


class PrototypeClassifier(nn.Module):
    """Unit-vector embedding -> dot product with every class prototype; unseen classes never win.
    Prototypes and the seen mask are buffers, so they are checkpointed with the model."""

    def __init__(self, n_classes: int, p_size: int, generator: torch.Generator):
        super().__init__()
        self.register_buffer("prototypes", normalize(torch.rand(n_classes, p_size, generator=generator) * 2 - 1, dim=1))
        self.register_buffer("seen", torch.zeros(n_classes, dtype=torch.bool))

    def forward(self, z):
        # Dot products of unit vectors lie in [-1, 1]: -2 is below every seen class.
        return (z @ self.prototypes.t()).masked_fill(~self.seen, -2.0)

    @torch.no_grad()
    def evolve(self, z: torch.Tensor, y: torch.Tensor, alpha: float) -> None:
        """Move each class's prototype towards the normalized mean of its embeddings in z."""
        n_classes = len(self.prototypes)
        sums = torch.zeros_like(self.prototypes).index_add_(0, y, z.detach().to(self.prototypes.dtype))
        present = torch.zeros(n_classes, dtype=torch.bool, device=y.device).index_fill_(0, y, True)
        moved = normalize(alpha * self.prototypes + (1 - alpha) * normalize(sums, dim=1), dim=1)
        self.prototypes.copy_(torch.where(present[:, None], moved, self.prototypes))
        self.seen |= present


def ppp_loss(z: torch.Tensor, y: torch.Tensor, prototypes: torch.Tensor, temperature: float) -> torch.Tensor:
    """The PPP loss of a batch of unit embeddings z (labels y) against the class prototypes.

    For an instance i of class c, the probability that anchor a (the prototype p_c, or another
    instance j of class c) explains it is P_a(c|i) = e^{a.z_i/T} / (e^{a.z_i/T} + sum_{k != c}
    e^{p_k.z_i/T}). Attraction: log of P_a(c|i) averaged over the |B_c| anchors (p_c and the
    |B_c| - 1 other instances). Repulsion, for an instance j of another class: log(1 - (P_i(c|j) +
    P_{p_c}(c|j)) / 2) for every instance i of c as anchor, with the same normalization over the
    prototypes of the classes other than c. Anchors and prototypes carry no gradient; the loss is
    the negative sum of both terms over every class in the batch, divided by the batch size.
    """
    with torch.autocast(z.device.type, enabled=False):  # log(1 - p) near p = 1 needs fp32, under bf16 too
        return _ppp_loss(z.float(), y, prototypes.float(), temperature)


def _ppp_loss(z, y, prototypes, temperature):
    logits_to_prototypes = z @ prototypes.t() / temperature  # (batch, classes)
    anchors = z.detach()
    loss = z.new_zeros(())
    for c in torch.unique(y).tolist():
        same = y == c
        z_c, z_k = z[same], z[~same]
        others = torch.ones(len(prototypes), dtype=torch.bool, device=z.device)
        others[c] = False
        # log sum_{k != c} e^{p_k.z/T} per instance: the competing classes' mass
        rest_c = torch.logsumexp(logits_to_prototypes[same][:, others], dim=1)  # (|B_c|,)
        anchor_logits = torch.cat([anchors[same], prototypes[c:c + 1]]) @ z_c.t() / temperature  # (|B_c| + 1, |B_c|)
        p_attract = torch.sigmoid(anchor_logits - rest_c)  # e^a / (e^a + e^rest)
        p_attract = p_attract * (1 - torch.eye(len(z_c) + 1, len(z_c), device=z.device))  # no instance is its own anchor
        loss = loss - torch.log(p_attract.sum(0) / len(z_c)).sum()
        if len(z_k):
            rest_k = torch.logsumexp(logits_to_prototypes[~same][:, others], dim=1)  # (|B_k|,)
            repel_logits = torch.cat([anchors[same], prototypes[c:c + 1]]) @ z_k.t() / temperature  # (|B_c| + 1, |B_k|)
            p_repel = torch.sigmoid(repel_logits - rest_k)
            mixed = (p_repel[:-1] + p_repel[-1:]) / 2  # each pseudo-prototype with the prototype
            loss = loss - torch.log1p(-mixed).sum()
    return loss / len(z)


class UnitSphere(nn.Module):
    def forward(self, z):
        return normalize(z, dim=1)


class Embedder(nn.Module):
    """What CoPE trains: the model's trunk, then its embedding layer onto the unit sphere. The
    classifier rides along, unused by forward, so its prototypes are checkpointed with the model."""

    def __init__(self, trunk: nn.Module, embed: nn.Module, classifier: PrototypeClassifier):
        super().__init__()
        self.trunk, self.embed, self.classifier = trunk, embed, classifier

    def forward(self, x):
        return self.embed(self.trunk(x))


class PrototypeEvolution(SupervisedPlugin):
    def __init__(self, classifier: PrototypeClassifier, alpha: float):
        super().__init__()
        self.classifier, self.alpha = classifier, alpha

    def after_training_iteration(self, strategy, **kwargs):
        # The prototypes of this update's loss, then the move: each update sees the prototypes
        # its predecessors left, as in the paper's per-batch evolution.
        self.classifier.evolve(strategy.mb_output, strategy.mb_y, self.alpha)


class CoPE(SupervisedTemplate):
    def __init__(self, *, model, classifier: PrototypeClassifier, temperature: float, mem_size: int,
                 plugins, **kwargs):
        replay = ReplayPlugin(mem_size=mem_size, batch_size=kwargs["train_mb_size"], batch_size_mem=kwargs["train_mb_size"],
                              storage_policy=ClassBalancedBuffer(max_size=mem_size, adaptive_size=True))
        self.classifier = classifier
        super().__init__(model=model, plugins=[replay, *plugins], **kwargs)
        self._criterion = lambda z, y: ppp_loss(z, y, self.classifier.prototypes, temperature)


@register_strategy("cope", rules={"mem_size": at_least(1), "p_size": at_least(2), "alpha": between(0, 1, high_open=True),
                                  "temperature": positive()},
                   settings=("class_incremental", "domain_incremental"), resume_midway=True)
def build(cfg, model, optimizer, criterion, plugins=(), **common) -> CoPE:
    head = getattr(model, "head", None)
    if not hasattr(model, "trunk") or not isinstance(head, nn.Linear):
        raise ConfigError(f"strategy 'cope' needs a single-head model (trunk + linear head); "
                          f"model '{type(model).__name__}' is not one")
    embed = nn.Sequential(nn.Linear(head.in_features, int(cfg.p_size)), UnitSphere()).to(head.weight.device)
    generator = torch.Generator().manual_seed(torch.initial_seed() % 2**63)  # the run's seed
    classifier = PrototypeClassifier(head.out_features, int(cfg.p_size), generator).to(head.weight.device)
    model.head = nn.Sequential(embed, classifier)  # what the run evaluates: nearest prototype
    trained = Embedder(model.trunk, embed, classifier)
    # The optimizer trains the embedding layer, not the replaced head (a checkpoint's optimizer
    # state has the trained model's parameters, so they must match before the first experience).
    optimizer.param_groups[0]["params"] = list(trained.parameters())
    return CoPE(model=trained, classifier=classifier, temperature=float(cfg.temperature),
                mem_size=int(cfg.mem_size), optimizer=optimizer, criterion=criterion,
                plugins=[PrototypeEvolution(classifier, float(cfg.alpha)), *plugins], **common)
