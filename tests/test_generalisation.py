"""What the generalisation work rests on: calibration and collapse metrics, the masked loss, the channels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import voiced

from emotionnet.evaluation.channels import CHANNELS, mu_law, pink_noise
from emotionnet.evaluation.metrics import brier_score, collapse, expected_calibration_error, reliability
from emotionnet.training.losses import masked_cross_entropy


def test_collapse_is_the_share_of_the_commonest_answer():
    assert collapse([0, 1, 2, 3, 4, 5]) == pytest.approx(1 / 6)
    assert collapse([0, 0, 0, 1]) == 0.75
    assert collapse([]) == 0.0


def test_a_calibrated_model_has_small_ece_and_an_overconfident_one_large():
    rng = np.random.default_rng(0)
    n = 20_000
    confidence = rng.uniform(0.3, 1.0, n)
    correct = rng.uniform(size=n) < confidence  # right exactly as often as it says
    y_true = np.where(correct, 0, 1)
    probs = np.zeros((n, 6))
    probs[:, 0] = confidence
    probs[:, 1:] = ((1 - confidence) / 5)[:, None]
    assert expected_calibration_error(y_true, probs) < 0.02
    overconfident = np.zeros((n, 6))
    overconfident[:, 0] = 0.99
    overconfident[:, 1:] = 0.002
    # Always 99 % sure, right about 65 % of the time: ECE is the gap.
    assert expected_calibration_error(y_true, overconfident) == pytest.approx(0.99 - correct.mean(), abs=1e-6)
    table = reliability(y_true, probs)
    assert sum(table["count"]) == n and len(table["count"]) == 15


def test_brier_score_bounds():
    onehot = np.eye(6)[[0, 3]]
    assert brier_score([0, 3], onehot) == 0.0
    assert brier_score([1, 2], onehot) == pytest.approx(2.0)
    assert brier_score([0], np.full((1, 6), 1 / 6)) == pytest.approx(5 / 6)


def test_masked_cross_entropy_ignores_classes_a_corpus_lacks():
    logits = torch.tensor([[0.0, 5.0, 0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    label = torch.tensor([0])
    without_disgust = torch.tensor([[True, False, True, True, True, True]])
    masked = masked_cross_entropy(logits, label, without_disgust)
    # A huge disgust logit does not count against a clip of a corpus with no disgust...
    assert masked.item() == pytest.approx(np.log(5), rel=1e-5)
    masked.backward()
    assert logits.grad[0, 1] == 0
    # ...and with every class present it is the ordinary cross-entropy, smoothing included.
    everything = torch.ones(1, 6, dtype=torch.bool)
    for smoothing in (0.0, 0.1):
        expected = torch.nn.functional.cross_entropy(logits.detach(), label, label_smoothing=smoothing)
        assert masked_cross_entropy(logits.detach(), label, everything, smoothing).item() == pytest.approx(expected.item())


def test_mu_law_round_trip_is_close_and_quantised():
    x = np.linspace(-1, 1, 10_001).astype(np.float32)
    y = mu_law(x)
    # Companding: the error grows with the level, about 2 % of it at most.
    assert (np.abs(y - x) <= 0.025 * np.abs(x) + 1e-3).all()
    assert len(np.unique(y)) <= 256


def test_pink_noise_falls_with_frequency():
    noise = pink_noise(2 ** 16, np.random.default_rng(0))
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    low, high = spectrum[10:100].mean(), spectrum[10_000:20_000].mean()
    assert low > 50 * high


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_every_channel_keeps_the_length_and_changes_the_audio(name):
    audio = voiced(1.5)
    out = CHANNELS[name](audio, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == audio.shape
    assert np.isfinite(out).all()
    assert not np.allclose(out, audio, atol=1e-3)
    again = CHANNELS[name](audio, np.random.default_rng(0))
    assert np.array_equal(out, again)  # seeded: a run repeats
