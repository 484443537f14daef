"""A small conv net: conv blocks (conv-BN-ReLU-maxpool), global average pool, linear head."""
from __future__ import annotations

from torch import nn

from cl_bench.models.heads import classifier
from cl_bench.registry import register_model


@register_model("convnet")
def build(cfg, n_classes: int, input_shape, n_heads: int | None = None) -> nn.Module:
    in_ch, size = input_shape[0], min(input_shape[1:])
    layers: list[nn.Module] = []
    for ch in cfg.channels:
        layers += [nn.Conv2d(in_ch, int(ch), 3, padding=1, bias=False), nn.BatchNorm2d(int(ch)), nn.ReLU()]
        # Pool only while the map is big enough: 8x8 digits would vanish after three halvings.
        if size >= 4:
            layers.append(nn.MaxPool2d(2))
            size //= 2
        in_ch = int(ch)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return classifier(nn.Sequential(*layers), in_ch, n_classes, n_heads)
