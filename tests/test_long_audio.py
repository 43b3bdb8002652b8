"""Long recordings: scored block by block, with the timeline the whole-file path gives."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import voiced, write_wav

from emotionnet.audio import load_audio
from emotionnet.features import log_mel
from emotionnet.inference import blocks
from emotionnet.inference.recognizer import EmotionRecognizer


def talk(seconds: int, rate: int) -> np.ndarray:
    """Speech-like stretches of varying loudness with pauses between them."""
    parts = []
    for k in range(seconds // 4):
        parts += [(0.3 + 0.6 * (k % 3)) * voiced(3.0, sample_rate=rate, f0=110 + 20 * (k % 5), seed=k),
                  np.zeros(rate * (5 if k == 2 else 1), np.float32)]  # one pause longer than a window
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("rate", [16_000, 44_100])
@pytest.mark.parametrize("model", ["tiny_model_file", "tiny_speaker_model_file"])
def test_blocks_give_the_whole_file_timeline(rate, model, request, tmp_path):
    recognizer = EmotionRecognizer.from_file(request.getfixturevalue(model))
    path = write_wav(tmp_path / "talk.wav", talk(24, rate), rate)
    samples = load_audio(path)
    whole = recognizer.log_mel_scorer().timelines([log_mel(samples, recognizer.features)], [samples.size / 16_000])[0]
    blocked = blocks.score_in_blocks(recognizer._scoring, path, recognizer.windowing(), block_seconds=2.3)  # blocks that split frames
    assert blocked.duration == pytest.approx(whole.duration, abs=1e-3)
    assert [(s.start, s.end, s.speech) for s in blocked.segments] == [(s.start, s.end, s.speech) for s in whole.segments]
    assert any(not s.speech for s in whole.segments)
    tolerance = 1e-4 if rate == 16_000 else 2e-3  # a streaming resampler rounds differently
    np.testing.assert_allclose(list(blocked.prediction.probabilities.values()),
                               list(whole.prediction.probabilities.values()), atol=tolerance)
    for a, b in zip(blocked.segments, whole.segments):
        if a.speech:
            np.testing.assert_allclose(list(a.prediction.probabilities.values()),
                                       list(b.prediction.probabilities.values()), atol=tolerance)


def test_long_files_take_the_block_path(tiny_model_file, tmp_path, monkeypatch):
    recognizer = EmotionRecognizer.from_file(tiny_model_file)
    path = write_wav(tmp_path / "talk.wav", talk(12, 16_000))
    calls = []
    score = blocks.score_in_blocks
    monkeypatch.setattr(blocks, "score_in_blocks", lambda *a, **k: calls.append(a[1]) or score(*a, **k))
    monkeypatch.setattr(blocks, "LONG_SECONDS", 5.0)
    timeline = recognizer.predict_timeline(path)
    results = {r.path: r for r in recognizer.predict_files([path, tmp_path / "missing.wav"])}
    assert calls == [path, path] and len(timeline.segments) > 1
    assert results[str(path)].timeline.prediction == timeline.prediction
    assert not results[str(tmp_path / "missing.wav")].ok
    (too_long,) = recognizer.predict_files([path], max_seconds=6.0)
    assert not too_long.ok and "too long" in too_long.error
