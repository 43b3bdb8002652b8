"""Whisper's audio encoder in plain PyTorch, returning every layer's hidden states.

The network is OpenAI Whisper's (MIT): two convolutions (the second halves the
frame rate to 50 per second), sinusoid-initialised positions, pre-norm
transformer blocks. It takes any number of frames up to 30 s (no padding to
30 s), so a 3 s clip costs a tenth of a padded one. Emotion sits mostly in the
middle layers, so `forward` returns all of them: the input to the first block,
then each block's output, the last after the final layer norm.

On a CPU with native bfloat16 (AMX or AVX-512 BF16) the blocks' matrix
products may run in bfloat16 (`bfloat16_matmuls`): 1.6x faster for a 3 s
window, the same answer on 99.5 % of validation clips (docs/benchmarks.md).
The convolutions and the residual stream stay float32; that is what keeps the
answers close (the whole encoder in bfloat16 agreed on 93.5 % only).
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

N_MELS = 80
FRAMES_PER_SECOND = 100  # mel frames (hop 160 at 16 kHz)
ENCODER_FRAMES_PER_SECOND = FRAMES_PER_SECOND // 2  # the second convolution's stride
MAX_MEL_FRAMES = 3000  # 30 s: the positional table's 1500 rows


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)  # the key bias is zero in Whisper; kept as CTranslate2 stores it
        self.out = nn.Linear(width, width)
        self.mlp_ln = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, frames, width = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(batch, frames, 3, self.heads, width // self.heads).unbind(2)
        attended = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                  attn_mask=mask)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, frames, width))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    def __init__(self, width: int = 512, layers: int = 6, heads: int = 8, positions: int = 1500):
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, width, 3, padding=1)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(positions, width), persistent=True)
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.ln_post = nn.LayerNorm(width)
        self.bfloat16_matmuls = False  # set by `encoder_for` for inference; the encoder cache stays float32

    @property
    def n_states(self) -> int:
        """Hidden states per frame that `forward` returns (the blocks' input plus each block's output)."""
        return len(self.blocks) + 1

    def forward(self, mel: torch.Tensor, lengths: torch.Tensor | None = None, layers: int | None = None,
                bfloat16_matmuls: bool | None = None) -> list[torch.Tensor]:
        """Hidden states, each (batch, mel_frames / 2, width) float32, of the first `layers` blocks (default all).

        `lengths` (mel frames per item) masks the padding of a batch of unequal clips.
        `bfloat16_matmuls` overrides the encoder's setting for this call.
        """
        if bfloat16_matmuls is None:
            bfloat16_matmuls = self.bfloat16_matmuls
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positions[: x.shape[1]].to(x.dtype)
        mask = None
        if lengths is not None:
            valid = torch.arange(x.shape[1])[None, :] < encoder_frames(lengths)[:, None]
            mask = valid[:, None, None, :]
        states = [x]
        blocks = self.blocks[: layers if layers is not None else len(self.blocks)]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16_matmuls):
            for i, block in enumerate(blocks):
                x = block(x, mask)  # float32 + a bfloat16 product stays float32
                states.append(self.ln_post(x) if i == len(self.blocks) - 1 else x)
        return [state.float() for state in states]

    @classmethod
    def from_ctranslate2(cls, tensors: dict[str, np.ndarray]) -> WhisperEncoder:
        """The encoder built from CTranslate2's tensor names (see weights.py), in float32."""
        layers = 1 + max(int(m[1]) for k in tensors if (m := re.match(r"encoder/layer_(\d+)/", k)))
        heads = int(np.asarray(tensors.get("encoder/num_heads", 8)).item())
        positions, width = tensors["encoder/position_encodings/encodings"].shape
        with torch.device("meta"):  # no random initialisation of 20 M weights that are replaced at once (0.1 s)
            encoder = cls(width, layers, heads, positions)
        t = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}  # own, writable copies
        state = {
            "conv1.weight": t["encoder/conv1/weight"], "conv1.bias": t["encoder/conv1/bias"],
            "conv2.weight": t["encoder/conv2/weight"], "conv2.bias": t["encoder/conv2/bias"],
            "positions": t["encoder/position_encodings/encodings"],
            "ln_post.weight": t["encoder/layer_norm/gamma"], "ln_post.bias": t["encoder/layer_norm/beta"],
        }
        for i in range(layers):
            ct = f"encoder/layer_{i}/"
            state |= {
                f"blocks.{i}.attn_ln.weight": t[ct + "self_attention/layer_norm/gamma"],
                f"blocks.{i}.attn_ln.bias": t[ct + "self_attention/layer_norm/beta"],
                f"blocks.{i}.qkv.weight": t[ct + "self_attention/linear_0/weight"],
                f"blocks.{i}.qkv.bias": t[ct + "self_attention/linear_0/bias"],
                f"blocks.{i}.out.weight": t[ct + "self_attention/linear_1/weight"],
                f"blocks.{i}.out.bias": t[ct + "self_attention/linear_1/bias"],
                f"blocks.{i}.mlp_ln.weight": t[ct + "ffn/layer_norm/gamma"],
                f"blocks.{i}.mlp_ln.bias": t[ct + "ffn/layer_norm/beta"],
                f"blocks.{i}.mlp.0.weight": t[ct + "ffn/linear_0/weight"],
                f"blocks.{i}.mlp.0.bias": t[ct + "ffn/linear_0/bias"],
                f"blocks.{i}.mlp.2.weight": t[ct + "ffn/linear_1/weight"],
                f"blocks.{i}.mlp.2.bias": t[ct + "ffn/linear_1/bias"],
            }
        encoder.load_state_dict(state, strict=True, assign=True)
        return encoder.eval()


def encoder_frames(mel_frames: torch.Tensor | int) -> torch.Tensor | int:
    """Encoder frames for `mel_frames` mel frames (the stride-2 convolution with padding 1)."""
    return (mel_frames + 1) // 2
