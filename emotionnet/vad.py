"""An energy gate that tells speech windows from silence and background.

Chosen over silero-vad for three reasons: no second model to ship or load
(cold start stays fast), the same code serves files, cached training features
and the live stream, and acted-speech clips and microphone input are clean
enough that level is the signal that matters. It reads the log-mel frames the
model gets anyway, so its frames line up with the model's windows exactly.
"""

from __future__ import annotations

import torch

# 10*log10 of a frame's summed mel power is about this many dB above its RMS
# level in dBFS (measured with noise and sines: 25-29 dB, depending on spectrum).
MEL_POWER_TO_DBFS = 27.0
FLOOR_DBFS = -55.0  # below this a frame is never speech
RANGE_DB = 35.0  # frames more than this below the loudest are not speech
MIN_SPEECH = 0.15  # a window is speech when at least this share of its frames is


def frame_levels(log_mel: torch.Tensor) -> torch.Tensor:
    """Approximate level in dBFS of each feature frame, from the un-normalised log-mel."""
    return 10 * torch.log10(log_mel.float().exp().sum(dim=-2) + 1e-12) - MEL_POWER_TO_DBFS


def speech_frames(levels: torch.Tensor, reference_db: float | None = None) -> torch.Tensor:
    """Boolean speech mask; `reference_db` is the loudest level known (default: of `levels`)."""
    if levels.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    reference = float(levels.max()) if reference_db is None else reference_db
    return levels > max(FLOOR_DBFS, reference - RANGE_DB)


def is_speech(mask: torch.Tensor) -> bool:
    """A window holds speech when at least MIN_SPEECH of its frames are speech frames."""
    return mask.numel() > 0 and float(mask.float().mean()) >= MIN_SPEECH


def has_speech(window_flags) -> bool:
    """The one rule for a clip or a file: it holds speech when any of its windows does (`is_speech`).

    Without speech every output says so (`"speech": false`, `"emotion": null`) and keeps
    the model's answer only as a guess.
    """
    return any(bool(flag) for flag in window_flags)
