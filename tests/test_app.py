"""The Streamlit app, driven by `streamlit.testing.v1.AppTest`, and its analysis helpers."""

from __future__ import annotations

import csv
import io
import json
import socket
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import soundfile
from conftest import voiced
from streamlit.testing.v1 import AppTest

from emotionnet import load_model
from emotionnet.app.analysis import MAX_SECONDS, MODEL_ENV, NO_SPEECH, analyse, spans, to_csv, to_json
from emotionnet.cli.main import main
from emotionnet.labels import LABELS

APP = Path(__file__).resolve().parents[1] / "emotionnet" / "app" / "streamlit_app.py"
SR = 16_000


def wav_bytes(audio: np.ndarray, sample_rate: int = SR, subtype: str = "PCM_16") -> bytes:
    out = io.BytesIO()
    soundfile.write(out, audio, sample_rate, format="WAV", subtype=subtype)
    return out.getvalue()


@pytest.fixture(scope="module")
def talk() -> np.ndarray:
    """Speech, four seconds of silence, speech: a timeline with both kinds of window."""
    return np.concatenate([voiced(3.0), np.zeros(4 * SR, np.float32), voiced(3.0, seed=3)])


@pytest.fixture
def app(tiny_model_file, monkeypatch) -> AppTest:
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_file))
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    assert not at.exception and not at.error
    return at


def chart_rows(chart) -> list[dict]:
    """The rows of a chart's top-level data (Streamlit sends them as Arrow)."""
    return pa.ipc.open_stream(chart.proto.data.data).read_all().to_pylist()


def shown(at: AppTest) -> dict:
    metric = at.metric[0]
    probability_chart, timeline_chart = at.get("vega_lite_chart")
    timeline = json.loads(timeline_chart.proto.spec)
    return {
        "emotion": metric.value,
        "confidence": metric.delta,
        "probabilities": {row["emotion"]: row["probability"] for row in chart_rows(probability_chart)},
        "curves": timeline["vconcat"][0]["layer"][1]["data"]["values"],
        "strip": timeline["vconcat"][1]["data"]["values"],
    }


def test_an_upload_shows_the_emotion_the_charts_and_downloads(app, talk, tiny_model_file):
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("talk.wav", wav_bytes(talk), "audio/wav")
    app.run()
    assert not app.exception and not app.error

    expected = load_model(tiny_model_file).predict_timeline(wav_bytes(talk))
    view = shown(app)
    assert view["emotion"] == expected.prediction.emotion
    assert view["confidence"] == f"{expected.prediction.confidence:.0%} confidence"
    assert list(view["probabilities"]) == list(LABELS)
    assert view["probabilities"] == pytest.approx(expected.prediction.probabilities)

    # The timeline: one strip span per window, the silent ones greyed as "no speech".
    segments = expected.segments
    assert [row["emotion"] for row in view["strip"]] == [
        s.prediction.emotion if s.speech else NO_SPEECH for s in segments]
    assert NO_SPEECH in [row["emotion"] for row in view["strip"]]
    assert view["strip"][0]["start"] == 0 and view["strip"][-1]["end"] == pytest.approx(10.0)
    assert len(view["curves"]) == 6 * sum(s.speech for s in segments)

    assert len(app.get("image")) == 1  # the spectrogram
    assert [b.label for b in app.get("download_button")] == ["Download CSV", "Download JSON"]
    assert len(app.get("audio")) == 1  # playback


def test_a_browser_recording_is_analysed(app, tiny_model_file):
    recording = wav_bytes(voiced(4.0, seed=9))
    app.audio_input[0].upload("recording.wav", recording)
    app.run()
    assert not app.exception and not app.error
    expected = load_model(tiny_model_file).predict(recording)
    view = shown(app)
    assert view["emotion"] == expected.emotion
    assert view["probabilities"] == pytest.approx(expected.probabilities)
    assert not app.warning  # speech was heard


def test_silence_is_flagged_as_a_guess(app):
    app.audio_input[0].upload("quiet.wav", wav_bytes(np.full(2 * SR, 1e-4, np.float32), subtype="FLOAT"))
    app.run()
    assert not app.exception and not app.error
    assert "No speech" in app.warning[0].value
    assert shown(app)["strip"][0]["emotion"] == NO_SPEECH


def test_an_unreadable_upload_gets_a_friendly_error(app):
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("notes.wav", b"this is not audio at all" * 100, "audio/wav")
    app.run()
    assert not app.exception
    assert "cannot be analysed" in app.error[0].value and "unreadable or unsupported" in app.error[0].value
    assert not app.metric


def test_an_overlong_upload_states_the_limit(app):
    app.radio[0].set_value("Upload a file").run()
    long = np.zeros(int((MAX_SECONDS + 1) * 8_000), np.int16)  # 10 min 1 s at 8 kHz
    app.file_uploader[0].upload("long.wav", wav_bytes(long, 8_000), "audio/wav")
    app.run()
    assert not app.exception
    assert "too long" in app.error[0].value and f"limit is {MAX_SECONDS:g} s" in app.error[0].value


def test_a_missing_model_is_explained_on_the_page(tmp_path, monkeypatch):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "none.safetensors"))
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    assert not at.exception
    assert "model could not be loaded" in at.error[0].value and "not found" in at.error[0].value


def test_downloads_and_spans(tiny_model_file, talk):
    result = analyse(load_model(tiny_model_file), wav_bytes(talk), "talk.wav")
    rows = list(csv.DictReader(io.StringIO(to_csv(result))))
    assert len(rows) == len(result.timeline.segments)
    assert list(rows[0]) == ["start", "end", "speech", "emotion", "confidence", *LABELS]
    silent = [r for r in rows if r["speech"] == "False"]
    assert silent and all(r["emotion"] == "" and r["angry"] == "" for r in silent)
    data = json.loads(to_json(result))
    assert data["name"] == "talk.wav" and data["emotion"] in LABELS and data["duration"] == pytest.approx(10.0)
    assert len(data["segments"]) == len(rows)
    cuts = spans(result)  # contiguous, covering the whole recording
    assert cuts[0][0] == 0 and cuts[-1][1] == pytest.approx(10.0)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))


def test_app_command_refuses_a_bad_model_or_a_busy_port(tiny_model_file, tmp_path, capsys):
    assert main(["app", "--model", str(tmp_path / "none.safetensors")]) == 1
    assert "model file not found" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["app", "--port", str(port), "--model", str(tiny_model_file)]) == 1
    assert f"port {port}" in capsys.readouterr().err
