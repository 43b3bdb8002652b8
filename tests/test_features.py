"""Log-mel features: the filterbank, frame arithmetic, slicing, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import voiced

from emotionnet import vad
from emotionnet.features import (
    FeatureConfig,
    band_stats,
    log_mel,
    mel_filterbank,
    model_input,
    normalise,
    tile_frames,
)

CONFIG = FeatureConfig()


def test_defaults_match_design():
    c = CONFIG
    assert (c.sample_rate, c.win_length, c.n_fft, c.hop_length, c.n_mels) == (16_000, 400, 512, 160, 64)
    assert (c.f_min, c.f_max, c.log_offset, c.normalisation) == (50.0, 8_000.0, 1e-6, "utterance")
    assert FeatureConfig.from_dict({**c.to_dict(), "unknown": 1}) == c


def test_mel_filterbank_matches_librosa():
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(CONFIG)
    theirs = librosa.filters.mel(sr=16_000, n_fft=512, n_mels=64, fmin=50, fmax=8_000)
    assert ours.shape == theirs.shape == (64, 257)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def test_filterbank_covers_the_band():
    bank = mel_filterbank(CONFIG)
    assert (bank >= 0).all()
    assert (bank.sum(axis=1) > 0).all()  # no empty filter
    peaks = bank.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # filters go up in frequency


@pytest.mark.parametrize("samples", [512, 513, 671, 672, 16_000, 48_123])
def test_frames_formula(samples):
    # torch.stft pads the 400-sample window to n_fft, so a frame spans 512 samples.
    expected = 1 + (samples - 512) // 160
    assert CONFIG.frames_of_samples(samples) == expected
    features = log_mel(np.zeros(samples, dtype=np.float32) + 0.01, CONFIG)
    assert features.shape == (64, expected)
    assert features.dtype == torch.float32


@pytest.mark.parametrize("samples", [0, 399, 400, 511])
def test_frames_of_short_audio(samples):
    assert CONFIG.frames_of_samples(samples) == 0
    with pytest.raises(ValueError, match="shorter than one window"):
        log_mel(np.zeros(samples, dtype=np.float32), CONFIG)


def test_three_second_window():
    assert CONFIG.frames_of_samples(CONFIG.samples_for_seconds(3.0)) == 297


def test_batched_log_mel_equals_single():
    a, b = voiced(0.5, seed=1), voiced(0.5, f0=220, seed=2)
    batch = log_mel(np.stack([a, b]), CONFIG)
    assert batch.shape == (2, 64, CONFIG.frames_of_samples(a.size))
    torch.testing.assert_close(batch[0], log_mel(a, CONFIG))
    torch.testing.assert_close(batch[1], log_mel(b, CONFIG))


def test_log_of_silence_is_the_offset():
    features = log_mel(np.zeros(1_600, dtype=np.float32), CONFIG)
    torch.testing.assert_close(features, torch.full_like(features, float(np.log(1e-6))))


@pytest.mark.parametrize("start_hop, length", [(0, 8_000), (7, 8_000), (13, 4_000 + 37)])
def test_window_on_hop_boundary_is_a_slice(start_hop, length):
    """What training crops and streaming rely on: no recomputation at window edges."""
    audio = voiced(1.0, seed=3)
    whole = log_mel(audio, CONFIG)
    start = start_hop * CONFIG.hop_length
    window = log_mel(audio[start:start + length], CONFIG)
    n = CONFIG.frames_of_samples(length)
    assert window.shape[-1] == n
    torch.testing.assert_close(window, whole[:, start_hop:start_hop + n], rtol=1e-4, atol=1e-4)


def test_utterance_normalisation():
    features = log_mel(voiced(1.0), CONFIG)
    normed = normalise(features, "utterance")
    assert normed.shape == features.shape
    torch.testing.assert_close(normed.mean(dim=-1), torch.zeros(64), atol=1e-4, rtol=0)
    std = normed.std(dim=-1, unbiased=False)
    # Unit variance up to the floor (0.01) that keeps near-constant bands quiet.
    assert (std <= 1.0 + 1e-5).all()
    assert float(std.median()) > 0.95


def test_normalisation_is_per_item_in_a_batch():
    a, b = log_mel(voiced(0.5, seed=1), CONFIG), log_mel(voiced(0.5, seed=2) * 0.01, CONFIG)
    batch = normalise(torch.stack([a, b]), "utterance")
    torch.testing.assert_close(batch[0], normalise(a, "utterance"))
    torch.testing.assert_close(batch[1], normalise(b, "utterance"))


def test_no_normalisation_leaves_values():
    features = log_mel(voiced(0.5), CONFIG)
    assert torch.equal(normalise(features, "none"), features)


def test_unknown_normalisation():
    with pytest.raises(ValueError, match="unknown normalisation"):
        normalise(torch.zeros(64, 10), "per-speaker")


def test_global_normalisation_keeps_the_spectral_shape():
    features = log_mel(voiced(0.5), CONFIG)
    out = normalise(features, "global")
    assert abs(float(out.mean())) < 1e-4 and abs(float(out.std(unbiased=False)) - 1) < 0.01
    # Differences between bands survive: per-band normalisation would erase them.
    assert float(out.mean(dim=-1).std()) > 0.1


def test_tile_frames_repeats_short_inputs():
    features = torch.arange(12.0).reshape(2, 6)
    tiled = tile_frames(features, 15)
    assert tiled.shape == (2, 15)
    assert torch.equal(tiled[:, :6], features)
    assert torch.equal(tiled[:, 6:12], features)
    assert torch.equal(tiled[:, 12:], features[:, :3])


def test_tile_frames_cuts_long_and_keeps_exact():
    features = torch.arange(20.0).reshape(2, 10)
    assert torch.equal(tile_frames(features, 4), features[:, :4])
    assert torch.equal(tile_frames(features, 10), features)
    batch = tile_frames(features[None], 25)  # batched input repeats along time only
    assert batch.shape == (1, 2, 25)
    assert torch.equal(batch[0, :, 10:20], features)


def test_model_input_normalises_then_tiles():
    features = log_mel(voiced(0.5), CONFIG)
    out = model_input(features, CONFIG, 100)
    assert out.shape == (64, 100)
    n = features.shape[-1]
    assert n == 47
    normed = normalise(features, "utterance")
    torch.testing.assert_close(out, torch.cat([normed, normed, normed], dim=-1)[:, :100])


def test_band_stats_leave_out_silence():
    speech = log_mel(voiced(1.0), CONFIG)
    padded = log_mel(np.concatenate([np.zeros(16_000, np.float32) + 1e-5, voiced(1.0)]), CONFIG)
    a, b = band_stats([speech]), band_stats([padded])
    # A second of near-silence before the speech barely moves the statistics.
    assert float((a.mean - b.mean).abs().max()) < 0.3
    assert a.mean.shape == a.std.shape == (64, 1)


def test_band_stats_pool_several_clips():
    a, b = log_mel(voiced(1.0, seed=1), CONFIG), log_mel(voiced(1.0, seed=2) * 0.1, CONFIG)
    pooled = band_stats([a, b])
    # Each clip's speech frames, by its own loudest level, pooled.
    frames = torch.cat([m[:, vad.speech_frames(vad.frame_levels(m))] for m in (a, b)], dim=-1)
    torch.testing.assert_close(pooled.mean[:, 0], frames.mean(dim=-1), atol=1e-4, rtol=0)
    torch.testing.assert_close(pooled.std[:, 0] ** 2, frames.var(dim=-1, unbiased=False) + 0.01, atol=1e-3, rtol=0)


def test_speaker_normalisation_keeps_what_sets_a_clip_apart_from_its_speaker():
    loud, quiet = log_mel(voiced(1.0, seed=1), CONFIG), log_mel(voiced(1.0, seed=1) * 0.1, CONFIG)
    speaker = band_stats([loud, quiet])
    louder = normalise(loud, "speaker", speaker).mean() - normalise(quiet, "speaker", speaker).mean()
    assert float(louder) > 0.5  # 20 dB apart: the loud clip stays above the speaker's mean
    # Per utterance the level difference is gone.
    assert abs(float(normalise(loud, "utterance").mean() - normalise(quiet, "utterance").mean())) < 1e-3
    # Without a context a clip is its own.
    torch.testing.assert_close(normalise(loud, "speaker"), normalise(loud, "speaker", band_stats([loud])))
