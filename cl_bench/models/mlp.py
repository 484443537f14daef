"""Multi-layer perceptron: flatten, hidden layers (ReLU or tanh units, optional dropout), head(s)."""
from __future__ import annotations

import math

from torch import nn

from cl_bench.models.heads import classifier
from cl_bench.registry import register_model
from cl_bench.rules import at_least, between, each, one_of

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


@register_model("mlp", rules={"hidden_sizes": each(at_least(1), "integers >= 1"),
                             "dropout": between(0, 1, high_open=True), "activation": one_of(*ACTIVATIONS)})
def build(cfg, n_classes: int, input_shape, n_heads: int | None = None) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for hidden in cfg.hidden_sizes:
        layers += [nn.Linear(width, int(hidden)), ACTIVATIONS[cfg.get("activation", "relu")]()]
        if cfg.get("dropout", 0.0):
            layers.append(nn.Dropout(float(cfg.dropout)))
        width = int(hidden)
    return classifier(nn.Sequential(*layers), width, n_classes, n_heads)
