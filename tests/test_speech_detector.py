"""The speech detector: silero-vad where installed (vad="auto"|"silero"; the CLI's EMOTIONNET_VAD), else the energy gate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, voiced, write_wav

from emotionnet import load_model, vad
from emotionnet.audio import load_audio
from emotionnet.cli.main import main
from emotionnet.evaluation.channels import pink_noise
from emotionnet.inference import blocks
from emotionnet.streaming import ArraySource, StreamEngine

pytest.importorskip("silero_vad", reason="silero-vad is not installed (pip install silero-vad)")

SR = 16_000
CLIP = REPO / "emotionnet" / "assets" / "speech.wav"


@pytest.fixture
def silero(silero_installed, monkeypatch):
    """silero-vad as installed (tests/conftest.py), and chosen for the command line."""
    monkeypatch.setenv("EMOTIONNET_VAD", "silero")


def noise(seconds: float = 3.0, dbfs: float = -20.0, seed: int = 0) -> np.ndarray:
    return (pink_noise(int(seconds * SR), np.random.default_rng(seed)) * 10 ** (dbfs / 20)).astype(np.float32)


def tones(seconds: float = 3.0) -> np.ndarray:
    """A melody of harmonic notes, four a second: music to a level gate."""
    t = np.arange(int(seconds * SR)) / SR
    f = 220 * 2 ** (np.floor(t * 4) % 7 / 12)
    phase = 2 * np.pi * np.cumsum(f) / SR
    return (0.1 * sum(np.sin(k * phase) / k for k in range(1, 6)) * np.exp(-3 * (t % 0.25))).astype(np.float32)


def test_the_detector_is_chosen_by_the_caller(silero, tiny_model_file):
    assert vad.detector_name() == vad.detector_name("auto") == "silero"  # installed: the default
    assert vad.detector_name("energy") == "energy"
    assert vad.detector_frames(voiced(1.0), 10, "energy", load_model(tiny_model_file).features) is None
    with pytest.raises(ValueError, match="speech detector 'webrtc': choose one of auto, silero, energy"):
        vad.detector_name("webrtc")
    assert load_model(tiny_model_file).vad == "silero" and load_model(tiny_model_file, vad="energy").vad == "energy"


def test_silero_hears_speech_and_not_noise_or_music_where_the_gate_hears_both(silero, tiny_model_file):
    recognizer = load_model(tiny_model_file, vad="silero")
    assert recognizer.predict_timeline(CLIP).speech is True
    for audio in (noise(), tones()):
        assert recognizer.predict_timeline(audio, SR).speech is False
    gate = load_model(tiny_model_file, vad="energy")  # what the user met: noise and music answered
    assert gate.predict_timeline(noise(), SR).speech is True
    assert gate.predict_timeline(tones(), SR).speech is True


def test_predict_json_on_noise_says_no_speech(silero, capsys, tiny_model_file, tmp_path):
    path = write_wav(tmp_path / "fan.wav", noise(4.0))
    assert main(["predict", str(path), str(CLIP), "--json", "--model", str(tiny_model_file)]) == 0
    fan, speech = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert fan["speech"] is False and fan["emotion"] is None and fan["guess"]["emotion"]
    assert speech["speech"] is True and speech["emotion"]


def test_silero_fed_in_pieces_is_silero_fed_whole():
    audio = load_audio(CLIP)
    whole = vad.SileroStream()
    whole.feed(audio)
    pieces = vad.SileroStream()
    for start in range(0, audio.size, 7_777):
        pieces.feed(audio[start:start + 7_777])
    assert np.array_equal(whole.finish(), pieces.finish())


def test_long_files_in_blocks_get_the_same_speech_flags(silero, tiny_model_file, tmp_path):
    audio = np.concatenate([load_audio(CLIP), noise(4.0, seed=1), load_audio(CLIP)])
    path = write_wav(tmp_path / "talk.wav", audio)
    recognizer = load_model(tiny_model_file, vad="silero")
    whole = recognizer.predict_timeline(path, hop=0.5)
    blocked = blocks.score_in_blocks(recognizer._scoring, path, recognizer.windowing(hop=0.5), block_seconds=2.3)
    assert [s.speech for s in blocked.segments] == [s.speech for s in whole.segments]
    assert any(s.speech for s in whole.segments) and not all(s.speech for s in whole.segments)


def test_a_complete_streamed_window_is_predicts_answer_with_silero(silero, tiny_model_file):
    recognizer = load_model(tiny_model_file, vad="silero")
    audio = np.concatenate([load_audio(CLIP), noise(3.5, dbfs=-30, seed=2), load_audio(CLIP)])
    results = list(StreamEngine(recognizer).run(ArraySource(audio, block_seconds=0.37)))
    complete = [r for r in results if not r.partial]
    assert any(r.speech for r in complete) and any(not r.speech for r in complete)
    for result in complete:
        start, end = round(result.start * SR), round(result.time * SR)
        expected = recognizer.predict_timeline(audio[start:end], SR)
        assert result.speech == expected.speech
        if result.speech:
            assert result.probabilities == pytest.approx(expected.prediction.probabilities, abs=1e-6)


def test_listen_agrees_with_predict_on_the_shipped_clip_with_silero(silero, capsys):
    assert main(["predict", str(CLIP), "--model", "fast"]) == 0
    predicted = capsys.readouterr().out.split("\n\nmodel: ")[0]  # listen's header names the model
    assert predicted.splitlines()[1].split()[0] == "happy"
    assert main(["listen", "--input", str(CLIP), "--fast", "--model", "fast"]) == 0
    out = capsys.readouterr().out
    assert predicted.strip() in out[out.index("the whole file"):]


@pytest.mark.parametrize("runtime", ["onnxruntime", "torch"])
def test_silero_as_run_here_is_silero_as_its_package_runs_it(silero, monkeypatch, runtime):
    """vad.py opens silero-vad's data files by name and, on torch, sets its JIT model's private state
    (`_state`, `_context`): this fails if a silero-vad release moves them (pyproject pins the range)."""
    import torch
    from silero_vad import load_silero_vad

    if runtime == "torch":  # the fallback where onnxruntime is missing
        real_find_spec = vad.find_spec
        monkeypatch.setattr(vad, "find_spec", lambda name: None if name == "onnxruntime" else real_find_spec(name))
    monkeypatch.setattr(vad, "_runner", None)  # loaded afresh for this runtime, the cached one restored after
    audio = load_audio(CLIP)[:3 * SR]
    stream = vad.SileroStream()
    stream.feed(audio)
    ours = stream.finish()
    model = load_silero_vad()
    chunks = audio.size // vad.SILERO_CHUNK
    with torch.inference_mode():
        theirs = np.array([float(model(torch.from_numpy(audio[i * 512:(i + 1) * 512].copy()), SR))
                           for i in range(chunks)])
    assert np.abs(ours[:chunks] - theirs).max() < 1e-4


def test_speech_flags_sit_on_the_models_own_frames():
    """The whisper front end's frames are centred 200 samples in, the log-mel models' 256 (issue 26):
    a flag read for the wrong geometry lands 56 samples off, a frame off at some chunk edges."""
    from emotionnet.features import FeatureConfig
    from emotionnet.models.whisper.frontend import WHISPER_FEATURES

    assert list(vad.frame_centres(3, FeatureConfig())) == [256, 416, 576]
    assert list(vad.frame_centres(3, WHISPER_FEATURES)) == [200, 360, 520]
    chunks = np.array([0.0, 1.0, 0.0], np.float32)  # speech in the second 32 ms chunk only (samples 512-1023)
    log_mel_flags = vad.frames_from_chunks(chunks, 8, FeatureConfig())
    whisper_flags = vad.frames_from_chunks(chunks, 8, WHISPER_FEATURES)
    assert bool(whisper_flags[5]) and not bool(log_mel_flags[5])  # frame 5: centre 1000 vs 1056
