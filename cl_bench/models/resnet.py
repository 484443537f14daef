"""Reduced ResNet-18 (nf=20), as in GEM (Lopez-Paz & Ranzato 2017) and most CL papers since:
ResNet-18's block layout with widths nf, 2nf, 4nf, 8nf, a 3x3 stem without max-pool."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from cl_bench.models.heads import classifier
from cl_bench.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def reduced_resnet18_trunk(in_ch: int, nf: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, nf, 3, 1, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU()]
    width = nf
    for multiplier, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
        out = nf * multiplier
        layers += [BasicBlock(width, out, stride), BasicBlock(out, out, 1)]
        width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


@register_model("resnet18_reduced")
def build(cfg, n_classes: int, input_shape, n_heads: int | None = None) -> nn.Module:
    nf = int(cfg.nf)
    return classifier(reduced_resnet18_trunk(input_shape[0], nf), 8 * nf, n_classes, n_heads)
