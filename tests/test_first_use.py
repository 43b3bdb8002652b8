"""What a new user hit (issue 31): digital silence is "no speech", a guess is not an answer, one window
rule, speech time from the detector, the app's caption and times, integer-scale floats, smaller things."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import voiced, write_wav

from emotionnet import LABELS, load_model
from emotionnet.batch import BatchPredictor
from emotionnet.cli.main import main

SR = 16_000


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def zeros_file(tmp_path) -> Path:
    """What `sox -n -r 16000 -c 1 -b 16 silence.wav trim 0 2` writes: two seconds of int16 zeros."""
    return write_wav(tmp_path / "silence.wav", np.zeros(2 * SR, np.int16), subtype="PCM_16")


# --- 1. digital silence is no speech, not an error ------------------------------------------------

def test_digital_silence_is_no_speech_in_python_without_asking_the_model(tiny_model_file, zeros_file, monkeypatch):
    recognizer = load_model(tiny_model_file)
    asked = []
    network = recognizer._scoring.network
    monkeypatch.setattr(recognizer._scoring, "network", lambda x: asked.append(len(x)) or network(x))
    for timeline in (recognizer.predict_timeline(zeros_file), recognizer.predict_timeline(np.zeros(7 * SR), SR),
                     *recognizer.predict_arrays([np.zeros(SR, np.float32)])):
        p = timeline.prediction
        assert timeline.speech is False and p.speech is False
        assert p.emotion is None and p.confidence is None and p.probabilities is None and p.guess is None
        assert all(s.prediction is None and not s.speech for s in timeline.segments)
    assert asked == []  # nothing to guess: the model was not asked
    # shared batches: a silent clip beside a spoken one takes nothing from it
    spoken, silent = recognizer.predict_arrays([voiced(2.0), np.zeros(SR, np.float32)])
    assert spoken.prediction.emotion in LABELS and silent.prediction.speech is False


def test_digital_silence_in_predict_text_and_json(capsys, tiny_model_file, zeros_file):
    code, out, err = run(capsys, "predict", zeros_file, "--json", "--model", tiny_model_file)
    assert code == 0 and err == ""
    record = json.loads(out)
    assert record["speech"] is False and record["emotion"] is None and record["guess"] is None
    code, out, err = run(capsys, "predict", zeros_file, "--model", tiny_model_file)
    assert code == 0 and err == "" and "NO SPEECH" in out and "nothing to guess" in out


def test_digital_silence_in_a_long_file_scored_in_blocks(tiny_model_file, tmp_path, monkeypatch):
    from emotionnet.inference import blocks

    monkeypatch.setattr(blocks, "LONG_SECONDS", 5.0)
    path = write_wav(tmp_path / "muted.wav", np.zeros(8 * SR, np.int16), subtype="PCM_16")
    [result] = load_model(tiny_model_file).predict_files([path])
    assert result.ok and result.timeline.speech is False and result.timeline.prediction.guess is None
    assert len(result.timeline.segments) > 1


def test_digital_silence_in_batch_rows_is_not_an_error(tiny_model_file, zeros_file, tmp_path):
    [row] = BatchPredictor(str(tiny_model_file)).predict_paths([str(zeros_file)])
    assert row["error"] is None and row["speech"] is False and row["emotion"] is None
    assert all(row[f"p_{label}"] is None for label in LABELS)  # no guess
    out = tmp_path / "r.parquet"
    assert main(["batch", str(zeros_file), "--out", str(out), "--workers", "1", "--model", str(tiny_model_file)]) == 0


def test_digital_silence_over_http(tiny_model_file, zeros_file):
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from emotionnet.serving import ServeSettings, create_app
    from emotionnet.serving.model import ServedModel

    with TestClient(create_app(ServeSettings(), ServedModel(load_model(tiny_model_file)))) as client:
        answer = client.post("/v1/predict", content=zeros_file.read_bytes())
    assert answer.status_code == 200
    body = answer.json()
    assert body["speech"] is False and body["emotion"] is None and body["guess"] is None


def test_listen_input_of_digital_silence_says_no_speech(capsys, tiny_model_file, zeros_file):
    code, out, err = run(capsys, "listen", "--input", zeros_file, "--fast", "--json", "--model", tiny_model_file)
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert results and all(r["speech"] is False and r["emotion"] is None for r in results)
    assert "NO SPEECH" in err


# --- 2. a guess is not the answer ----------------------------------------------------------------

def test_a_guess_is_held_apart_from_the_answer_in_python_and_text(capsys, tiny_model_file, tmp_path):
    hum = write_wav(tmp_path / "hum.wav", np.full(2 * SR, 1e-4, np.float32), subtype="FLOAT")
    p = load_model(tiny_model_file).predict(hum)
    assert p.speech is False and p.emotion is None and p.confidence is None and p.probabilities is None
    assert p.guess.emotion in LABELS and sum(p.guess.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.most_likely == p.guess
    code, out, _ = run(capsys, "predict", hum, "--model", tiny_model_file)
    lines = out.splitlines()
    assert code == 0 and lines[1].strip() == "NO SPEECH detected"  # first, where the answer would be
    assert f"the model's guess on the non-speech audio: {p.guess.emotion}" in lines[2]
    spoken = load_model(tiny_model_file).predict(voiced(2.0), SR)
    assert spoken.guess is None and spoken.most_likely.emotion == spoken.emotion


def test_evaluation_still_scores_a_clip_without_speech(tiny_model_file):
    """evaluate counts every labelled clip: a clip the detector hears no speech in is scored by its guess."""
    import torch

    from emotionnet.features import log_mel

    recognizer = load_model(tiny_model_file)
    quiet = log_mel(np.full(2 * SR, 1e-5, np.float32), recognizer.features)
    [timeline] = recognizer.predict_log_mels([torch.as_tensor(quiet)])
    scored = recognizer.score_log_mels([torch.as_tensor(quiet)])[0]
    assert timeline.speech is False
    best = LABELS[int(np.argmax(scored.clip_probabilities(recognizer.temperature)))]
    assert timeline.prediction.most_likely.emotion == best
