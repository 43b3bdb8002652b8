"""FaceCNN: a small VGG-style network over 48x48 grayscale face crops.

Four stages of 3x3 convolutions (one at full resolution, two at each of the
three halvings), global average pooling and one linear layer. It is sized for
the CPU: one training epoch over FER2013 is a few minutes of one core, and the
float32 weights stay under the 5 MB a shipped model file may take.
"""

from __future__ import annotations

import torch
from torch import nn

FACE_SIZE = 48  # pixels on a side, as FER2013's crops


def _conv(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class FaceCNN(nn.Module):
    """(batch, 1, 48, 48) faces scaled to [0, 1] -> (batch, n_classes) logits."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.3,
                 n_classes: int = 7) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 1
        for stage, out in enumerate(channels):
            if stage:  # the first stage runs at full resolution with one convolution, the rest after a halving
                layers.append(nn.MaxPool2d(2))
            layers += _conv(width, out)
            if stage:
                layers += _conv(out, out)
            width = out
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                        nn.Linear(width, n_classes))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        # Centre the pixels: the crops arrive in [0, 1], the convolutions learn faster around 0.
        return self.classifier(self.features((faces - 0.5) / 0.25))
