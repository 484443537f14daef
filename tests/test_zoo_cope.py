"""CoPE's mechanisms: the PPP loss is its formula, prototypes evolve by their momentum rule after
every update, and classification never picks a class not trained on."""
import math

import pytest
import torch
from torch.nn.functional import normalize

from strategies.cope import PrototypeClassifier, ppp_loss


def ppp_by_the_formula(z, y, prototypes, T):
    """The docstring's sums, one instance and one anchor at a time."""
    def p(anchor, x, c):  # P_anchor(c | x), competing against the prototypes of classes != c
        rest = sum(math.exp(float(prototypes[k] @ x) / T) for k in range(len(prototypes)) if k != c)
        e = math.exp(float(anchor @ x) / T)
        return e / (e + rest)

    total = 0.0
    for c in sorted(set(y.tolist())):
        members = [i for i in range(len(y)) if y[i] == c]
        for i in members:
            anchors = [z[j] for j in members if j != i] + [prototypes[c]]
            total -= math.log(sum(p(a, z[i], c) for a in anchors) / len(members))
        for j in (j for j in range(len(y)) if y[j] != c):
            for i in members:
                total -= math.log(1 - (p(z[i], z[j], c) + p(prototypes[c], z[j], c)) / 2)
    return total / len(y)


def test_ppp_loss_is_its_formula():
    g = torch.Generator().manual_seed(0)
    prototypes = normalize(torch.randn(6, 5, generator=g), dim=1)
    z = normalize(torch.randn(12, 5, generator=g), dim=1)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 5, 0])
    assert float(ppp_loss(z, y, prototypes, 0.5)) == pytest.approx(ppp_by_the_formula(z, y, prototypes, 0.5), rel=1e-5)


def test_prototypes_move_by_momentum_towards_the_batch_mean():
    classifier = PrototypeClassifier(4, 3, torch.Generator().manual_seed(0))
    before = classifier.prototypes.clone()
    z = normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), dim=1)
    y = torch.tensor([2, 2, 0])
    classifier.evolve(z, y, alpha=0.9)
    mean2 = normalize(z[:2].mean(0), dim=0)
    assert torch.allclose(classifier.prototypes[2], normalize(0.9 * before[2] + 0.1 * mean2, dim=0), atol=1e-6)
    assert torch.allclose(classifier.prototypes[0], normalize(0.9 * before[0] + 0.1 * z[2], dim=0), atol=1e-6)
    assert torch.equal(classifier.prototypes[[1, 3]], before[[1, 3]])  # classes not in the batch stay
    assert classifier.seen.tolist() == [True, False, True, False]


def test_only_classes_trained_on_are_predicted():
    classifier = PrototypeClassifier(4, 3, torch.Generator().manual_seed(0))
    classifier.evolve(normalize(torch.randn(6, 3), dim=1), torch.tensor([1, 1, 3, 3, 3, 1]), alpha=0.5)
    # inputs that sit exactly on the unseen classes' prototypes still go to a seen class
    predicted = classifier(classifier.prototypes[[0, 2]]).argmax(1)
    assert set(predicted.tolist()) <= {1, 3}
