"""Whisper's own log-mel front end, through the package's feature code.

Whisper hears 80 Slaney mel bands of a 400-sample (25 ms) Hann STFT every 160
samples (10 ms); `log10` clamped to 8 decades under the loudest bin, then
`(x + 4) / 4`. Here the STFT is the package's `log_mel` (not centred, so the
frames of a window are a slice of the recording's, as for every model) and the
scaling is the `whisper` normalisation, applied per window like any other.
"""

from __future__ import annotations

from emotionnet.features import FeatureConfig

WHISPER_FEATURES = FeatureConfig(win_length=400, n_fft=400, hop_length=160, n_mels=80, f_min=0.0, f_max=8000.0,
                                 log_offset=1e-10, normalisation="whisper")
