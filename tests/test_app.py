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
from conftest import SHARED_DATA, voiced
from streamlit.testing.v1 import AppTest

from emotionnet import load_model
from emotionnet.app.analysis import MAX_SECONDS, NO_SPEECH, analyse, spans, to_csv, to_json
from emotionnet.cli.main import main
from emotionnet.environment import MODEL_ENV
from emotionnet.labels import LABELS
from emotionnet.models.names import FACE_MODEL

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


def test_silence_is_flagged_as_a_guess(app, tiny_model_file):
    quiet = wav_bytes(np.full(2 * SR, 1e-4, np.float32), subtype="FLOAT")
    app.audio_input[0].upload("quiet.wav", quiet)
    app.run()
    assert not app.exception and not app.error
    assert "No speech" in app.warning[0].value
    view = shown(app)
    assert view["strip"][0]["emotion"] == NO_SPEECH
    # issue 31: the large figure is "No speech", not the guess; the guess is shown as one, beside it
    guess = load_model(tiny_model_file).predict(quiet).guess
    assert view["emotion"] == "No speech" and view["confidence"] == "a guess only"
    assert view["probabilities"] == pytest.approx(guess.probabilities)
    assert any(f"guess, not an answer: {guess.emotion}" in c.value for c in app.caption)


def test_digital_silence_is_no_speech_with_nothing_to_guess(app):
    app.audio_input[0].upload("muted.wav", wav_bytes(np.zeros(2 * SR, np.int16)))
    app.run()
    assert not app.exception and not app.error
    assert app.metric[0].value == "No speech" and app.metric[0].delta == "nothing to guess"
    assert "Every sample is zero" in app.warning[0].value


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


# --- issue 13 ------------------------------------------------------------------------------------


def test_an_unreadable_upload_is_named_not_a_buffer(app):
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("notes.mp3", b"this is not audio at all" * 100, "audio/mpeg")
    app.run()
    message = app.error[0].value
    assert "notes.mp3" in message and "BytesIO" not in message and "0x" not in message


def test_an_oversized_upload_is_refused_before_decoding(app, talk, monkeypatch):
    from emotionnet.app import analysis

    monkeypatch.setattr(analysis, "MAX_UPLOAD_MB", 0.1)  # 100 kB; the talk WAV is 320 kB
    monkeypatch.setattr(analysis, "analyse", lambda *a, **k: pytest.fail("an oversized upload was decoded"))
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("big.wav", wav_bytes(talk), "audio/wav")
    app.run()
    assert not app.exception
    assert "big.wav: too large" in app.error[0].value and "limit is 0.1 MB" in app.error[0].value


def test_a_long_recording_gets_a_summary(app, tiny_model_file):
    parts = [voiced(3.0, f0=100 + 30 * (k % 4), seed=k) if k % 3 else np.zeros(3 * SR, np.float32)
             for k in range(14)]  # 42 s: speech with pauses
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("interview.wav", wav_bytes(np.concatenate(parts)), "audio/wav")
    app.run()
    assert not app.exception and not app.error
    assert app.metric[0].label == "Most of the speech" and "of the speech time" in app.metric[0].delta
    shares = chart_rows(app.get("vega_lite_chart")[0])
    assert [row["emotion"] for row in shares] == list(LABELS)
    assert sum(row["share"] for row in shares) == pytest.approx(1.0)
    assert "Strongest moments" in [h.value for h in app.subheader]
    moments = app.dataframe[0].value  # times alike, one decimal each (issue 31: 204 beside 169.5)
    times = [*moments["start (s)"], *moments["end (s)"]]
    assert times and all(isinstance(t, str) and t == f"{float(t):.1f}" for t in times)


def test_the_caption_names_the_model_the_selector_chose(app):
    app.selectbox[0].set_value("fast").run()
    app.audio_input[0].upload("recording.wav", wav_bytes(voiced(2.0, seed=9)))
    app.run()
    assert not app.exception and not app.error
    assert any(c.value.endswith("· model fast") for c in app.caption)  # not "model model.safetensors"


def test_summary_shares_and_strongest_moments(tiny_model_file, talk):
    from emotionnet.app.analysis import summarise
    from emotionnet.inference.results import Prediction

    result = analyse(load_model(tiny_model_file), wav_bytes(talk), "talk.wav")
    for k, segment in enumerate(result.timeline.segments):  # known answers: angry, then sad
        if segment.prediction:
            probs = np.full(6, 0.02)
            probs[0 if segment.start < 4 else 5] = 0.5 + 0.01 * k
            segment.prediction = Prediction.from_probabilities(probs / probs.sum())
    summary = summarise(result, strongest=3)
    speech = [s for s in spans(result) if s[2]]
    # the detector's speech (the two 3 s stretches), not the speech windows' whole spans (issue 31)
    assert 3.0 < summary.speech_seconds <= 6.1 < sum(b - a for a, b, _ in speech)
    assert summary.shares["angry"] + summary.shares["sad"] == pytest.approx(1.0)
    assert {m[2] for m in summary.strongest} == {"angry", "sad"}  # each emotion's strongest is listed
    confidences = [m[3] for m in summary.strongest]
    assert confidences == sorted(confidences, reverse=True)


def test_the_timeline_chart_fits_its_column(tiny_model_file, talk):
    from emotionnet.app.analysis import timeline_spec

    spec = timeline_spec(analyse(load_model(tiny_model_file), wav_bytes(talk), "talk.wav"))
    assert spec["autosize"] == {"type": "fit-x", "contains": "padding"}  # once: 60 px past the column
    assert all(view["width"] == "container" for view in spec["vconcat"])


def test_the_app_serves_this_machine_with_its_own_upload_limit(tiny_model_file, monkeypatch):
    import subprocess

    from emotionnet.app.analysis import MAX_UPLOAD_MB

    config = (Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text().splitlines()
    assert 'address = "127.0.0.1"' in config  # `streamlit run` from the checkout (tomllib needs 3.11)
    assert f"maxUploadSize = {MAX_UPLOAD_MB}" in config
    started = []

    class Server:
        def __init__(self, command, env):
            started.append(command)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Server)
    assert main(["app", "--port", "8765", "--model", str(tiny_model_file)]) == 0
    command = started[0]
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.maxUploadSize") + 1] == str(MAX_UPLOAD_MB)


def test_a_nan_answer_is_an_error_not_nan_percent(tiny_model_file, talk):
    import torch

    recognizer = load_model(tiny_model_file)
    recognizer._scoring.network = lambda inputs: torch.full((len(inputs), 6), float("nan"))
    with pytest.raises(ValueError, match="talk.wav: the model answered NaN"):
        analyse(recognizer, wav_bytes(talk), "talk.wav")


def test_the_app_stops_within_a_second_of_a_stop_signal(tiny_model_file, monkeypatch):
    """SIGTERM to `emotionnet app`: its server is gone within about a second, even one slow to stop
    (Streamlit takes 1.5-2 s; the launcher waited up to 10 s, issue 31)."""
    import signal
    import subprocess
    import sys
    import threading
    import time

    import emotionnet.cli.app as app_command

    real_popen = subprocess.Popen
    slow = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    servers = []

    def server(command, env):  # a server that ignores SIGTERM, in place of Streamlit
        servers.append(real_popen([sys.executable, "-c", slow], stdout=subprocess.PIPE, text=True))
        return servers[-1]

    def stop_signal():
        while not servers or signal.getsignal(signal.SIGTERM) is not app_command._interrupt:
            time.sleep(0.05)
        servers[0].stdout.readline()  # it is up, its SIGTERM ignored
        stopped.append(time.perf_counter())
        signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(subprocess, "Popen", server)
    stopped: list[float] = []
    previous = signal.getsignal(signal.SIGTERM)
    threading.Thread(target=stop_signal, daemon=True).start()
    try:
        assert main(["app", "--port", "8766", "--model", str(tiny_model_file)]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert servers[0].poll() is not None and time.perf_counter() - stopped[0] < 1.5


def test_the_app_server_imports_the_package_not_a_folder_named_emotionnet_here(tiny_model_file, monkeypatch,
                                                                               tmp_path):
    """Issue 30 item 3: started from a folder holding a folder named `emotionnet` (a `git clone`), the
    Streamlit server (`python -m streamlit`, the current folder first on its path) imported that folder
    and said "model file not found" for the shipped model."""
    import subprocess
    import sys

    import emotionnet

    environments = []

    class Server:
        def __init__(self, command, env):
            environments.append(env)

        def wait(self, timeout=None):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Server)
    assert main(["app", "--port", "8766", "--model", str(tiny_model_file)]) == 0
    here = tmp_path / "parent-of-clone"
    (here / "emotionnet" / "docs").mkdir(parents=True)  # a clone's root: no __init__.py
    env = {k: v for k, v in environments[0].items()}
    monkeypatch.undo()
    imported = subprocess.run([sys.executable, "-c", "import emotionnet; print(emotionnet.__file__)"], cwd=here,
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert imported == emotionnet.__file__  # the launcher's own package, not None (a namespace folder)


# --- issue 28 item 3: faces and video in the app ---------------------------------------------------


def png_bytes(rgb: np.ndarray) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="PNG")
    return out.getvalue()


def test_the_model_choice_offers_voice_models_only(app):
    assert FACE_MODEL not in app.selectbox[0].options


def test_an_uploaded_picture_without_a_face_says_so(app):
    ramp = np.linspace(0, 255, 320 * 240 * 3).reshape(240, 320, 3).astype(np.uint8)  # a smooth ramp: no face
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("ramp.png", png_bytes(ramp), "image/png")
    app.run()
    assert not app.exception and not app.error
    assert app.metric[0].value == "No face found"
    assert len(app.get("image")) == 1  # the picture itself, nothing drawn on it
    assert any(c.value == f"face model {FACE_MODEL}" for c in app.caption)


def test_an_uploaded_fer2013_face_shows_its_emotion_and_box():
    fer = SHARED_DATA / "FER2013" / "validation" / "happy"
    if not fer.is_dir():
        pytest.skip(f"FER2013 not found at {fer.parent.parent} (see ../shared/README.md)")
    picture = sorted(fer.iterdir())[0].read_bytes()
    at = AppTest.from_file(str(APP), default_timeout=180)
    at.run()
    at.radio[0].set_value("Upload a file").run()
    at.file_uploader[0].upload("face.png", picture, "image/png")
    at.run()
    assert not at.exception and not at.error
    expected = load_model(FACE_MODEL).predict(picture)
    assert expected.face  # a FER2013 crop is scored as one face
    assert at.metric[0].value == expected.emotion
    assert at.metric[0].delta == f"{expected.confidence:.0%} confidence"
    bars = {row["emotion"]: row["probability"] for row in chart_rows(at.get("vega_lite_chart")[0])}
    assert bars == pytest.approx(expected.probabilities, abs=1e-4)  # the JSON answer, to 4 places
    assert len(at.get("image")) == 1  # the picture with the box drawn


def test_faces_png_draws_each_box_in_its_emotions_colour():
    from PIL import Image

    from emotionnet.app.analysis import COLOURS, faces_png
    from emotionnet.models.face.results import FacePrediction, ImagePrediction

    grey = np.full((120, 160, 3), 128, np.uint8)
    face = FacePrediction((40.0, 50.0, 60.0, 50.0), "sad", 0.8, dict.fromkeys(LABELS, 1 / 6))
    drawn = np.asarray(Image.open(io.BytesIO(faces_png(png_bytes(grey), ImagePrediction((face,))))))
    assert drawn.shape == grey.shape
    sad = tuple(int(COLOURS["sad"][i:i + 2], 16) for i in (1, 3, 5))
    assert tuple(drawn[75, 40]) == sad and tuple(drawn[75, 100]) == sad  # the box's left and right edges
    assert tuple(drawn[75, 70]) == (128, 128, 128)  # inside the box: the picture as it was


def test_an_uploaded_video_shows_voice_face_and_both(app, tmp_path, tiny_model_file):
    from benchmarks.common import write_video

    video = write_video(tmp_path / "talk.mp4", 4.0, audio=voiced(4.0, sample_rate=48_000))
    app.radio[0].set_value("Upload a file").run()
    app.file_uploader[0].upload("talk.mp4", video.read_bytes(), "video/mp4")
    app.run()
    assert not app.exception and not app.error
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Face"] == "No face"  # grey frames
    assert metrics["Voice"] in LABELS and metrics["Voice and face"] == metrics["Voice"]  # the voice answers alone
    rows = app.dataframe[0].value
    assert list(rows.columns) == ["start (s)", "end (s)", "voice and face", "voice", "face"]
    assert len(rows) >= 2 and set(rows["face"]) == {"no face"}
    assert any(f"voice model {tiny_model_file}" in c.value and f"face model {FACE_MODEL}" in c.value
               for c in app.caption)
