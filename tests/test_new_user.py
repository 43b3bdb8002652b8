"""What a new user hit (issue 19): no speech said everywhere, one JSON line per input, batch keys,
one answer per window, rounded times, --no-timeline, truncated files."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, voiced, write_wav

from emotionnet import LABELS, load_model
from emotionnet.batch import BatchPredictor, read_results
from emotionnet.cli.main import main
from emotionnet.streaming import ArraySource, StreamEngine

SR = 16_000


def near_silence(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """What `sox -n -r 16000 -c 1 -b 16 sil.wav trim 0 2` writes: digital silence with 1-LSB dither."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-1, 2, int(seconds * SR)) / 32768).astype(np.float32)


@pytest.fixture
def silent_file(tmp_path) -> Path:
    return write_wav(tmp_path / "sil.wav", near_silence())


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([*map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. no speech: say so in every output --------------------------------------------------------

def test_the_python_result_says_there_is_no_speech(tiny_model_file, silent_file):
    recognizer = load_model(tiny_model_file)
    timeline = recognizer.predict_timeline(silent_file)
    assert timeline.speech is False and timeline.prediction.speech is False
    assert recognizer.predict(silent_file).speech is False
    assert timeline.prediction.emotion is None and timeline.prediction.guess.emotion in LABELS  # a guess, named so
    assert recognizer.predict(voiced(2.0), SR).speech is True


def test_predict_json_says_no_speech_and_keeps_the_guess_as_a_guess(capsys, tiny_model_file, silent_file):
    code, out, err = run(capsys, "predict", silent_file, "--json", "--model", tiny_model_file)
    assert code == 0 and err == ""
    record = json.loads(out)
    assert record["speech"] is False and record["emotion"] is None
    assert record["confidence"] is None and record["probabilities"] is None
    guess = record["guess"]
    assert guess["emotion"] in LABELS and list(guess["probabilities"]) == list(LABELS)
    # the text output as before
    code, out, _ = run(capsys, "predict", silent_file, "--model", tiny_model_file)
    assert code == 0 and "NO SPEECH" in out and f"guess on the non-speech audio: {guess['emotion']}" in out


def test_the_http_answer_says_no_speech(tiny_model_file, silent_file):
    pytest.importorskip("fastapi", reason="the service needs the serve extra")
    pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
    from fastapi.testclient import TestClient

    from emotionnet.serving import ServeSettings, create_app
    from emotionnet.serving.model import ServedModel

    app = create_app(ServeSettings(), ServedModel(load_model(tiny_model_file)))
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:  # a keyless service answers loopback names
        answer = client.post("/v1/predict", content=silent_file.read_bytes())
        speech = client.post("/v1/predict", content=write_wav(silent_file.parent / "v.wav", voiced(2.0)).read_bytes())
    assert answer.status_code == 200
    body = answer.json()
    assert body["speech"] is False and body["emotion"] is None and body["guess"]["emotion"] in LABELS
    assert speech.json()["speech"] is True and speech.json()["emotion"] in LABELS


def test_batch_rows_say_no_speech_local_and_as_ray_calls_them(tiny_model_file, silent_file, tmp_path):
    import pyarrow as pa

    voice = write_wav(tmp_path / "voice.wav", voiced(2.0))
    predictor = BatchPredictor(str(tiny_model_file))
    silent, spoken = predictor.predict_paths([str(silent_file), str(voice)])
    assert silent["speech"] is False and silent["emotion"] is None and silent["confidence"] is None
    assert sum(silent[f"p_{label}"] for label in LABELS) == pytest.approx(1.0, abs=1e-5)  # the guess
    assert spoken["speech"] is True and spoken["emotion"] in LABELS
    # Ray Data's map_batches calls the predictor with a table: the same column
    table = predictor(pa.table({"path": [str(silent_file), str(voice)]}))
    assert table.column("speech").to_pylist() == [False, True]
    assert table.column("emotion").to_pylist()[0] is None
    # and the local engine writes it
    assert main(["batch", str(silent_file), str(voice), "--out", str(tmp_path / "r.parquet"), "--workers", "1",
                 "--model", str(tiny_model_file)]) == 0
    rows = {Path(r["path"]).name: r for r in read_results(tmp_path / "r.parquet").to_pylist()}
    assert rows["sil.wav"]["speech"] is False and rows["sil.wav"]["emotion"] is None
    assert rows["voice.wav"]["speech"] is True


# --- 2. predict --json: one line per input file, failed ones included, in input order -------------

def test_predict_json_writes_a_line_for_every_input_in_order(capsys, tiny_model_file, tmp_path):
    good = write_wav(tmp_path / "mixed" / "a.wav", voiced(1.5))
    bad = tmp_path / "mixed" / "b.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVE nothing")
    later = write_wav(tmp_path / "z.wav", voiced(1.0, seed=3))
    (tmp_path / "empty").mkdir()
    code, out, err = run(capsys, "predict", tmp_path / "mixed", tmp_path / "missing.wav", tmp_path / "empty", later,
                         "--json", "--model", tiny_model_file)
    assert code == 2
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["path"] for r in records] == [str(good), str(bad), str(tmp_path / "missing.wav"),
                                            str(tmp_path / "empty"), str(later)]
    assert records[0]["emotion"] in LABELS and records[4]["emotion"] in LABELS
    for record in records[1:4]:
        assert set(record) == {"path", "error"} and set(record["error"]) == {"code", "message"}
        assert record["error"]["message"] in err  # still on stderr for people
    assert records[1]["error"]["code"] == "bad_audio" and "not found" in records[2]["error"]["message"]
    assert records[3]["error"]["code"] == "no_audio_files"


# --- 3. batch: files keyed by resolved path, failures named, exit code from the output --------------

def test_batch_skips_the_same_files_under_other_spellings(capsys, tiny_model_file, tmp_path, monkeypatch):
    work = tmp_path / "work"
    for i in range(3):
        write_wav(work / "batchin" / f"c{i}.wav", voiced(1.0, seed=i))
    (work / "batchin" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE nothing")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results.parquet"
    common = ["--out", str(out), "--workers", "1", "--model", str(tiny_model_file)]
    code, _, err = run(capsys, "batch", "work/batchin", *common)
    assert code == 2
    assert "1 file has an error row" in err and "broken.wav" in err
    monkeypatch.chdir(work)
    for spelling in ("batchin", "./batchin/../batchin", str(work / "batchin")):
        code, _, err = run(capsys, "batch", spelling, *common)
        assert code == 2, spelling  # the output still holds the error row
        assert "0 scored" in err and "4 already in" in err and "broken.wav" in err
    rows = read_results(out).to_pylist()
    assert len(rows) == 4
    assert all(Path(r["path"]).is_absolute() for r in rows)


def test_batch_names_the_first_failed_files_and_counts_the_rest():
    from emotionnet.cli.batch import failed_files_line

    line = failed_files_line([f"/d/f{i}.wav" for i in range(8)], "out.parquet", shown=3)
    assert "8 files have an error row in out.parquet" in line
    assert "/d/f0.wav, /d/f1.wav, /d/f2.wav and 5 more" in line


def test_batch_exit_is_zero_when_the_output_holds_no_error_rows(capsys, tiny_model_file, tmp_path):
    write_wav(tmp_path / "in" / "a.wav", voiced(1.0))
    argv = ["batch", tmp_path / "in", "--out", tmp_path / "r.parquet", "--workers", "1", "--model", tiny_model_file]
    assert run(capsys, *argv)[0] == 0
    assert run(capsys, *argv)[0] == 0


# --- 4. one answer per window ------------------------------------------------------------------------

def test_a_complete_streamed_window_is_predicts_answer_even_smoothed(tiny_speaker_model_file):
    """The default engine, smoothing on, on a speaker-normalised model as shipped."""
    recognizer = load_model(tiny_speaker_model_file)
    audio = voiced(6.0, seed=3)
    results = list(StreamEngine(recognizer).run(ArraySource(audio, block_seconds=0.37)))
    complete = [r for r in results if not r.partial]
    assert [r.time for r in results if r.partial] == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])
    assert complete[0].time == pytest.approx(3.0)
    for result in complete:
        start, end = round(result.start * SR), round(result.time * SR)
        expected = recognizer.predict(audio[start:end], SR).probabilities
        assert result.probabilities == pytest.approx(expected, abs=1e-6)
    # the first complete window is not smoothed with the partial ones before it
    assert complete[0].prediction.probabilities == pytest.approx(complete[0].probabilities, abs=1e-9)
    for result in results:
        if result.partial:  # a partial window shows its own answer, flagged
            assert result.prediction.probabilities == pytest.approx(result.probabilities)
            assert result.to_dict()["partial"] is True


def test_listen_input_closes_with_predicts_summary(capsys, tiny_model_file, tmp_path):
    path = write_wav(tmp_path / "talk.wav", voiced(4.0, seed=2))
    code, predicted, _ = run(capsys, "predict", path, "--model", tiny_model_file)
    assert code == 0 and predicted.endswith("\n\nmodel: tiny.safetensors\n")
    predicted = predicted.split("\n\nmodel: ")[0]  # listen's header names the model
    code, out, _ = run(capsys, "listen", "--input", path, "--fast", "--model", tiny_model_file)
    assert code == 0
    assert predicted.strip() in out
    code, _, err = run(capsys, "listen", "--input", path, "--fast", "--json", "--model", tiny_model_file)
    assert code == 0 and predicted.strip() in err


def test_listen_agrees_with_predict_on_the_shipped_clip(capsys):
    clip = REPO / "emotionnet" / "assets" / "speech.wav"
    code, predicted, _ = run(capsys, "predict", clip, "--model", "fast")
    assert code == 0 and predicted.splitlines()[1].split()[0] == "happy"
    predicted = predicted.split("\n\nmodel: ")[0]  # listen's header names the model
    code, out, _ = run(capsys, "listen", "--input", clip, "--fast", "--model", "fast")
    assert code == 0
    closing = out[out.index("the whole file"):]
    assert predicted.strip() in closing and closing.splitlines()[2].split()[0] == "happy"
    lines = [line for line in out.splitlines() if line.strip().startswith("3.0 s")]
    assert lines and "happy" in lines[0]  # the first complete window: predict's 0-3 s window


# --- 6. smaller ----------------------------------------------------------------------------------------

def test_times_are_whole_milliseconds(tiny_model_file):
    timeline = load_model(tiny_model_file).predict_timeline(voiced(4.31, seed=1), SR)
    assert [s.start for s in timeline.segments] == [0.0, 1.31]
    assert timeline.segments[-1].end == 4.31


def test_predict_no_timeline(capsys, tiny_model_file, tmp_path):
    path = write_wav(tmp_path / "long.wav", voiced(7.0))
    _, out, _ = run(capsys, "predict", path, "--json", "--model", tiny_model_file)
    assert "segments" in json.loads(out)
    code, out, _ = run(capsys, "predict", path, "--json", "--no-timeline", "--model", tiny_model_file)
    assert code == 0 and "segments" not in json.loads(out)
    code, out, _ = run(capsys, "predict", path, "--no-timeline", "--model", tiny_model_file)
    assert code == 0 and "timeline:" not in out


def test_a_truncated_wav_is_called_truncated(capsys, tiny_model_file, tmp_path):
    whole = write_wav(tmp_path / "whole.wav", voiced(3.0))
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:1000])
    code, _, err = run(capsys, "predict", cut, "--model", tiny_model_file)
    assert code == 2 and "truncated" in err and "too short" not in err and "3.00 s" in err


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs sox (apt-get install sox)")
def test_the_issues_sox_silence(capsys, tiny_model_file, tmp_path):
    path = tmp_path / "sil.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "trim", "0", "2"], check=True)
    code, out, _ = run(capsys, "predict", path, "--json", "--model", tiny_model_file)
    record = json.loads(out)
    assert code == 0 and record["speech"] is False and record["emotion"] is None


# --- 5. docs true to the code ------------------------------------------------------------------------

def test_the_readme_links_point_at_files_in_the_repository():
    import re

    readme = (REPO / "README.md").read_text()
    assert "DESIGN.md" not in readme  # not in the repository: docs/design.md is
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert "docs/design.md" in links and "emotionnet/assets/MODEL_CARD.md" in links
    for link in links:
        if "://" not in link:
            assert (REPO / link).is_file(), link


def test_pytest_says_why_tests_skip_without_extra_options():
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+")

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "-ra" in config["addopts"].split()


def test_help_texts_match_the_shipped_model(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "more accurate with the shipped" not in text  # the README: the shipped model needs no context
    assert "--no-timeline" in text and '"guess"' in text
