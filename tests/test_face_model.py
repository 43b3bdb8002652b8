"""The face family: the shipped face model, images through `load_model("face")` and `emotionnet predict`,
and its resumable training recipe on a tiny generated FER2013-style folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, voiced, write_wav
from PIL import Image

from emotionnet import load_model
from emotionnet.cli.main import main
from emotionnet.errors import ImageError
from emotionnet.labels import LABELS
from emotionnet.models.names import model_path

FER = SHARED_DATA / "FER2013"
needs_fer = pytest.mark.skipif(not (FER / "validation").is_dir(), reason=f"FER2013 is not at {FER}")


@pytest.fixture(scope="module")
def faces():
    return load_model("face")


def fer_images(per_class: int) -> list[tuple[Path, str]]:
    return [(path, label) for label in LABELS
            for path in sorted((FER / "validation" / label).glob("*.jpg"))[:per_class]]


def test_the_shipped_face_model_answers_six_labels_never_surprise(faces):
    assert model_path("face").stat().st_size <= 5 * 2**20
    assert faces.labels == LABELS
    assert "surprise" in faces.metadata["labels"] and "surprise" not in faces.metadata["answers"]
    probabilities = faces.predict_faces(np.random.default_rng(0).random((5, 48, 48), dtype=np.float32))
    assert probabilities.shape == (5, 6)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)


def test_a_picture_without_a_face_is_no_face_not_an_answer(faces, tmp_path):
    wall = np.tile(np.linspace(60, 200, 640, dtype=np.uint8), (480, 1))
    prediction = faces.predict(np.stack([wall] * 3, axis=-1))
    assert not prediction.face and prediction.emotion is None
    assert prediction.to_json("wall.png") == {"path": "wall.png", "face": False, "emotion": None,
                                              "confidence": None, "probabilities": None, "faces": []}


def test_a_damaged_image_is_one_clear_error(faces, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"not really a jpeg" * 4)
    with pytest.raises(ImageError, match="bad.jpg"):
        faces.predict(bad)


@needs_fer
def test_fer2013_crops_are_read_far_above_chance(faces):
    images = fer_images(per_class=12)
    predictions = [faces.predict(path) for path, _ in images]
    assert all(p.face and p.faces[0].box == (0.0, 0.0, 48.0, 48.0) for p in predictions)  # small: taken whole
    accuracy = np.mean([p.emotion == label for p, (_, label) in zip(predictions, images)])
    assert accuracy > 0.45  # chance is 1/6


@needs_fer
def test_a_face_in_a_larger_picture_is_found_boxed_and_read_like_its_crop(faces):
    path, _ = fer_images(per_class=1)[3]  # a happy face
    face = np.asarray(Image.open(path).convert("L"))
    canvas = np.full((480, 640), 128, np.uint8)
    canvas[100:292, 300:492] = np.asarray(Image.fromarray(face).resize((192, 192), Image.BICUBIC))
    prediction = faces.predict(np.stack([canvas] * 3, axis=-1))
    assert prediction.face
    x, y, w, h = prediction.faces[0].box
    assert 300 <= x + w / 2 <= 492 and 100 <= y + h / 2 <= 292 and 60 < w < 230
    assert prediction.emotion == faces.predict(path).emotion


def test_predict_reads_images_beside_audio_in_order_and_goes_on_past_a_bad_one(tmp_path, capsys):
    Image.fromarray(np.full((300, 400, 3), 90, np.uint8)).save(tmp_path / "a_wall.png")
    (tmp_path / "b_bad.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 broken")
    write_wav(tmp_path / "c_voice.wav", voiced(1.5, seed=3))
    Image.fromarray(np.full((48, 48), 120, np.uint8)).save(tmp_path / "d_crop.jpg")  # small: taken whole
    code = main(["predict", str(tmp_path), "--json", "--model", "fast"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2
    assert [Path(line["path"]).name for line in lines] == ["a_wall.png", "b_bad.webp", "c_voice.wav", "d_crop.jpg"]
    assert lines[0]["face"] is False and lines[0]["emotion"] is None
    assert lines[1]["error"]["code"] == "bad_image"
    assert "speech" in lines[2] and "face" not in lines[2]
    assert lines[3]["face"] is True and lines[3]["emotion"] in LABELS
    assert set(lines[3]["faces"][0]) == {"box", "emotion", "confidence", "probabilities"}


def _tiny_fer(root: Path) -> Path:
    """Seven class folders of a few 48x48 images, for train/ and validation/: a recipe's plumbing, not a model."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("validation", 3)):
        for c, name in enumerate([*LABELS, "surprise"]):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 60, (48, 48)) + 25 * c  # each class a brightness: something to learn
                Image.fromarray(image.astype(np.uint8)).save(folder / f"{split}_{i}.jpg")
    return root


def test_face_training_resumes_and_exports_a_model_that_loads(tmp_path):
    from emotionnet.training.face_recipe import FaceRecipe, export, train

    data, run = _tiny_fer(tmp_path / "fer"), tmp_path / "run"
    recipe = FaceRecipe(channels=(4, 8), epochs=1, batch_size=16)
    first = train(data, run, recipe)
    assert first["epoch"] == 1
    again = train(data, run, FaceRecipe(channels=(4, 8), epochs=2, batch_size=16))  # carries on from epoch 1
    assert again["epoch"] == 2 and len(again["history"]) == 2
    assert again["schedule_changes"] == [{"after_epoch": 1, "from": 1, "to": 2}]
    with pytest.raises(SystemExit, match="another recipe"):
        train(data, run, FaceRecipe(channels=(8, 8), epochs=2, batch_size=16))
    out = tmp_path / "face.safetensors"
    export(data, run, out)
    model = load_model(out)
    assert model.labels == LABELS and 0.05 < model.temperature < 20
    assert model.predict(np.full((48, 48), 100, np.uint8)).face


CREMA_VIDEO = SHARED_DATA / "CREMA-D-video"


@pytest.mark.slow
@pytest.mark.skipif(not CREMA_VIDEO.is_dir(), reason=f"the CREMA-D videos are not at {CREMA_VIDEO}")
def test_the_six_crema_d_videos_end_to_end_with_the_shipped_face_model(capsys):
    """Six clips of one speaker, one per emotion: an end-to-end check, not a benchmark (the face model read
    4 of 6 right when this was written; the fast voice model 3, fused 3)."""
    code = main(["predict", str(CREMA_VIDEO), "--json", "--model", "fast"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0 and len(lines) == 6
    truth = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}
    for line in lines:
        assert line["face"]["frames_with_face"] == line["face"]["frames"] > 0  # a face in every sampled frame
        assert line["emotion"] in LABELS and line["voice"]["emotion"] in LABELS
    face_right = sum(line["face"]["emotion"] == truth[Path(line["path"]).stem.split("_")[2]] for line in lines)
    assert face_right >= 3  # chance is 1
