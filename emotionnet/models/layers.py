"""Building blocks that more than one family's network uses."""

from __future__ import annotations

from torch import nn


class ConvBlock(nn.Sequential):
    def __init__(
        self, in_channels: int, out_channels: int, convs: int, pool: tuple[int, int], batch_norm: bool = True
    ):
        layers: list[nn.Module] = []
        for i in range(convs):
            conv = nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=not batch_norm)
            layers += [conv, nn.BatchNorm2d(out_channels)] if batch_norm else [conv]
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.MaxPool2d(pool))
        super().__init__(*layers)
