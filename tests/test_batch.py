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
from conftest import ENERGY_GATE, REPO, cli_env, voiced, write_wav

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
                        load_options=ENERGY_GATE, part_rows=3)
    assert (summary.files, summary.scored, summary.failed, summary.skipped) == (7, 7, 1, 0)
    assert len(ResultsFolder(out).parts()) == 2  # written as rows gathered: chunks of 2 + 2, then 2 + 1
    check_rows(rows_by_path(out), folder, load_model(tiny_model_file))
    write_wav(folder / "new.wav", voiced(1.0, seed=11))
    again = run_batch([str(folder)], out, engine="local", workers=1, model=str(tiny_model_file),
                      load_options=ENERGY_GATE)
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
    env = cli_env()
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
    assert "voice model tiny.safetensors, face model face" in result.stderr  # which models answered
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


@pytest.mark.slow
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
        run_batch([str(folder)], out, engine="ray", workers=2, chunk=2, model=str(tiny_model_file),
                  load_options=ENERGY_GATE, part_rows=1)
    monkeypatch.setattr(ResultsFolder, "write", write)
    kept = len(rows_by_path(out))
    assert 0 < kept < 7
    summary = run_batch([str(folder)], out, engine="ray", workers=2, chunk=2, model=str(tiny_model_file),
                        load_options=ENERGY_GATE)
    assert (summary.skipped, summary.scored, summary.files) == (kept, 7 - kept, 7)
    check_rows(rows_by_path(out), folder, load_model(tiny_model_file))


@pytest.mark.slow
def test_ray_scores_an_image_row_with_the_face_model(local_ray, tiny_model_file, tiny_face_model_file, tmp_path):
    from test_batch_media import check_image_row, crop_png

    (tmp_path / "face.png").write_bytes(crop_png())
    out = tmp_path / "ray-image.parquet"
    summary = run_batch([str(tmp_path / "face.png")], out, engine="ray", workers=1, model=str(tiny_model_file),
                        load_options=ENERGY_GATE, face_model=str(tiny_face_model_file))
    assert (summary.scored, summary.failed) == (1, 0)
    [row] = read_results(out).to_pylist()
    check_image_row(row, load_model(tiny_face_model_file))


def batch_command(folder_or_inputs, out: Path, model: Path, *extra: str) -> list[str]:
    inputs = [str(p) for p in (folder_or_inputs if isinstance(folder_or_inputs, list) else [folder_or_inputs])]
    return [sys.executable, "-m", "emotionnet", "batch", *inputs, "--out", str(out), "--model", str(model), *extra]


BATCH_ENV = cli_env()


def test_two_jobs_on_one_output_lose_no_row_and_score_no_file_twice(tiny_model_file, tmp_path):
    """Issue 30 item 1: parts numbered alike by two jobs overwrote each other (1,476 of 1,700 rows kept).
    The second job waits for the first, then scores only what is still missing."""
    first, second = tmp_path / "first", tmp_path / "second"
    for i in range(12):
        write_wav(first / f"{i:02d}.wav", voiced(1.0, seed=i))
    for i in range(6):
        write_wav(second / f"{i:02d}.wav", voiced(1.0, seed=50 + i))
    out = tmp_path / "shared.parquet"
    options = ("--workers", "1", "--chunk", "1", "--part-rows", "1")
    jobs = [subprocess.Popen(batch_command(inputs, out, tiny_model_file, *options), env=BATCH_ENV, cwd=REPO,
                             stderr=subprocess.PIPE, text=True)
            for inputs in ([first], [first, second])]  # the second job's inputs hold the first's
    logs = [job.communicate(timeout=300)[1] for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0], logs
    rows = rows_by_path(out)
    assert len(rows) == 18 and all(row["error"] is None for row in rows.values())
    scored = [int(log.rsplit("files: ", 1)[1].split(" scored")[0]) for log in logs]
    assert sum(scored) == 18, logs  # every file scored once over both jobs


def write_rows(out: Path, rows: list[dict], schema=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), out / f"part-{len(list(out.iterdir())):05d}.parquet")


def test_error_rows_of_the_job_are_tried_again_and_retry_errors_tries_the_rest(tiny_model_file, folder, tmp_path):
    """Issue 30 item 2: an error the job caused (a model that did not import) was kept as the file's, forever."""
    out = tmp_path / "results.parquet"
    clip0, clip1, clip2, broken = (str(folder / n) for n in ("clip0.wav", "clip1.wav", "clip2.wav", "broken.wav"))
    from emotionnet.batch.predictor import arrow_schema

    legacy = arrow_schema().remove(arrow_schema().get_field_index("error_kind"))  # a part from before the column
    write_rows(out, [{"path": clip0, "error": f"{clip0}: scoring failed (cannot import name 'load_model' "
                                              "from 'emotionnet' (unknown location))"}], legacy)
    write_rows(out, [{"path": clip1, "error": f"{clip1}: cannot read (OSError: connection reset)",
                      "error_kind": "job"},
                     {"path": clip2, "error": f"{clip2}: unreadable or unsupported audio", "error_kind": "audio"}])
    inputs = [clip0, clip1, clip2, broken]
    summary = run_batch(inputs, out, workers=1, model=str(tiny_model_file), load_options=ENERGY_GATE)
    assert (summary.skipped, summary.scored, summary.failed) == (1, 3, 1)  # clip2's own error is kept
    rows = rows_by_path(out)  # one row per file: the rows tried again replaced the old ones
    assert rows[clip0]["error"] is None and rows[clip1]["error"] is None and rows[broken]["error_kind"] == "audio"
    assert summary.failed_paths == [clip2, broken]
    again = run_batch(inputs, out, workers=1, model=str(tiny_model_file), load_options=ENERGY_GATE, retry_errors=True)
    assert (again.skipped, again.scored, again.failed_paths) == (2, 2, [broken])
    assert rows_by_path(out)[clip2]["error"] is None


def test_a_model_that_cannot_load_is_one_line_and_exit_2_not_a_row_per_file(folder, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    assert main(["batch", str(folder), "--out", str(out), "--model", str(tmp_path / "none.safetensors")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "none.safetensors" in err
    assert not read_results(out).num_rows


def test_a_worker_that_cannot_load_the_model_stops_the_job_with_no_error_rows(folder, tmp_path):
    from emotionnet.batch.job import BatchJobError

    out = tmp_path / "results.parquet"
    with pytest.raises(BatchJobError, match="none.safetensors"):
        run_batch([str(folder)], out, workers=1, model=str(tmp_path / "none.safetensors"))
    assert not read_results(out).num_rows


def test_an_unwritable_output_is_one_line_and_exit_2_before_any_scoring(folder, tmp_path, capsys, monkeypatch):
    from emotionnet.batch import engines

    monkeypatch.setattr(engines, "run_local", lambda *a: pytest.fail("scored before the output was checked"))
    (tmp_path / "a-file").write_text("x")
    for out in ("/proc/emotionnet-x.parquet", str(tmp_path / "a-file" / "r.parquet")):
        assert main(["batch", str(folder), "--out", out]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "cannot write" in err and "Traceback" not in err


def test_a_damaged_part_and_a_stray_parquet_are_set_aside_and_the_folder_reads(tiny_model_file, folder, tmp_path):
    """Issue 30 item 10: after `truncate -s 100` of a part and a resume, pandas and read_results failed on the
    folder; a Parquet of another schema was merged as rows with a null path."""
    import pandas as pd

    out = tmp_path / "results.parquet"
    run_batch([str(folder)], out, workers=1, chunk=2, model=str(tiny_model_file), load_options=ENERGY_GATE, part_rows=2)
    damaged = ResultsFolder(out).parts()[1]
    with open(damaged, "r+b") as f:
        f.truncate(100)
    write_rows(tmp_path / "elsewhere", [{"speaker": "x", "score": 1.0}])
    (tmp_path / "elsewhere" / "part-00000.parquet").rename(out / "notes.parquet")
    summary = run_batch([str(folder)], out, workers=1, model=str(tiny_model_file), load_options=ENERGY_GATE)
    assert summary.scored == 2  # the damaged part's two files, scored again
    assert sorted(p.name for p in (out / "_set_aside").iterdir()) == sorted([damaged.name, "notes.parquet"])
    check_rows(rows_by_path(out), folder)
    table = pd.read_parquet(out)
    assert len(table) == 7 and table["path"].notna().all()


def test_batch_scores_a_long_file_in_blocks(tiny_model_file, tmp_path, monkeypatch):
    """Issue 26: only predict_files took the bounded-memory block path; batch decoded long files whole."""
    from emotionnet.inference import blocks

    path = write_wav(tmp_path / "long.wav", voiced(blocks.LONG_SECONDS + 10, seed=3))
    calls = []
    score_in_blocks = blocks.score_in_blocks
    monkeypatch.setattr(blocks, "score_in_blocks", lambda *a, **k: calls.append(a[1]) or score_in_blocks(*a, **k))
    row = BatchPredictor(str(tiny_model_file)).predict_paths([str(path)])[0]
    assert calls == [str(path)] and row["error"] is None
    assert row["duration"] == pytest.approx(blocks.LONG_SECONDS + 10, abs=0.01)


def test_list_entries_that_start_with_a_hash_or_hold_glob_characters_and_symlinks(tmp_path):
    """Issue 30 item 15: a list could not name `#x.wav`; `?` and `[` in an existing path acted as a glob;
    a symlink was reported under its target's path."""
    for name in ("#take.wav", "take[1].wav", "take1.wav", "what?.wav", "target.wav"):
        write_wav(tmp_path / name, voiced(0.5))
    (tmp_path / "link.wav").symlink_to(tmp_path / "target.wav")
    (tmp_path / "list.txt").write_text("# a comment\n\\#take.wav\n./#take.wav\n")
    files, empty = expand_inputs([str(tmp_path / "list.txt"), str(tmp_path / "take[1].wav"),
                                  str(tmp_path / "what?.wav"), str(tmp_path / "link.wav")])
    assert files == [str(tmp_path / n) for n in ("#take.wav", "take[1].wav", "what?.wav", "link.wav")]
    assert not empty


def child_pids(pid: int) -> set[int]:
    """The processes whose parent is `pid` (read from /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL])
def test_sigterm_keeps_the_rows_and_kill_9_leaves_no_worker(tiny_model_file, tmp_path, signal_number):
    """Issue 30 item 9: SIGTERM exited 143 with the pending rows lost and the workers orphaned; after
    `kill -9` of the driver its pool workers stayed alive for good. The signal goes to the driver alone,
    as `docker stop` or an OOM killer would send it."""
    folder = tmp_path / "many"
    for i in range(30):
        write_wav(folder / f"{i:02d}.wav", voiced(4.0, seed=i))
    out = tmp_path / "results.parquet"
    job = subprocess.Popen(batch_command(folder, out, tiny_model_file, "--workers", "2", "--chunk", "1",
                                         "--part-rows", "2"), env=BATCH_ENV, cwd=REPO, stderr=subprocess.PIPE,
                           start_new_session=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob("part-*.parquet")) and job.poll() is None:
            assert time.monotonic() < deadline, "no part written"
            time.sleep(0.05)
        workers = child_pids(job.pid)
        assert workers, "no worker processes"
        os.kill(job.pid, signal_number)
        job.wait(timeout=60)
        deadline = time.monotonic() + 20
        while alive(workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive(workers), "worker processes outlived the driver"
        if signal_number == signal.SIGTERM:
            assert job.returncode == 130  # as Ctrl-C: the pending rows written, then out
            assert 0 < len(rows_by_path(out)) < 30
    finally:
        for pid in alive(workers | {job.pid}):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ray_workers_import_the_package_not_a_folder_named_emotionnet_here(tiny_model_file, folder, tmp_path):
    """Issue 30 item 3: from a folder holding a folder named `emotionnet` (a `git clone`), every Ray row
    said "cannot import name 'load_model' from 'emotionnet' (unknown location)"."""
    pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'emotionnet[ray]'")
    here = tmp_path / "parent-of-clone"
    (here / "emotionnet" / "docs").mkdir(parents=True)  # a clone's root: no __init__.py
    out = tmp_path / "ray.parquet"
    args = ["batch", str(folder / "clip0.wav"), str(folder / "clip1.wav"), "--out", str(out), "--engine", "ray",
            "--workers", "1", "--model", str(tiny_model_file)]
    # the driver imports this checkout (as an installed console script would), its workers start in `here`
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from emotionnet.cli.main import main; sys.exit(main({args!r}))"
    env = {k: v for k, v in cli_env().items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code], cwd=here, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = rows_by_path(out)
    assert len(rows) == 2 and all(row["error"] is None for row in rows.values())


@pytest.mark.slow
def test_a_ray_run_without_verbose_prints_only_its_own_lines(tiny_model_file, folder, tmp_path):
    """Issue 31: a successful `batch --engine ray` printed Ray's warnings and an error-level core_worker.cc
    line; its stderr is now the job's own lines, Ray's kept for --verbose (and Ray's log files)."""
    pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install 'emotionnet[ray]'")
    out = tmp_path / "ray.parquet"
    args = ["batch", str(folder / "clip0.wav"), str(folder / "clip1.wav"), "--out", str(out), "--engine", "ray",
            "--workers", "1", "--model", str(tiny_model_file)]
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from emotionnet.cli.main import main; sys.exit(main({args!r}))"
    env = {k: v for k, v in cli_env().items() if not k.startswith("RAY_")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Ray's C++ core announces the log level it was given, once, before any of ours
    lines = [line for line in result.stderr.splitlines() if line.strip() and "Set ray log level from" not in line]
    assert lines and all(line.startswith("emotionnet: ") for line in lines), result.stderr[-3000:]
    assert len(rows_by_path(out)) == 2
