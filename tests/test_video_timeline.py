"""A video's voice, face and fused answers per window and for the file (emotionnet/inference/video_timeline.py).

The face side here is a scorer that reads each frame's colour (red: angry, blue: sad, grey: no face):
it stands in for a face model so that the alignment of frames to windows can be checked exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_tiny_model_file

from benchmarks.common import write_video
from emotionnet import load_model
from emotionnet.evaluation.signals import speech_like
from emotionnet.fusion import fuse
from emotionnet.inference.video_timeline import predict_video
from emotionnet.labels import LABELS

ANGRY, SAD = LABELS.index("angry"), LABELS.index("sad")


def red_then_blue(t: float) -> tuple[int, int, int]:
    return (255, 0, 0) if t < 3.0 else (0, 0, 255)


def sure_of(index: int) -> np.ndarray:
    return np.eye(6)[index] * 0.9 + 0.1 / 6


def faces_by_colour(frames):
    """Red frame: an angry face; blue: a sad one; anything else: no face."""
    answers = []
    for frame in frames:
        r, _, b = frame[frame.shape[0] // 2, frame.shape[1] // 2].astype(int)
        answers.append(sure_of(ANGRY) if r > 200 and b < 50 else sure_of(SAD) if b > 200 and r < 50 else None)
    return answers


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    return load_model(make_tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.safetensors"))


def talk(path, colour_at=red_then_blue, audio=True, seconds=6.0):
    voice = speech_like(seconds, sample_rate=48_000) if audio else None
    return write_video(path, seconds, audio=voice, colour_at=colour_at)


def test_voice_face_and_fused_per_window_and_for_the_file(tmp_path, recognizer):
    result = predict_video(recognizer, talk(tmp_path / "talk.mp4"), faces_by_colour, fps=5, window=2.0, hop=1.0)
    data = result.to_dict()
    assert set(data) == {"path", "duration", "emotion", "confidence", "probabilities", "voice", "face", "segments"}
    assert data["duration"] == pytest.approx(6.0, abs=0.05)
    assert data["face"]["frames"] == 30 and data["face"]["frames_with_face"] == 30
    assert data["voice"]["speech"] is True
    voice_probs = np.array([data["voice"]["probabilities"][label] for label in LABELS])
    face_probs = (sure_of(ANGRY) + sure_of(SAD)) / 2  # half the frames each
    np.testing.assert_allclose([data["probabilities"][label] for label in LABELS], fuse(voice_probs, face_probs))

    assert len(data["segments"]) >= 4
    for segment in data["segments"]:
        face = segment["face"]
        assert face["frames"] == pytest.approx((segment["end"] - segment["start"]) * 5, abs=1)
        if segment["end"] <= 3.0:
            assert face["emotion"] == "angry" and face["confidence"] == pytest.approx(0.9 + 0.1 / 6)
        elif segment["start"] >= 3.0:
            assert face["emotion"] == "sad"
        voice = np.array([segment["voice"]["probabilities"][label] for label in LABELS])
        window_face = np.array([face["probabilities"][label] for label in LABELS])
        assert segment["probabilities"] == pytest.approx(dict(zip(LABELS, fuse(voice, window_face))))


def test_no_audio_track_answers_with_the_face(tmp_path, recognizer):
    data = predict_video(recognizer, talk(tmp_path / "mute.mp4", audio=False), faces_by_colour,
                         window=2.0, hop=1.0).to_dict()
    assert data["voice"]["speech"] is False and data["voice"]["emotion"] is None
    assert data["probabilities"] == pytest.approx(data["face"]["probabilities"])
    assert [s["face"]["emotion"] for s in data["segments"]][:2] == ["angry", "angry"]
    assert data["segments"][-1]["face"]["emotion"] == "sad"
    assert data["segments"][-1]["end"] == pytest.approx(6.0, abs=0.05)


def test_no_face_answers_with_the_voice(tmp_path, recognizer):
    grey = talk(tmp_path / "grey.webm", colour_at=lambda t: (128, 128, 128))
    data = predict_video(recognizer, grey, faces_by_colour).to_dict()
    assert data["face"]["face"] is False and data["face"]["frames"] > 0 and data["face"]["frames_with_face"] == 0
    assert data["emotion"] == data["voice"]["emotion"]
    assert data["probabilities"] == pytest.approx(data["voice"]["probabilities"])
    without_scorer = predict_video(recognizer, grey).to_dict()
    assert without_scorer["face"]["frames"] == 0 and without_scorer["emotion"] == data["emotion"]


def test_audio_the_voice_cannot_use_leaves_the_face(tmp_path, recognizer):
    short = write_video(tmp_path / "blink.mkv", 0.2, audio=speech_like(0.2, sample_rate=48_000),
                        colour_at=lambda t: (255, 0, 0))
    data = predict_video(recognizer, short, faces_by_colour).to_dict()
    assert "too short" in data["voice"]["error"]
    assert data["emotion"] == "angry"


def test_a_scorer_that_miscounts_is_an_error(tmp_path, recognizer):
    with pytest.raises(ValueError, match="face_scorer answered"):
        predict_video(recognizer, talk(tmp_path / "t.mp4", seconds=1.0), lambda frames: [None])


@pytest.mark.corpus
@pytest.mark.slow
def test_crema_d_videos_end_to_end(shared_data):
    """The six real clips through the shipped voice model (the face model is not in yet: no scorer)."""
    folder = shared_data / "CREMA-D-video"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (see ../shared/README.md)")
    recognizer = load_model("fast")
    for path in sorted(folder.glob("*.flv")):
        data = predict_video(recognizer, path).to_dict()
        assert data["voice"]["speech"] is True and data["emotion"] == data["voice"]["emotion"], path.name
        assert 1.8 < data["duration"] < 2.5
