"""`cnn`: convolution blocks over the log-mel image, then a pooled linear head.

The seed design (conv + ReLU blocks, pooling, a fully connected head) with
what makes it generalise: batch norm, dropout and global pooling, which also
frees the model from a fixed input length. `batch_norm=False` gives the plain
conv (with bias) + ReLU + max-pool blocks of the seed design, which
benchmarks/accuracy.py trains as the reference point.
"""

from __future__ import annotations

import torch
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


class CNN(nn.Module):
    def __init__(
        self,
        *,
        n_mels: int,
        n_classes: int,
        channels: tuple[int, ...],
        convs_per_block: int,
        dropout: float,
        batch_norm: bool,  # False: the plain conv + ReLU + pool blocks of the seed design
    ):
        # No defaults here: models/spec.py holds them, so a model is what its file says.
        super().__init__()
        blocks = []
        in_channels = 1
        for out_channels in channels:
            blocks.append(ConvBlock(in_channels, out_channels, convs_per_block, (2, 2), batch_norm))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        # Mean and max over time: the mean hears the whole utterance, the max its peaks.
        self.head = nn.Linear(2 * in_channels, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) normalised log-mel -> (batch, n_classes) logits."""
        x = self.blocks(features.unsqueeze(1))
        x = x.mean(dim=2)  # over frequency
        x = torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)
        return self.head(self.dropout(x))
