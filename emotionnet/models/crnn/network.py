"""`crnn`: a convolutional front-end, a BiLSTM over time, attention pooling.

The seed's LSTM/attention variant: convolutions find local spectral patterns,
the LSTM relates them across the utterance, and attention lets the model
weight the frames that carry the emotion instead of averaging silence in.
"""

from __future__ import annotations

import torch
from torch import nn

from emotionnet.models.layers import ConvBlock


class AttentionPooling(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim // 2), nn.Tanh(), nn.Linear(dim // 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, time, dim) -> (batch, dim)."""
        weights = torch.softmax(self.score(x), dim=1)
        return (weights * x).sum(dim=1)


class CRNN(nn.Module):
    def __init__(
        self,
        *,
        n_mels: int,
        n_classes: int,
        channels: tuple[int, ...],
        hidden: int,
        dropout: float,
    ):
        # No defaults here: the family (models/crnn/__init__.py) holds them, so a model is what its file says.
        super().__init__()
        blocks = []
        in_channels = 1
        for i, out_channels in enumerate(channels):
            # Pool frequency every block but time only in the first two, keeping ~40 ms steps.
            blocks.append(ConvBlock(in_channels, out_channels, 1, (2, 2) if i < 2 else (2, 1)))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        reduced_mels = n_mels // 2 ** len(channels)
        self.project = nn.Linear(in_channels * reduced_mels, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPooling(2 * hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, n_mels, frames) normalised log-mel -> (batch, n_classes) logits."""
        x = self.blocks(features.unsqueeze(1))  # (batch, channels, mels', time')
        x = x.flatten(1, 2).transpose(1, 2)  # (batch, time', channels * mels')
        x, _ = self.lstm(torch.relu(self.project(x)))
        return self.head(self.dropout(self.pool(x)))
