"""Voice and face in one answer (issue 29): the rule chosen on RAVDESS-AU, and the rules it was chosen among.

    fuse(voice_probs, face_probs)    # six probabilities (LABELS order) from each side -> six fused
    fuse(voice_probs, None)          # no face in the window: the voice's answer as it is
    fuse(None, None)                 # neither: None

Each side's probabilities are its model's calibrated ones (each model's own
temperature). The rule and its weight are constants, chosen by
`benchmarks/fusion.py` on RAVDESS-AU's validation actors and reported in
docs/results/fusion.md: there the face side is a classifier on OpenFace action
units (no pixels exist for those takes), not our pixel face model, so the
weight transfers only as far as the two face models' calibration agrees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotionnet.labels import LABELS

RULES = ("mean", "product", "gating")
EPS = 1e-6  # probabilities are floored here before logs, so that a hard zero stays a finite log

# The shipped rule (docs/results/fusion.md, `python -m benchmarks.fusion`): the best of the rules above and a
# learnt combiner on RAVDESS-AU's val actors (06, 11), with `whisper-base` as the voice and action units as
# the face; its parameters minimise the val log-loss. Val UAR 0.948 (voice alone 0.896, face alone 0.667);
# read once after the choice, test actors: 0.892 (voice 0.806, face 0.701), ECE 0.079. With the CRNN voice
# (`default`, from the same run) the product won too, with weight 0.55 and temperature 0.331.
RULE = "product"
VOICE_WEIGHT = 0.65  # the share of the voice's log-probabilities (the face's is 1 - this)
TEMPERATURE = 0.246  # below 1: two sides that agree are surer than either


def _rows(probs: Sequence[float] | np.ndarray, side: str) -> np.ndarray:
    array = np.asarray(probs, dtype=np.float64)
    if array.shape[-1] != len(LABELS) or array.ndim not in (1, 2):
        raise ValueError(f"{side} probabilities must have {len(LABELS)} values per row "
                         f"({', '.join(LABELS)}), got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{side} probabilities must be finite and non-negative")
    return array / array.sum(axis=-1, keepdims=True)


def fuse_with(rule: str, voice: np.ndarray, face: np.ndarray, weight: float, temperature: float = 1.0) -> np.ndarray:
    """Fuse probabilities (one row per item, or one vector) by `rule` with its parameter `weight`:

    - mean: weight * voice + (1 - weight) * face;
    - product: softmax((weight * log voice + (1 - weight) * log face) / temperature), a weighted
      product; its temperature recalibrates the product (two sides that agree are surer than either);
    - gating: the more confident side's probabilities, the voice's confidence raised by `weight`
      (a margin, which may be negative).
    """
    voice, face = _rows(voice, "voice"), _rows(face, "face")
    if rule == "mean":
        return weight * voice + (1 - weight) * face
    if rule == "product":
        logits = weight * np.log(np.maximum(voice, EPS)) + (1 - weight) * np.log(np.maximum(face, EPS))
        logits = logits / temperature
        logits -= logits.max(axis=-1, keepdims=True)
        fused = np.exp(logits)
        return fused / fused.sum(axis=-1, keepdims=True)
    if rule == "gating":
        voice_wins = voice.max(axis=-1, keepdims=True) + weight >= face.max(axis=-1, keepdims=True)
        return np.where(voice_wins, voice, face)
    raise ValueError(f"unknown fusion rule {rule!r}; choose one of {', '.join(RULES)}")


def fuse(voice_probs: Sequence[float] | np.ndarray | None,
         face_probs: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    """The fused probabilities of one window or file (or of rows of them) by the shipped rule.

    A missing side (None: no speech, no face) leaves the other's answer as it is; neither gives None.
    """
    if voice_probs is None and face_probs is None:
        return None
    if face_probs is None:
        return _rows(voice_probs, "voice")
    if voice_probs is None:
        return _rows(face_probs, "face")
    return fuse_with(RULE, voice_probs, face_probs, VOICE_WEIGHT, TEMPERATURE)
