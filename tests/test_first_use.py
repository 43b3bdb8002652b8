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

    with TestClient(create_app(ServeSettings(), ServedModel(load_model(tiny_model_file))),
                    base_url="http://127.0.0.1:8000") as client:  # a keyless service answers loopback names only
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
    [timeline] = recognizer.log_mel_scorer().timelines([torch.as_tensor(quiet)])
    scored = recognizer.log_mel_scorer().scores([torch.as_tensor(quiet)])[0]
    assert timeline.speech is False
    best = LABELS[int(np.argmax(scored.clip_probabilities(recognizer.temperature)))]
    assert timeline.prediction.most_likely.emotion == best


# --- 3. a timeline's window is that audio scored alone --------------------------------------------

def test_a_timeline_window_is_the_cut_scored_alone_in_predict_listen_and_python(capsys, tiny_speaker_model_file,
                                                                                tmp_path):
    """Seconds 1.5-4.5 of a 16 kHz clip: the `predict --json` segment, the `listen --json` result and the
    cut predicted alone give identical probabilities (a speaker-normalised model, as shipped)."""
    audio = np.concatenate([voiced(4.0, seed=4), 0.3 * voiced(3.5, f0=220, seed=5)])
    path = write_wav(tmp_path / "talk.wav", audio, subtype="FLOAT")
    model = tiny_speaker_model_file
    alone = load_model(model).predict(audio[int(1.5 * SR):int(4.5 * SR)], SR).probabilities

    code, out, _ = run(capsys, "predict", path, "--json", "--model", model)
    [segment] = [s for s in json.loads(out)["segments"] if s["start"] == 1.5]
    assert code == 0 and segment["end"] == 4.5 and segment["speech"]
    assert segment["probabilities"] == pytest.approx(alone, abs=1e-6)

    code, out, _ = run(capsys, "listen", "--input", path, "--fast", "--json", "--model", model)
    [result] = [json.loads(line) for line in out.splitlines() if json.loads(line)["start"] == 1.5]
    assert code == 0 and result["time"] == 4.5
    assert result["raw_probabilities"] == {k: round(v, 4) for k, v in alone.items()}  # listen rounds to 4 places


def test_a_long_files_blocks_give_each_window_its_own_context(tiny_speaker_model_file, tmp_path, monkeypatch):
    from emotionnet.inference import blocks

    audio = np.concatenate([voiced(4.0, seed=4), 0.3 * voiced(3.5, f0=220, seed=5)])
    path = write_wav(tmp_path / "talk.wav", audio, subtype="FLOAT")
    recognizer = load_model(tiny_speaker_model_file)
    whole = recognizer.predict_timeline(path)
    monkeypatch.setattr(blocks, "LONG_SECONDS", 5.0)
    blocked = recognizer.predict_timeline(path)
    for a, b in zip(whole.segments, blocked.segments, strict=True):
        assert (a.start, a.end) == (b.start, b.end)
        assert a.prediction.probabilities == pytest.approx(b.prediction.probabilities, abs=1e-5)


# --- 4. one window rule: no near-copies, a floor on the hop ----------------------------------------

@pytest.mark.parametrize(("seconds", "starts"), [
    (3.0, [0.0]), (3.01, [0.0]), (3.41, [0.2]),  # less than a quarter window over: one window, centred
    (3.8, [0.0, 0.8]),  # 0.8 s of new audio earns a window of its own
    (6.03, [0.01, 1.51, 3.01]),  # not 3.00-6.00 and 3.03-6.03
    (7.5, [0.0, 1.5, 3.0, 4.5]),
])
def test_window_placement_has_no_near_copies(tiny_model_file, seconds, starts):
    timeline = load_model(tiny_model_file).predict_timeline(voiced(seconds, seed=2), SR)
    assert [s.start for s in timeline.segments] == starts
    assert all(b - a >= 0.75 for a, b in zip(starts, starts[1:]))  # at least a quarter of the 3 s window apart


def test_the_shipped_clip_answers_once(capsys):
    from importlib import resources

    clip = resources.files("emotionnet") / "assets" / "speech.wav"
    code, out, _ = run(capsys, "predict", clip, "--json")
    assert code == 0 and "segments" not in json.loads(out)
    assert len(load_model().predict_timeline(str(clip)).segments) == 1


def test_the_hop_floor_holds_at_every_entry_point(capsys, tiny_model_file, tmp_path):
    from emotionnet.streaming import StreamEngine

    recognizer = load_model(tiny_model_file)
    path = write_wav(tmp_path / "talk.wav", voiced(4.0))
    for call in (lambda: recognizer.predict_timeline(voiced(4.0), SR, hop=0.05),
                 lambda: list(recognizer.predict_files([path], hop=0.05)),
                 lambda: StreamEngine(recognizer, hop=0.05)):
        with pytest.raises(ValueError, match="hop must be from 0.1 s"):
            call()
    assert len(recognizer.predict_timeline(voiced(4.0), SR, hop=0.1).segments) == 11  # the floor itself is fine
    for command in ("predict", "listen --input"):
        code, _, err = run(capsys, *command.split(), path, "--hop", "0.05", "--model", tiny_model_file)
        assert code == 1 and "hop must be from 0.1 s" in err, command


def test_the_service_takes_the_same_window_rule(tiny_model_file):
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    import io

    import soundfile
    from fastapi.testclient import TestClient

    from emotionnet.serving import ServeSettings, create_app
    from emotionnet.serving.model import ServedModel

    out = io.BytesIO()
    soundfile.write(out, voiced(4.0), SR, format="WAV")
    with TestClient(create_app(ServeSettings(), ServedModel(load_model(tiny_model_file))),
                    base_url="http://127.0.0.1:8000") as client:  # a keyless service answers loopback names only
        assert client.post("/v1/predict?hop=0.05", content=out.getvalue()).status_code == 422
        assert client.post("/v1/predict?window=2&hop=2.5", content=out.getvalue()).status_code == 422
        assert client.post("/v1/predict?hop=0.1", content=out.getvalue()).status_code == 200
        with client.websocket_connect("ws://127.0.0.1:8000/v1/stream?sample_rate=16000&hop=0.05") as ws:
            assert "0.1" in ws.receive_json()["error"]["message"]


# --- 5. speech time from the speech detector ---------------------------------------------------------

def test_the_summary_counts_the_detectors_speech_not_whole_windows(capsys, tiny_model_file, tmp_path):
    """13 bursts of 0.6 s of speech, 2.4 s apart (39 s): every window holds speech, but only 7.8 s is."""
    from emotionnet.inference.summary import summarise

    burst = np.concatenate([voiced(0.6, seed=1), np.zeros(int(2.4 * SR), np.float32)])
    path = write_wav(tmp_path / "bursts.wav", np.tile(burst, 13), subtype="FLOAT")
    timeline = load_model(tiny_model_file).predict_timeline(path)
    assert all(s.speech for s in timeline.segments)  # the windows all count as speech ...
    summary = summarise(timeline)
    assert 6.0 < summary.speech_seconds < 9.5  # ... but the speech is the bursts (old: 39 s)
    assert sum(summary.shares.values()) == pytest.approx(1.0)
    code, out, _ = run(capsys, "predict", path, "--model", tiny_model_file)
    assert code == 0 and f"share of the {summary.speech_seconds:.0f} s of speech" in out


# --- 8. float audio far outside [-1, 1] ----------------------------------------------------------------

def test_integer_scale_float_audio_is_warned_about(tiny_model_file):
    from emotionnet import AudioWarning

    recording = (voiced(2.0) * 20_000).astype(np.int16)
    recognizer = load_model(tiny_model_file)
    with pytest.warns(AudioWarning, match=r"<array>: float samples peak at \d+, far outside \[-1, 1\].*32768"):
        recognizer.predict(recording.astype(np.float64), SR)  # an int16 recording cast, not scaled
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for the same audio as it should come
        recognizer.predict(recording, SR)  # int16 itself: scaled by its type
        recognizer.predict(recording / 32768.0, SR)
        recognizer.predict(np.clip(voiced(2.0) * 1.5, -1.9, 1.9), SR)  # a little over full scale: not integer PCM


def test_a_float_wav_at_integer_scale_is_warned_about_once_in_the_command_line(capsys, tiny_model_file, tmp_path):
    path = write_wav(tmp_path / "cast.wav", (voiced(2.0) * 20_000).astype(np.float32), subtype="FLOAT")
    code, _, err = run(capsys, "predict", path, "--model", tiny_model_file)
    assert code == 0 and err.count("emotionnet: warning:") == 1
    assert f"{path}: float samples peak at" in err


# --- 9. smaller ----------------------------------------------------------------------------------------

def test_a_truncated_wav_that_still_holds_audio_is_called_truncated(capsys, tiny_model_file, tmp_path):
    whole = write_wav(tmp_path / "whole.wav", voiced(3.0), subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:22_000])  # 0.69 s of the 3 s the header promises
    code, out, err = run(capsys, "predict", cut, "--model", tiny_model_file)
    assert code == 0 and "(0.69 s)" in out
    assert f"emotionnet: warning: {cut}: truncated file (its header promises 3.00 s, it holds 0.69 s)" in err
    from emotionnet import AudioWarning

    with pytest.warns(AudioWarning, match="truncated"):
        load_model(tiny_model_file).predict(cut)


def test_a_missing_file_is_not_found(capsys, tiny_model_file, tmp_path):
    code, out, _ = run(capsys, "predict", tmp_path / "gone.wav", "--json", "--model", tiny_model_file)
    assert code == 2 and json.loads(out)["error"]["code"] == "not_found"
    [result] = load_model(tiny_model_file).predict_files([tmp_path / "gone.wav"])
    assert result.to_dict()["error"]["code"] == "not_found" and result.code == "not_found"


def test_the_top_level_help_shows_serve_and_batch(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    examples = capsys.readouterr().out.split("examples:")[1]
    assert "emotionnet serve" in examples and "emotionnet batch" in examples


def test_dir_of_the_package_lists_each_public_name_once():
    import emotionnet

    emotionnet.load_model  # noqa: B018 (a name loaded on first use lands in the module's globals)
    names = dir(emotionnet)
    assert len(names) == len(set(names)) and "load_model" in names and "__version__" in names
    assert not {"TYPE_CHECKING", "annotations", "importlib", "version", "PackageNotFoundError"} & set(names)


def test_evaluate_scores_the_split_protocol_asked_for(capsys, tiny_model_file, tmp_path):
    from emotionnet.cli.evaluate import PROTOCOLS, split_choice
    from emotionnet.corpora import PROTOCOL_CORPORA

    assert PROTOCOLS == tuple(PROTOCOL_CORPORA)
    assert split_choice("v2") == ("v2", None) and split_choice("v2:val") == ("v2", "val")
    assert split_choice("test") == (None, "test")
    rows = ["path,emotion,speaker,corpus,split"]
    for k, (corpus, label) in enumerate([("savee", "angry"), ("savee", "sad"), ("banglaser", "happy"),
                                         ("banglaser", "sad")]):
        write_wav(tmp_path / f"c{k}.wav", voiced(1.0, seed=k))
        rows.append(f"c{k}.wav,{label},s{k},{corpus},test")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    reports = {}
    for split in ("v2", "v3", "test"):
        code, out, _ = run(capsys, "evaluate", "--manifest", tmp_path / "m.csv", "--split", split,
                           "--model", tiny_model_file, "--json")
        assert code == 0
        reports[split] = json.loads(out)
    assert reports["v2"]["split_protocol"] == "v2" and reports["v2"]["overall"]["n"] == 2  # BanglaSER is v3's
    assert reports["v3"]["split_protocol"] == "v3" and reports["v3"]["overall"]["n"] == 4
    assert reports["test"] == reports["v3"]  # v3 is the default


def test_every_model_option_lists_the_model_names(capsys):
    from emotionnet.models.names import available_models

    MODELS = available_models()
    for command in ("predict", "evaluate", "listen", "app", "serve", "batch"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(name in text for name in MODELS), command
