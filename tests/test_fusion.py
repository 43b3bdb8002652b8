"""Fusing voice and face (emotionnet/fusion.py) and the benchmark that chose the rule (benchmarks/fusion.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotionnet import fusion
from emotionnet.fusion import RULES, fuse, fuse_with

REPO = Path(__file__).resolve().parents[1]
VOICE = np.array([0.6, 0.05, 0.05, 0.1, 0.1, 0.1])  # angry
FACE = np.array([0.5, 0.1, 0.1, 0.1, 0.1, 0.1])  # angry too
OTHER_FACE = np.array([0.02, 0.02, 0.02, 0.9, 0.02, 0.02])  # happy, sure of it


def test_a_missing_side_answers_with_the_other():
    np.testing.assert_allclose(fuse(VOICE, None), VOICE)
    np.testing.assert_allclose(fuse(None, FACE), FACE)
    assert fuse(None, None) is None


def test_two_sides_that_agree_are_surer_than_either():
    fused = fuse(VOICE, FACE)
    assert fused.argmax() == 0 and fused.sum() == pytest.approx(1.0)
    assert fused[0] > max(VOICE[0], FACE[0])


def test_the_voice_weighs_more_than_the_face():
    """The shipped weight favours the voice: equally sure sides that disagree fall to the voice."""
    voice = np.roll(OTHER_FACE, -3)  # angry at 0.9
    assert fuse(voice, OTHER_FACE).argmax() == 0
    assert fuse_with(fusion.RULE, voice, OTHER_FACE, 1 - fusion.VOICE_WEIGHT, fusion.TEMPERATURE).argmax() == 3


@pytest.mark.parametrize("rule", RULES)
def test_rows_fuse_as_each_alone(rule):
    rng = np.random.default_rng(0)
    voice, face = rng.dirichlet(np.ones(6), 5), rng.dirichlet(np.ones(6), 5)
    together = fuse_with(rule, voice, face, 0.3)
    for i in range(5):
        np.testing.assert_allclose(together[i], fuse_with(rule, voice[i], face[i], 0.3))
    np.testing.assert_allclose(together.sum(axis=1), 1.0)


def test_the_rules_at_their_ends():
    np.testing.assert_allclose(fuse_with("mean", VOICE, OTHER_FACE, 1.0), VOICE)
    np.testing.assert_allclose(fuse_with("product", VOICE, OTHER_FACE, 0.0), OTHER_FACE, atol=1e-9)
    np.testing.assert_allclose(fuse_with("gating", VOICE, OTHER_FACE, 0.0), OTHER_FACE)  # 0.9 beats 0.6
    np.testing.assert_allclose(fuse_with("gating", VOICE, OTHER_FACE, 0.35), VOICE)


def test_bad_probabilities_are_one_clear_error():
    with pytest.raises(ValueError, match="6 values"):
        fuse([0.5, 0.5], FACE)
    with pytest.raises(ValueError, match="face probabilities must be finite"):
        fuse(VOICE, [np.nan] * 6)
    with pytest.raises(ValueError, match="unknown fusion rule"):
        fuse_with("vote", VOICE, FACE, 0.5)


def test_shipped_constants_are_the_benchmarks_choice():
    """emotionnet/fusion.py holds what docs/results/fusion.json chose for whisper-base (no drift)."""
    result = json.loads((REPO / "docs" / "results" / "fusion.json").read_text())["voice"]["whisper-base"]
    assert result["chosen"] == fusion.RULE
    assert result["chosen_parameter"] == {"weight": fusion.VOICE_WEIGHT, "temperature": fusion.TEMPERATURE}


def test_benchmark_choice_finds_the_informative_side():
    """On made-up probabilities where the voice knows the answer and the face is noise, every rule's
    chosen parameter leans on the voice, and the choice beats the face alone."""
    from benchmarks.fusion import choose_parameters

    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, 300)
    voice = rng.dirichlet(np.ones(6), 300) * 0.4
    voice[np.arange(300), y] += 0.6
    face = rng.dirichlet(np.ones(6), 300)
    assert choose_parameters("mean", voice, face, y)["weight"] >= 0.8
    assert choose_parameters("product", voice, face, y)["weight"] >= 0.8
    assert choose_parameters("gating", voice, face, y)["weight"] >= 0.0


def test_face_temperature_fit_recovers_a_known_temperature():
    from benchmarks.fusion import fit_temperature

    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (4000, 6))
    probs = np.exp(logits / 2.0)
    probs /= probs.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(6, p=p) for p in probs])  # labels drawn at temperature 2
    assert fit_temperature(logits, y) == pytest.approx(2.0, rel=0.1)
