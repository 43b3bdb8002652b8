"""`emotionnet batch`: the picklable predictor, inputs, both engines, error rows, and resuming an interrupted job."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, voiced, write_wav

from emotionnet import LABELS, load_model
from emotionnet.batch import COLUMNS, BatchPredictor, ResultsFolder, read_results, run_batch
from emotionnet.batch.inputs import expand_inputs
from emotionnet.cli.main import main

SR = 16_000


@pytest.fixture
def folder(tmp_path) -> Path:
    """Six clips (one a FLAC in a subfolder) and a corrupt file."""
    root = tmp_path / "in"
    for i in range(5):
        write_wav(root / f"clip{i}.wav", voiced(1.5 + 0.25 * i, f0=120 + 15 * i, seed=i))
    write_wav(root / "sub" / "clip5.flac", voiced(2.0, seed=9), format="FLAC")
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE but then nothing")
    return root


def rows_by_path(out: Path) -> dict[str, dict]:
    rows = read_results(out).to_pylist()
    paths = [row["path"] for row in rows]
    assert len(paths) == len(set(paths)), "a file has two rows"
    return {row["path"]: row for row in rows}


def check_rows(rows: dict[str, dict], folder: Path, recognizer=None) -> None:
    assert set(rows) == {str(p) for p in folder.rglob("*") if p.is_file()}
    bad = rows.pop(str(folder / "broken.wav"))
    assert "broken.wav" in bad["error"] and bad["emotion"] is None and bad["p_sad"] is None
    for path, row in rows.items():
        probabilities = [row[f"p_{label}"] for label in LABELS]
        assert row["error"] is None and row["emotion"] == LABELS[int(np.argmax(probabilities))]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert row["confidence"] == pytest.approx(max(probabilities))
        if recognizer is not None:  # the same answer as the Python API
            assert row["emotion"] == recognizer.predict(path).emotion


def test_the_predictor_pickles_without_its_model_and_gives_one_row_per_input(tiny_model_file, folder):
    predictor = BatchPredictor(str(tiny_model_file))
    predictor.recognizer()
    copy = pickle.loads(pickle.dumps(predictor))
    assert copy._recognizer is None  # workers load their own
    paths = [str(folder / "clip0.wav"), str(folder / "broken.wav"), str(folder / "missing.wav"),
             f"file://{folder / 'clip0.wav'}", f"file://{folder / 'gone.wav'}"]  # URIs go through pyarrow.fs
    rows = copy.predict_paths(paths)
    assert [r["path"] for r in rows] == paths and all(list(r) == COLUMNS for r in rows)
    assert rows[0]["error"] is None and rows[0]["duration"] == pytest.approx(1.5)
    assert "not found" in rows[2]["error"] and rows[1]["error"] and "not found" in rows[4]["error"]
    assert [r["error_kind"] for r in rows] == [None, "audio", "audio", None, "audio"]  # the files' own faults
    assert {k: v for k, v in rows[3].items() if k != "path"} == {k: v for k, v in rows[0].items() if k != "path"}
    arrays = copy.predict_arrays([("a", voiced(2.0, sample_rate=48_000), 48_000), ("z", np.zeros(SR), SR)])
    assert arrays[0]["emotion"] == load_model(tiny_model_file).predict(voiced(2.0, sample_rate=48_000), 48_000).emotion
    assert arrays[1]["error"] is None and arrays[1]["speech"] is False and arrays[1]["emotion"] is None


def test_inputs_folders_globs_manifests_and_lists(folder, tmp_path):
    (tmp_path / "list.txt").write_text("# calls\nin/clip1.wav\n\nin/clip0.wav\n")
    (tmp_path / "manifest.csv").write_text("path,emotion\nin/clip2.wav,sad\nin/clip1.wav,happy\n")
    files, empty = expand_inputs([str(tmp_path / "list.txt"), str(tmp_path / "manifest.csv"),
                                  str(folder / "**" / "*.flac"), str(tmp_path / "nothing*"), "s3://bucket/x.wav"])
    assert files == [str(tmp_path / "in" / f"clip{i}.wav") for i in (1, 0, 2)] + [
        str(folder / "sub" / "clip5.flac"), "s3://bucket/x.wav"]
    assert empty == [str(tmp_path / "nothing*")]
    everything, _ = expand_inputs([str(folder)])
    assert len(everything) == 7
    remote, _ = expand_inputs([f"file://{tmp_path / 'list.txt'}"])  # a list on s3:// and the like
    assert remote == [f"file://{tmp_path}/in/clip1.wav", f"file://{tmp_path}/in/clip0.wav"]


def test_local_engine_scores_every_file_and_a_rerun_skips_them(tiny_model_file, folder, tmp_path):
    out = tmp_path / "results.parquet"
    summary = run_batch([str(folder)], out, engine="local", workers=2, chunk=2, model=str(tiny_model_file),
                        part_rows=3)
    assert (summary.files, summary.scored, summary.failed, summary.skipped) == (7, 7, 1, 0)
    assert len(ResultsFolder(out).parts()) == 2  # written as rows gathered: chunks of 2 + 2, then 2 + 1
    check_rows(rows_by_path(out), folder, load_model(tiny_model_file))
    write_wav(folder / "new.wav", voiced(1.0, seed=11))
    again = run_batch([str(folder)], out, engine="local", workers=1, model=str(tiny_model_file))
    assert (again.scored, again.skipped) == (1, 7)
    assert rows_by_path(out)[str(folder / "new.wav")]["emotion"] in LABELS


def test_a_killed_job_keeps_its_parts_and_the_rerun_finishes_it(tiny_model_file, tmp_path):
    """SIGKILL the command once it has written its first part; running it again completes the results."""
    folder = tmp_path / "many"
    for i in range(40):
        write_wav(folder / f"{i:02d}.wav", voiced(6.0, f0=100 + 3 * i, seed=i))
    (folder / "zz-broken.wav").write_bytes(b"not audio")
    out = tmp_path / "results.parquet"
    command = [sys.executable, "-m", "emotionnet", "batch", str(folder), "--out", str(out),
               "--workers", "1", "--chunk", "1", "--part-rows", "1", "--model", str(tiny_model_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    job = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")) and job.poll() is None:  # look, don't touch: no ResultsFolder
        assert time.monotonic() < deadline, "no part written"
        time.sleep(0.01)
    os.killpg(job.pid, signal.SIGKILL)  # the job and its worker processes, as an OOM killer or a lost node would
    job.wait()
    kept = rows_by_path(out)
    assert 0 < len(kept) < 41, "the job was not interrupted part-way"
    result = subprocess.run(command, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True, timeout=300)
    assert result.returncode == 2  # the broken file is an error row
    assert f"{41 - len(kept)} scored (1 with an error), {len(kept)} already in" in result.stderr
    rows = rows_by_path(out)
    assert len(rows) == 41 and rows[str(folder / "zz-broken.wav")]["error"]


def test_batch_command_usage_errors(tmp_path, capsys):
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "r.parquet"), "--address", "ray://x:1"]) == 1
    assert "--engine ray" in capsys.readouterr().err
    (tmp_path / "file.parquet").write_bytes(b"x")
    assert main(["batch", str(tmp_path), "--out", str(tmp_path / "file.parquet")]) == 1
    assert "is a file" in capsys.readouterr().err


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'emotionnet[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def test_ray_engine_scores_a_folder_and_resumes_after_an_interruption(local_ray, tiny_model_file, folder, tmp_path,
                                                                       monkeypatch):
    out = tmp_path / "ray.parquet"
    write = ResultsFolder.write
    written = []

    def write_then_die(self, rows):  # the driver dies after its first part, mid-job
        if written:
            raise KeyboardInterrupt
        written.append(write(self, rows))

    monkeypatch.setattr(ResultsFolder, "write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_batch([str(folder)], out, engine="ray", workers=2, chunk=2, model=str(tiny_model_file), part_rows=1)
    monkeypatch.setattr(ResultsFolder, "write", write)
    kept = len(rows_by_path(out))
    assert 0 < kept < 7
    summary = run_batch([str(folder)], out, engine="ray", workers=2, chunk=2, model=str(tiny_model_file))
    assert (summary.skipped, summary.scored, summary.files) == (kept, 7 - kept, 7)
    check_rows(rows_by_path(out), folder, load_model(tiny_model_file))
