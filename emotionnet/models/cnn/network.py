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

from emotionnet.models.layers import ConvBlock


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
        # No defaults here: the family (models/cnn/__init__.py) holds them, so a model is what its file says.
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
