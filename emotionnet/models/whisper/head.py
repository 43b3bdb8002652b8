"""The `whisper` architecture: a frozen Whisper-base encoder and a small EmotionNet head.

    log-mel window -> encoder (first `layers` blocks) -> every block's states
      -> averaged over CACHE_POOL frames (what the encoder cache stores) -> one of two heads:

    "stats" (StatsHead): each state's mean and standard deviation over the window,
      standardised with the training windows' statistics -> one linear layer -> logits
    "attentive" (EmotionHead): averaged further to `frame_pool` encoder frames -> each state
      layer-normalised -> learnt softmax-weighted sum over layers -> projection
      -> attentive statistics pooling (weighted mean and std over time) -> logits

The linear "stats" head generalises better to corpora it never heard (LOCO, docs/benchmarks.md);
the attentive head fits the training corpora closer and is kept for files that name it.

Only the head's weights are the model file's; the encoder's are the user's
installed Whisper weights, checked against the digest the file records
(`attach_encoder`). Until one is attached the network holds no encoder, so a
model file can be checked on the meta device without touching 80 MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from emotionnet.features import real_frames
from emotionnet.models.whisper.encoder import WhisperEncoder

CACHE_POOL = 4  # encoder frames (20 ms each) averaged before the encoder cache stores them


def pool_frames(states: torch.Tensor, frame_pool: int) -> torch.Tensor:
    """(..., frames, width) -> (..., ceil(frames / frame_pool), width), averaging neighbours."""
    shape = states.shape
    flat = states.reshape(-1, shape[-2], shape[-1]).transpose(1, 2)
    pooled = F.avg_pool1d(flat, frame_pool, frame_pool, ceil_mode=True)
    return pooled.transpose(1, 2).reshape(*shape[:-2], pooled.shape[-1], shape[-1])


def layer_statistics(states: torch.Tensor) -> torch.Tensor:
    """(batch, states, frames, width) -> (batch, states * 2 * width): each state's mean and std over time."""
    states = states.float()
    return torch.cat([states.mean(dim=-2), states.std(dim=-2, correction=0)], dim=-1).flatten(1)


def window_statistics(states: torch.Tensor, encoder_lengths: Sequence[int] | None = None) -> torch.Tensor:
    """(batch, states, encoder frames, width) -> `layer_statistics` of the CACHE_POOL-pooled frames.

    `encoder_lengths` (each window's real encoder frames) keeps padding out of the statistics: a
    window shorter than the batch's is pooled and summarised over its own frames only, so its
    answer is the one it gets alone.
    """
    if encoder_lengths is None:
        return layer_statistics(pool_frames(states, CACHE_POOL))
    return torch.cat([layer_statistics(pool_frames(states[i:i + 1, :, :n], CACHE_POOL))
                      for i, n in enumerate(encoder_lengths)])


class StatsHead(nn.Module):
    """(batch, states, frames, width) encoder states -> (batch, n_classes) logits, linear in `layer_statistics`.

    The standardisation is the training windows' (buffers, saved with the weights), so the weight
    decay that trains it treats every feature alike.
    """

    def __init__(self, n_states: int, width: int, n_classes: int):
        super().__init__()
        features = n_states * 2 * width
        self.n_states = n_states
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_scale", torch.ones(features))
        self.classify = nn.Linear(features, n_classes)

    def layer_weights(self) -> torch.Tensor:
        """Each state's share of the classifier's squared weights (the attentive head's mixing weights' analogue)."""
        per_state = self.classify.weight.detach().square().reshape(self.classify.out_features, -1,
                                                                    self.feature_mean.numel() // self.n_states)
        shares = per_state.sum(dim=(0, 2))
        return shares / shares.sum().clamp_min(1e-12)

    def standardise(self, statistics: torch.Tensor) -> torch.Tensor:
        """`layer_statistics` in the training windows' units: what the linear layer reads."""
        return (statistics - self.feature_mean) / self.feature_scale

    def classify_statistics(self, statistics: torch.Tensor) -> torch.Tensor:
        """Logits from `layer_statistics` already worked out (the encoder cache keeps a table of them)."""
        return self.classify(self.standardise(statistics))

    def context_offset(self, mean: torch.Tensor, alpha: float) -> torch.Tensor:
        """(n_classes,) what reading a window against a speaker's context takes off its logits: the
        window's standardised statistics less `alpha` x the speaker's `mean` of them, through the
        linear layer (its bias is the window's own)."""
        return alpha * (self.classify.weight @ mean)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.classify_statistics(layer_statistics(states))


class EmotionHead(nn.Module):
    """(batch, states, frames, width) encoder states -> (batch, n_classes) logits."""

    def __init__(self, n_states: int, width: int, hidden: int, attention: int, dropout: float, n_classes: int,
                 pool: int = 1, center_time: bool = False):
        super().__init__()
        self.pool = pool  # cached frames averaged into one before anything else
        # Subtracting each state's mean over the window removes what is constant in it (a voice's and a
        # room's offset), so what varies within the window, and its spread, carry the emotion.
        self.center_time = center_time
        self.layer_logits = nn.Parameter(torch.zeros(n_states))
        self.project = nn.Linear(width, hidden)
        self.attention = nn.Sequential(nn.Linear(hidden, attention), nn.Tanh(), nn.Linear(attention, 1))
        self.dropout = nn.Dropout(dropout)
        self.classify = nn.Linear(2 * hidden, n_classes)

    def layer_weights(self) -> torch.Tensor:
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        states = pool_frames(states.float(), self.pool) if self.pool > 1 else states.float()
        if self.center_time:
            states = states - states.mean(dim=-2, keepdim=True)
        # Later layers run at larger scales: normalise each before mixing, so the weights mean shares.
        states = F.layer_norm(states, states.shape[-1:])
        mixed = torch.einsum("bltd,l->btd", states, self.layer_weights())
        hidden = self.dropout(F.gelu(self.project(mixed)))
        weights = torch.softmax(self.attention(hidden), dim=1)
        mean = (weights * hidden).sum(dim=1)
        std = ((weights * hidden.square()).sum(dim=1) - mean.square()).clamp(min=1e-6).sqrt()
        return self.classify(self.dropout(torch.cat([mean, std], dim=-1)))


def build_head(kind: str, n_states: int, width: int, n_classes: int, *, hidden: int, attention: int,
               dropout: float, frame_pool: int, center_time: bool) -> nn.Module:
    """The head `kind` names ("stats" or "attentive"); the attentive head's sizes are ignored by "stats"."""
    if kind == "stats":
        return StatsHead(n_states, width, n_classes)
    if kind == "attentive":
        return EmotionHead(n_states, width, hidden, attention, dropout, n_classes, frame_pool // CACHE_POOL,
                           center_time)
    raise ValueError(f"unknown whisper head {kind!r}; choose stats or attentive")


class WhisperEmotionNet(nn.Module):
    """(windows, 80, frames) Whisper log-mel windows -> (windows, n_classes) logits.

    Speaker context (a "stats" head with `context_alpha` > 0): a window is read against its
    speaker's other audio by taking `context_alpha` x the speaker's mean standardised statistics
    (`context_summary`, averaged over the speaker's windows) off its own, so what a voice holds in
    every clip is not read as emotion (docs/results/whisper-context.md). Without a context, or at
    alpha 0 (files written before it existed), every window is its own context.
    """

    def __init__(self, *, layers: int, hidden: int, attention: int, dropout: float, frame_pool: int, width: int,
                 center_time: bool, n_classes: int, n_mels: int, encoder_digest: str, encoder: str, head: str,
                 context_alpha: float = 0.0):
        super().__init__()
        if frame_pool % CACHE_POOL:
            raise ValueError(f"frame_pool must be a multiple of {CACHE_POOL}, got {frame_pool}")
        self.layers, self.encoder_digest = layers, encoder_digest
        self.context_alpha = context_alpha
        self.head = build_head(head, layers + 1, width, n_classes, hidden=hidden, attention=attention,
                               dropout=dropout, frame_pool=frame_pool, center_time=center_time)
        self._encoder: list[WhisperEncoder] = []  # a list keeps the frozen encoder out of state_dict

    def attach_encoder(self, encoder: WhisperEncoder) -> WhisperEmotionNet:
        self._encoder[:] = [encoder.eval().requires_grad_(False)]
        return self

    @property
    def encoder(self) -> WhisperEncoder:
        if not self._encoder:
            raise RuntimeError("no Whisper encoder attached (load the model with load_model)")
        return self._encoder[0]

    def encoder_states(self, mel: torch.Tensor) -> torch.Tensor:
        """What the encoder cache stores: (windows, layers + 1, pooled frames, width)."""
        return pool_frames(torch.stack(self.encoder(mel, layers=self.layers), dim=1), CACHE_POOL)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Logits of each window over its real frames: windows filled out with NOT_AUDIO (audio
        shorter than the window, `features.pad_frames`) are encoded at their own length, grouped
        by length, so padding never enters the encoder's attention or the head's statistics."""
        return self._by_length(mel, self._logits)

    @property
    def reads_context(self) -> bool:
        """Whether a speaker's context changes this network's answers (a stats head, alpha > 0)."""
        return self.context_alpha > 0 and isinstance(self.head, StatsHead)

    def context_summary(self, mel: torch.Tensor) -> torch.Tensor:
        """(windows, features): each window's standardised statistics, over its real frames, whose
        mean over a speaker's windows is that speaker's context."""
        if not isinstance(self.head, StatsHead):
            raise ValueError("only a stats head reads a speaker context")
        return self._by_length(mel, lambda m: self.head.standardise(layer_statistics(self._states(m))))

    def summary_logits(self, summary: torch.Tensor) -> torch.Tensor:
        """The logits of windows from their `context_summary` (what `forward` gives, without encoding
        them again: a stats head is linear in it)."""
        return self.head.classify(summary)

    @property
    def context_summary_shape(self) -> torch.Size:
        """The shape of a speaker context's mean (one standardised statistic per head input)."""
        return self.head.feature_mean.shape if isinstance(self.head, StatsHead) else torch.Size([0])

    def context_offset(self, mean: torch.Tensor) -> torch.Tensor:
        """(n_classes,) what a speaker's context (the mean of `context_summary`) takes off each window's logits."""
        return self.head.context_offset(mean, self.context_alpha)

    def _by_length(self, mel: torch.Tensor, fn) -> torch.Tensor:
        lengths = real_frames(mel)
        if bool((lengths == mel.shape[-1]).all()):
            return fn(mel)
        if bool((lengths == 0).any()):
            raise ValueError("a window holds no audio frames")
        out = None
        for length in lengths.unique().tolist():
            same = (lengths == length).nonzero()[:, 0]
            part = fn(mel[same, :, :length])
            if out is None:
                out = torch.empty(len(mel), part.shape[1])
            out[same] = part
        return out

    def _states(self, mel: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.encoder_states(mel)

    def _logits(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self._states(mel))
