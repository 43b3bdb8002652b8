"""`emotionnet batch` with images and videos beside audio (issues 28 item 3, 29 item 5): one row per file in
one Parquet schema, told by content (on Ray: tests/test_batch.py, beside its Ray session). Pictures and the
video are made here."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from conftest import voiced, write_wav
from PIL import Image

from benchmarks.common import write_video
from emotionnet import LABELS, load_model
from emotionnet.batch import COLUMNS, BatchPredictor, read_results
from emotionnet.cli.main import main


def crop_png(seed: int = 3) -> bytes:
    """A small tight grey picture, as FER2013's 48x48 faces are: scored as one face."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (48, 48), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mixed")
    write_wav(folder / "speech.wav", voiced(2.0, seed=1))
    (folder / "face.png").write_bytes(crop_png())
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff" + b"not a jpeg" * 8)
    write_video(folder / "talk.mp4", 3.0, audio=voiced(3.0, sample_rate=48_000), colour_at=lambda t: (90, 90, 90))
    return folder


def by_name(out) -> dict[str, dict]:
    return {row["path"].rsplit("/", 1)[-1]: row for row in read_results(out).to_pylist()}


def check_image_row(row: dict, faces) -> None:
    expected = faces.predict(crop_png())
    assert (row["media"], row["face"], row["n_faces"], row["error"]) == ("image", True, 1, None)
    assert row["emotion"] == expected.emotion and row["duration"] is None and row["speech"] is None
    assert [row[f"p_{label}"] for label in LABELS] == pytest.approx([expected.probabilities[k] for k in LABELS])


@pytest.mark.slow  # a spawned worker process: half a minute on a loaded 2-core machine
def test_a_mixed_folder_gives_a_row_per_file_and_the_bad_image_an_error_row(mixed, tmp_path, tiny_model_file,
                                                                            tiny_face_model_file, capsys):
    out = tmp_path / "results.parquet"
    code = main(["batch", str(mixed), "--out", str(out), "--model", str(tiny_model_file),
                 "--face-model", str(tiny_face_model_file), "--workers", "1"])
    assert code == 2 and "bad.jpg" in capsys.readouterr().err
    assert read_results(out).column_names == COLUMNS
    rows = by_name(out)
    assert set(rows) == {"speech.wav", "face.png", "bad.jpg", "talk.mp4"}
    bad = rows["bad.jpg"]
    assert (bad["media"], bad["error_kind"], bad["emotion"]) == ("image", "image", None) and "bad.jpg" in bad["error"]
    check_image_row(rows["face.png"], load_model(tiny_face_model_file))
    speech = rows["speech.wav"]
    assert (speech["media"], speech["error"], speech["n_faces"], speech["face"]) == ("audio", None, None, None)
    assert speech["emotion"] in LABELS
    video = rows["talk.mp4"]
    assert (video["media"], video["error"], video["speech"], video["face"]) == ("video", None, True, False)
    assert abs(video["duration"] - 3.0) < 0.2
    # grey frames hold no face: the fused answer is the voice's, the face columns are null
    assert video["voice_emotion"] in LABELS and video["emotion"] == video["voice_emotion"]
    assert video["face_emotion"] is None and video["face_confidence"] is None
    assert math.isclose(sum(video[f"p_{label}"] for label in LABELS), 1.0, abs_tol=1e-3)


def test_the_predictor_loads_the_face_model_once_and_only_for_images_and_videos(mixed, tiny_model_file,
                                                                                tiny_face_model_file):
    predictor = BatchPredictor(str(tiny_model_file), face_model=str(tiny_face_model_file))
    predictor.predict_paths([str(mixed / "speech.wav")])
    assert predictor._faces is None
    rows = predictor.predict_paths([str(mixed / "face.png"), str(mixed / "speech.wav")])
    faces = predictor._faces
    predictor.predict_paths([str(mixed / "face.png")])
    assert predictor._faces is faces and [r["media"] for r in rows] == ["image", "audio"]
    with pytest.raises(ValueError, match="reads audio"):
        BatchPredictor(str(tiny_model_file), face_model=str(tiny_model_file)).predict_paths([str(mixed / "face.png")])
