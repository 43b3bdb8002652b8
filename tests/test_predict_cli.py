"""`emotionnet predict`: text and JSON output, folders, bad files, long files, bad model files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import REPO, cli_env, voiced, write_wav

from emotionnet import LABELS, load_audio
from emotionnet.cli.main import main

SR = 16_000


@pytest.fixture
def clips(tmp_path) -> Path:
    """A folder with two WAVs, a FLAC in a subfolder and a file that is not audio."""
    folder = tmp_path / "clips"
    write_wav(folder / "b.wav", voiced(2.0, seed=1))
    write_wav(folder / "a.wav", voiced(1.5, f0=200, seed=2))
    write_wav(folder / "more" / "c.flac", voiced(2.5, f0=120, seed=3), format="FLAC")
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.fixture
def long_file(tmp_path) -> Path:
    """10 s: 3 s of speech-like audio, 4 s of silence, 3 s of speech-like audio."""
    audio = np.concatenate([voiced(3.0, seed=4), np.zeros(4 * SR, np.float32), voiced(3.0, seed=5)])
    return write_wav(tmp_path / "long.wav", audio)


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_table_output(capsys, clips, tiny_model_file):
    code, out, err = run(capsys, clips / "a.wav", "--model", tiny_model_file)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"{clips / 'a.wav'}  (1.50 s)"
    emotion, confidence = lines[1].split()
    assert emotion in LABELS and 0 < float(confidence) <= 1
    bars = lines[2:8]
    assert [line.split()[0] for line in bars] == list(LABELS)
    for line in bars:
        label, bar, prob = line.split()
        assert len(bar) == 20 and set(bar) <= set("█░#.")
        assert 0 <= float(prob) <= 1
    assert sum(float(line.split()[-1]) for line in bars) == pytest.approx(1.0, abs=0.04)
    assert "timeline" not in out  # shorter than one window


def test_json_lines(capsys, clips, tiny_model_file):
    code, out, err = run(capsys, clips / "a.wav", clips / "b.wav", "--json", "--model", tiny_model_file)
    assert code == 0 and err == ""
    records = json_lines(out)
    assert [r["path"] for r in records] == [str(clips / "a.wav"), str(clips / "b.wav")]
    for record in records:
        assert set(record) == {"path", "duration", "speech", "emotion", "confidence", "probabilities"}
        assert record["speech"] is True
        assert list(record["probabilities"]) == list(LABELS)
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert record["emotion"] == max(record["probabilities"], key=record["probabilities"].get)
        assert record["confidence"] == record["probabilities"][record["emotion"]]
    assert records[0]["duration"] == pytest.approx(1.5)


def test_a_directory_means_every_audio_file_under_it(capsys, clips, tiny_model_file):
    code, out, err = run(capsys, clips, "--json", "--model", tiny_model_file)
    assert code == 0 and err == ""
    paths = [r["path"] for r in json_lines(out)]
    assert paths == [str(clips / "a.wav"), str(clips / "b.wav"), str(clips / "more" / "c.flac")]


def test_an_empty_directory_is_a_failed_input(capsys, clips, tmp_path, tiny_model_file):
    (tmp_path / "nothing").mkdir()
    code, out, err = run(capsys, tmp_path / "nothing", clips / "a.wav", "--json", "--model", tiny_model_file)
    assert code == 2
    records = json_lines(out)  # one line per input, the empty folder's an error (issue 19)
    assert [r["path"] for r in records] == [str(tmp_path / "nothing"), str(clips / "a.wav")]
    assert records[0]["error"]["message"] == "no audio, image or video files in this folder"
    assert err == f"emotionnet: error: {tmp_path / 'nothing'}: no audio, image or video files in this folder\n"


def test_bad_files_are_reported_and_the_others_predicted(capsys, clips, tmp_path, tiny_model_file):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    missing = tmp_path / "missing.wav"
    code, out, err = run(capsys, corrupt, missing, clips / "b.wav", "--json", "--model", tiny_model_file)
    assert code == 2
    records = json_lines(out)  # failed files get their line too, in input order (issue 19)
    assert [r["path"] for r in records] == [str(corrupt), str(missing), str(clips / "b.wav")]
    assert [set(r) for r in records[:2]] == [{"path", "error"}] * 2
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"emotionnet: error: {corrupt}: unreadable or unsupported audio")
    assert lines[1] == f"emotionnet: error: {missing}: file not found"
    # the same in the text format
    code, out, err = run(capsys, corrupt, missing, clips / "b.wav", "--model", tiny_model_file)
    assert code == 2 and out.startswith(str(clips / "b.wav")) and len(err.splitlines()) == 2


def test_a_long_file_has_a_timeline_with_the_silent_gap(capsys, long_file, tiny_model_file):
    code, out, err = run(capsys, long_file, "--json", "--model", tiny_model_file)
    assert code == 0 and err == ""
    (record,) = json_lines(out)
    assert record["duration"] == pytest.approx(10.0)
    segments = record["segments"]
    assert len(segments) > 1
    assert segments[0]["start"] == 0.0 and segments[-1]["end"] == pytest.approx(10.0)
    for s in segments:
        assert set(s) == {"start", "end", "speech", "emotion", "confidence", "probabilities"}
        inside_gap = s["start"] >= 3.0 and s["end"] <= 7.0
        if inside_gap:
            assert s["speech"] is False
            assert s["emotion"] is None and s["confidence"] is None and s["probabilities"] is None
        if s["speech"]:
            assert s["emotion"] in LABELS and list(s["probabilities"]) == list(LABELS)
    assert any(s["start"] >= 3.0 and s["end"] <= 7.0 for s in segments), "no window fell inside the gap"
    assert segments[0]["speech"] and segments[-1]["speech"]
    # the overall answer averages the speech windows only
    speech = [s for s in segments if s["speech"]]
    mean = {label: np.mean([s["probabilities"][label] for s in speech]) for label in LABELS}
    for label in LABELS:
        assert record["probabilities"][label] == pytest.approx(mean[label], abs=1e-5)

    code, out, err = run(capsys, long_file, "--model", tiny_model_file)
    assert code == 0
    timeline = out.split("timeline:\n")[1].split("\n\nmodel: ")[0].splitlines()  # the last line names the model
    assert len(timeline) == len(segments)
    assert any(line.endswith("(no speech)") for line in timeline)


def test_window_and_hop(capsys, long_file, tiny_model_file):
    code, out, _ = run(capsys, long_file, "--json", "--window", "2", "--hop", "2", "--model", tiny_model_file)
    assert code == 0
    starts = [s["start"] for s in json_lines(out)[0]["segments"]]
    assert starts == [0.0, 2.0, 4.0, 6.0, 8.0]
    code, _, err = run(capsys, long_file, "--hop", "0", "--model", tiny_model_file)
    assert code == 1 and err.startswith("emotionnet: error: hop must be from 0.1 s")


def test_max_seconds_fails_long_files_only(capsys, clips, long_file, tiny_model_file):
    code, out, err = run(capsys, long_file, clips / "a.wav", "--json", "--max-seconds", "5", "--model", tiny_model_file)
    assert code == 2
    records = json_lines(out)
    assert [r["path"] for r in records] == [str(long_file), str(clips / "a.wav")]
    assert records[0]["error"]["code"] == "audio_too_long"
    assert err.startswith(f"emotionnet: error: {long_file}: too long (10.0 s; the limit is 5 s)")


@pytest.mark.parametrize("kind", ["text", "truncated", "foreign"])
def test_a_wrong_model_file_is_one_clear_error(capsys, clips, tmp_path, tiny_model_file, kind):
    bad = tmp_path / "model.safetensors"
    if kind == "text":
        bad.write_text("this is not a model\n")
    elif kind == "truncated":
        bad.write_bytes(tiny_model_file.read_bytes()[: tiny_model_file.stat().st_size // 2])
    else:
        from safetensors.numpy import save_file
        save_file({"weight": np.zeros(3, np.float32)}, str(bad))
    code, out, err = run(capsys, clips / "a.wav", "--model", bad)
    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(f"emotionnet: error: {bad}: ")
    assert "(pass a model file written by 'emotionnet train')" in err


def test_a_missing_model_file(capsys, clips, tmp_path):
    code, _, err = run(capsys, clips / "a.wav", "--model", tmp_path / "nope.safetensors")
    assert code == 1 and "model file not found" in err and len(err.splitlines()) == 1


def test_usage_errors_exit_1(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict"])
    assert info.value.code == 1
    assert capsys.readouterr().err.startswith("emotionnet: error: ")


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "emotionnet predict recordings/ --json" in out


def test_the_packaged_speech_clip(capsys, tiny_model_file):
    clip = Path(str(resources.files("emotionnet") / "assets" / "speech.wav"))
    assert clip.is_file()
    assert clip.stat().st_size < 150_000
    code, out, err = run(capsys, clip, "--json", "--model", tiny_model_file)
    assert code == 0 and err == ""
    assert 2.0 < json_lines(out)[0]["duration"] < 5.0


def test_subprocess_python_m_emotionnet(clips, tiny_model_file):
    env = cli_env(PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(
        [sys.executable, "-m", "emotionnet", "predict", str(clips / "a.wav"), str(clips / "none.wav"),
         "--json", "--model", str(tiny_model_file)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120,
    )
    assert done.returncode == 2
    record, failed = json_lines(done.stdout)
    assert record["path"] == str(clips / "a.wav") and record["emotion"] in LABELS
    assert failed == {"path": str(clips / "none.wav"),
                      "error": {"code": "not_found", "message": f"{clips / 'none.wav'}: file not found"}}
    assert done.stderr == f"emotionnet: error: {clips / 'none.wav'}: file not found\n"


def test_the_shipped_model_predicts_the_packaged_clip(capsys):
    """The README's first command: the CLI's line is the library's answer, and it is self-consistent."""
    from emotionnet import load_model

    clip = resources.files("emotionnet") / "assets" / "speech.wav"
    code, out, err = run(capsys, clip, "--json")
    assert code == 0 and err == ""
    (line,) = json_lines(out)
    (expected,) = load_model().predict_files([str(clip)])
    assert line == json.loads(json.dumps(expected.to_dict()))
    assert line["duration"] == pytest.approx(soundfile.info(str(clip)).duration, abs=1e-3)
    probabilities = line["probabilities"]
    assert list(probabilities) == list(LABELS) and sum(probabilities.values()) == pytest.approx(1.0)
    assert line["emotion"] == max(probabilities, key=probabilities.get)
    assert line["confidence"] == max(probabilities.values())
    # 3.41 s is longer than the 3 s window by less than a quarter window: one answer (issue 31), from
    # the window centred on the clip (0.2-3.2 s), exactly what that cut scored alone answers.
    assert "segments" not in line
    audio = load_audio(str(clip))
    alone = load_model().predict(audio[3_200:3_200 + 48_000], 16_000)
    assert probabilities == pytest.approx(alone.probabilities, abs=1e-6)


def test_same_speaker_reads_each_file_against_all_of_them(capsys, tmp_path, tiny_speaker_model_file):
    loud = write_wav(tmp_path / "loud.wav", voiced(2.0, seed=1))
    soft = write_wav(tmp_path / "soft.wav", 0.5 * voiced(2.0, seed=1))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")

    def probabilities(*extra) -> list[list[float]]:
        code, out, err = run(capsys, loud, bad, soft, "--json", "--model", tiny_speaker_model_file, *extra)
        assert code == 2 and "bad.wav" in err  # a bad file is reported and the others still scored
        return [list(line["probabilities"].values()) for line in json_lines(out) if "error" not in line]

    alone, together = probabilities(), probabilities("--same-speaker")
    # Alone, the 6 dB quieter copy looks like the original; read together, the levels differ.
    assert np.abs(np.subtract(*together)).max() > 10 * np.abs(np.subtract(*alone)).max()


# --- issue 13 ------------------------------------------------------------------------------------


def test_threads_default_to_one_and_can_be_set(capsys, clips, tiny_model_file):
    import torch

    before = torch.get_num_threads()
    try:
        assert run(capsys, clips / "a.wav", "--model", tiny_model_file)[0] == 0
        assert torch.get_num_threads() == 1  # torch's default (all cores) is 5-11x slower on a busy machine
        assert run(capsys, clips / "a.wav", "--model", tiny_model_file, "--threads", "2")[0] == 0
        assert torch.get_num_threads() == 2
        code, _, err = run(capsys, clips / "a.wav", "--model", tiny_model_file, "--threads", "0")
        assert code == 1 and err.startswith("emotionnet: error: --threads 0")
    finally:
        torch.set_num_threads(before)


def test_nan_is_never_printed(capsys, clips, tiny_model_file, monkeypatch):
    import torch

    from emotionnet.cli import common

    loaded = common.load_recognizer

    def nan_model(*args, **kwargs):
        recognizer = loaded(*args, **kwargs)
        recognizer._scoring.network = lambda inputs: torch.full((len(inputs), 6), float("nan"))
        return recognizer

    monkeypatch.setattr(common, "load_recognizer", nan_model)
    for mode in ([], ["--json"]):
        code, out, err = run(capsys, clips / "a.wav", clips / "b.wav", "--model", tiny_model_file, *mode)
        assert code == 2 and "NaN" not in out.replace("answered NaN", "")  # once: "confidence": NaN, exit 0
        if mode:  # JSON: the two files' error lines (issue 19)
            assert [r["error"]["code"] for r in json_lines(out)] == ["model_error"] * 2
        else:
            assert out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 2 and all("answered NaN" in line for line in lines)


def test_a_closed_pipe_ends_quietly(clips, tiny_model_file):
    # `true` exits at once, so every line predict writes meets a closed pipe (as after `| head -1`)
    command = f"{sys.executable} -m emotionnet predict {clips} --json --model {tiny_model_file} | true"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                          env=cli_env())
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_huge_sample_values_are_a_per_file_error(capsys, clips, tiny_model_file, tmp_path):
    loud = write_wav(tmp_path / "loud.wav", voiced(1.0).astype(np.float64) * 1e25, subtype="DOUBLE")
    code, out, err = run(capsys, loud, clips / "a.wav", "--model", tiny_model_file)
    assert code == 2 and "absurd sample values" in err and "nan" not in out.lower()
    assert str(clips / "a.wav") in out  # the batch goes on


def test_a_long_file_gets_a_summary(capsys, tiny_model_file, tmp_path):
    parts = [voiced(3.0, f0=100 + 30 * (k % 4), seed=k) if k % 3 else np.zeros(3 * SR, np.float32)
             for k in range(12)]  # 36 s: speech with pauses
    path = write_wav(tmp_path / "interview.wav", np.concatenate(parts))
    code, out, _ = run(capsys, path, "--model", tiny_model_file)
    assert code == 0
    assert "(the average over the whole recording)" in out
    share_line = next(line for line in out.splitlines() if "s of speech:" in line)
    shares = [float(part.split()[-1].rstrip("%")) for part in share_line.split(": ", 1)[1].split(", ")]
    assert abs(sum(shares) - 100) <= len(shares)  # rounded percentages
    assert "strongest moments:" in out
    code, out, _ = run(capsys, path, "--model", tiny_model_file, "--json")
    assert "summary" not in json.loads(out)  # the JSON lines keep their documented fields


def test_the_readme_first_command_needs_no_extra():
    """`pip install -e . && emotionnet predict emotionnet/assets/speech.wav` on the core install:
    no UI, plotting, audio-device or ONNX package is imported on the way."""
    code = ("import sys\n"
            "for name in ('streamlit', 'matplotlib', 'sounddevice', 'onnx', 'onnxruntime'):\n"
            "    sys.modules[name] = None  # an import of any of them fails, as on the core install\n"
            "from emotionnet.cli.main import main\n"
            "sys.exit(main(['predict', 'emotionnet/assets/speech.wav']))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("emotionnet/assets/speech.wav")
