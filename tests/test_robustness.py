"""Issue 13's probes end to end: odd API inputs and bad command lines each get one clear answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import voiced, write_wav

from emotionnet import AudioError, load_model
from emotionnet.cli.main import main

SR = 16_000


@pytest.fixture(scope="module")
def recognizer(tiny_model_file):
    return load_model(tiny_model_file)


@pytest.mark.parametrize("audio, rate, words", [
    (None, SR, "got None"),
    (7, SR, "shape"),
    (np.float32(0.3), SR, "shape"),
    (voiced(1.0), "16000", "must be a number"),
    (voiced(1.0), float("nan"), "positive sample rate"),  # once: soxr spun forever
    (voiced(1.0), 1, "outside"),
    (np.stack([voiced(1.0), voiced(1.0)]), SR, "(channels, samples)"),  # once: "too short (0.00 s)"
    ((voiced(1.0) * 30_000).astype(np.int64), SR, "int64"),  # once: near-silence, still answered
    (voiced(1.0).astype(np.float64) * 1e25, SR, "absurd"),  # once: "angry", confidence NaN
])
def test_odd_inputs_to_predict_are_one_audio_error(recognizer, audio, rate, words):
    with pytest.raises(AudioError) as info:
        recognizer.predict(audio, sample_rate=rate)
    assert words in str(info.value)


def test_lists_and_tensors_are_audio_too(recognizer):
    audio = voiced(1.0)
    expected = recognizer.predict(audio, SR).probabilities
    assert recognizer.predict(audio.tolist(), SR).probabilities == pytest.approx(expected)
    assert recognizer.predict(torch.from_numpy(audio), SR).probabilities == pytest.approx(expected)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("emotionnet: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_command_line_errors_are_one_line(tiny_model_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    clip = write_wav(tmp_path / "clip.wav", voiced(1.0))
    write_wav(tmp_path / "other.wav", voiced(1.0, f0=220))
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,emotion,speaker,corpus\nclip.wav,angry,bob,crema-d\n")
    good = tmp_path / "good.csv"
    good.write_text("path,emotion,speaker,split\nclip.wav,angry,a,train\nother.wav,sad,b,val\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    model = ["--model", str(tiny_model_file)]
    cases = [
        (["predict", str(clip), "--threads", "0", *model], 1, "--threads"),
        (["predict", str(clip), "--max-seconds", "0", *model], 1, "--max-seconds"),
        (["evaluate", "--manifest", str(manifest), *model], 1, "speaker 'bob' of corpus crema-d"),
        (["train", "--manifest", str(manifest), "--epochs", "1"], 1, "speaker 'bob'"),
        (["evaluate", "--manifest", str(tmp_path / "none.csv"), *model], 1, "manifest not found"),
        (["evaluate", "--manifest", str(good), *model, "--split", "all", "--out", str(blocker / "report")], 1,
         "cannot write"),
        (["train", "--manifest", str(good), "--out", str(blocker / "m.safetensors"), "--arch", "cnn",
          "--channels", "8,16", "--window", "1.0", "--epochs", "1", "--steps-per-epoch", "1", "--quiet"], 1,
         "is not a writable folder"),
    ]
    for argv, code, words in cases:
        assert main(argv) == code, argv
        assert words in _one_line(capsys), argv
