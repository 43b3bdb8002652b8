"""`POST /v1/predict` with images and videos (issues 28 item 3, 29 item 5): told by content, their limits,
their errors, the face model loaded once at start-up. Pictures and videos are made here (Pillow, PyAV);
a real face only from ../shared/data/FER2013 (skipped without it)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import SHARED_DATA, voiced
from PIL import Image

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'emotionnet[serve]'")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")
from fastapi.testclient import TestClient  # noqa: E402

from benchmarks.common import write_video  # noqa: E402
from emotionnet import LABELS, load_model  # noqa: E402
from emotionnet.serving import ServeSettings, create_app  # noqa: E402
from emotionnet.serving.media import ServedFaces  # noqa: E402
from emotionnet.serving.model import ServedModel  # noqa: E402

pytestmark = pytest.mark.slow  # service tests (pyproject markers)

LOCAL = "http://127.0.0.1:8000"
FER_VALIDATION = SHARED_DATA / "FER2013" / "validation"


@pytest.fixture(scope="module")
def models(tiny_model_file, tiny_face_model_file):
    return load_model(tiny_model_file), load_model(tiny_face_model_file)


def client_for(models, **settings) -> TestClient:
    voice, faces = models
    return TestClient(create_app(ServeSettings(**settings), ServedModel(voice), ServedFaces(faces)),
                      raise_server_exceptions=False, base_url=LOCAL)


@pytest.fixture(scope="module")
def client(models):
    with client_for(models) as c:
        yield c


def picture(pixels: np.ndarray, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format)
    return buffer.getvalue()


def wall(width: int = 320, height: int = 240) -> np.ndarray:
    """A grey gradient: a picture with no face in it."""
    return np.tile(np.linspace(60, 200, width, dtype=np.uint8), (height, 1))


@pytest.fixture(scope="module")
def talk(tmp_path_factory) -> bytes:
    """3 s of MP4: a speech-like tone and grey frames (no face)."""
    path = tmp_path_factory.mktemp("video") / "talk.mp4"
    return write_video(path, 3.0, audio=voiced(3.0, sample_rate=48_000), colour_at=lambda t: (90, 90, 90)).read_bytes()


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]
    assert "Traceback" not in response.text


def test_an_image_without_a_face_answers_face_false(client):
    response = client.post("/v1/predict", files={"file": ("wall.jpg", picture(wall(), "JPEG"))})
    assert response.status_code == 200, response.text
    assert response.json() == {"path": "wall.jpg", "face": False, "emotion": None, "confidence": None,
                               "probabilities": None, "faces": []}


def test_a_small_face_crop_is_scored_as_one_and_matches_the_model(client, models):
    crop = np.random.default_rng(3).integers(0, 255, (48, 48), dtype=np.uint8)
    data = picture(crop, "WEBP")
    body = client.post("/v1/predict", content=data, headers={"content-type": "application/octet-stream"}).json()
    expected = models[1].predict(data).to_json(None)
    assert body["path"] is None and body["face"] is True
    assert {k: v for k, v in body.items() if k != "path"} == expected
    assert list(body["probabilities"]) == list(LABELS)


def real_face_scene() -> np.ndarray:
    """A FER2013 validation face, upscaled, in the middle of a 640x480 grey picture (skip without the corpus)."""
    if not FER_VALIDATION.is_dir():
        pytest.skip(f"FER2013 not found at {FER_VALIDATION} (see ../shared/README.md): no real face to send")
    face = np.asarray(Image.open(sorted((FER_VALIDATION / "happy").glob("*.jpg"))[0]).convert("L").resize((192, 192)))
    scene = np.full((480, 640), 128, np.uint8)
    scene[140:332, 224:416] = face
    return scene


def test_a_real_face_is_found_and_boxed(client):
    scene = real_face_scene()
    body = client.post("/v1/predict", files={"file": ("scene.png", picture(scene))}).json()
    assert body["face"] is True and len(body["faces"]) >= 1
    x, y, w, h = body["faces"][0]["box"]
    assert 180 < x + w / 2 < 460 and 100 < y + h / 2 < 380  # the box is on the pasted face


def test_a_video_answers_voice_face_and_fused(client, talk):
    response = client.post("/v1/predict?window=2&hop=1", files={"file": ("talk.mp4", talk)})
    assert response.status_code == 200, response.text
    assert response.headers["X-EmotionNet-Model"] == "tiny.safetensors, tiny-face.safetensors"  # voice, face
    body = response.json()
    assert body["path"] == "talk.mp4" and abs(body["duration"] - 3.0) < 0.2
    assert body["voice"]["speech"] is True and body["voice"]["emotion"] in LABELS
    assert body["face"]["face"] is False and body["face"]["frames"] >= 10  # grey frames: sampled, no face
    assert body["emotion"] == body["voice"]["emotion"]  # no face: the fused answer is the voice's
    assert len(body["segments"]) >= 2 and all({"voice", "face"} <= set(s) for s in body["segments"])
    without = client.post("/v1/predict?timeline=false", content=talk).json()
    assert "segments" not in without and without["emotion"] == body["emotion"]


def test_a_video_without_sound_answers_with_the_face(client, tmp_path):
    scene = np.repeat(real_face_scene()[:, :, None], 3, axis=2)
    silent = write_video(tmp_path / "face.webm", 2.0, fps=10, size=(640, 480), image_at=lambda t: scene)
    body = client.post("/v1/predict", files={"file": ("face.webm", silent.read_bytes())}).json()
    assert body["voice"]["speech"] is False and body["face"]["face"] is True
    assert body["face"]["frames_with_face"] >= 8 and body["emotion"] == body["face"]["emotion"] in LABELS


def test_bad_images_and_videos_are_400_with_their_codes(client):
    junk = client.post("/v1/predict", files={"file": ("x.jpg", b"\xff\xd8\xff" + b"not a jpeg" * 8)})
    assert_error(junk, 400, "bad_image")
    assert junk.json()["error"]["message"] == "x.jpg: not a JPEG, PNG or WebP image"  # no Python object named
    assert_error(client.post("/v1/predict", files={"file": ("x.mkv", b"\x1a\x45\xdf\xa3" + b"not a video" * 8)}),
                 400, "bad_video")
    truncated = picture(wall(), "PNG")[:200]  # a readable header, damaged pixels
    assert_error(client.post("/v1/predict", content=truncated), 400, "bad_image")


def test_images_and_videos_over_their_limits_are_413(models, talk):
    with client_for(models, max_image_megapixels=0.05, max_video_seconds=2.0) as c:
        assert_error(c.post("/v1/predict", content=picture(wall(320, 240))), 413, "image_too_large")
        assert c.post("/v1/predict", content=picture(wall(200, 200))).status_code == 200  # 0.04 MP
        assert_error(c.post("/v1/predict", content=talk), 413, "video_too_long")


def test_readiness_names_the_face_model_and_the_docs_say_what_predict_takes(client, tiny_face_model_file):
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["face_model"] == tiny_face_model_file.name
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"image/*", "video/*"} <= set(content)
    assert "bad_image" in str(spec) and "video_too_long" in str(spec) and "MP4" in spec["info"]["description"]


def test_a_voice_model_is_refused_as_the_face_model(models):
    with pytest.raises(ValueError, match="reads audio"):
        ServedFaces(models[0])
