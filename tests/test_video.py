"""Video decoding with PyAV (emotionnet/video.py): audio at 16 kHz and frames at a fixed rate on one clock.

The videos are made here with PyAV (benchmarks/common.py `write_video`): a tone and coloured frames
whose change is at a known time, in each container the design names; the six CREMA-D videos are
the real fixture (skipped without ../shared/data/CREMA-D-video).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.common import VIDEO_FORMATS, write_video
from emotionnet.audio import AudioError, load_audio
from emotionnet.video import Video, VideoError, open_video

RATE = 48_000
CHANGE = 0.5  # seconds: the tone starts and the frames turn white here
FRAME_PERIOD = 1 / 25
# MP3 in AVI and FLV keeps the encoder's delay (about 23 ms at 48 kHz), and AVI's frame times lag
# a frame: the clock holds within one frame period on every container.
CLOCK_TOLERANCE = FRAME_PERIOD


def tone(seconds: float, start: float = 0.0, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * frequency * t) * (t >= start)).astype(np.float32)


def black_then_white(t: float) -> tuple[int, int, int]:
    return (255, 255, 255) if t >= CHANGE else (0, 0, 0)


def onset(audio: np.ndarray) -> float:
    return float(np.argmax(np.abs(audio) > 0.05) / 16_000)


@pytest.mark.parametrize("suffix", sorted(VIDEO_FORMATS))
def test_every_container_gives_audio_and_frames_on_one_clock(tmp_path, suffix):
    path = write_video(tmp_path / f"clip.{suffix}", 1.2, audio=tone(1.2, start=CHANGE), colour_at=black_then_white)
    video = open_video(path)
    assert video.has_audio and video.has_video
    assert video.duration == pytest.approx(1.2, abs=0.06)
    assert (video.width, video.height) == (64, 48)

    audio = video.audio()
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) / 16_000 == pytest.approx(1.2, abs=0.05)
    assert onset(audio) == pytest.approx(CHANGE, abs=CLOCK_TOLERANCE)

    frames = list(video.frames(fps=25))
    white = [frame.time for frame in frames if frame.image.mean() > 128]
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert CHANGE <= white[0] <= CHANGE + FRAME_PERIOD + CLOCK_TOLERANCE
    assert all(frame.image.mean() < 128 for frame in frames if frame.time < CHANGE)


def test_audio_is_the_tone_at_16k_mono(tmp_path):
    path = write_video(tmp_path / "tone.mkv", 1.0, audio=tone(1.0, frequency=1000.0))
    audio = open_video(path).audio()
    spectrum = np.abs(np.fft.rfft(audio[1600:-1600]))
    peak = np.fft.rfftfreq(len(audio) - 3200, 1 / 16_000)[spectrum.argmax()]
    assert peak == pytest.approx(1000.0, abs=5.0)
    assert np.sqrt(np.mean(audio[1600:-1600] ** 2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.05)


def test_frames_are_sampled_at_the_rate_asked(tmp_path):
    path = write_video(tmp_path / "two.mp4", 2.0, fps=30)
    times = [frame.time for frame in open_video(path).frames(fps=5)]
    assert len(times) == 10
    np.testing.assert_allclose(times, np.arange(10) * 0.2, atol=1 / 30)
    assert [frame.time for frame in open_video(path).frames(fps=60)] == pytest.approx(np.arange(60) / 30)


def test_skipping_deblocking_keeps_the_frames_and_their_times(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 1.2, colour_at=black_then_white)
    plain, fast = list(open_video(path).frames(fps=5)), list(open_video(path).frames(fps=5, skip_deblocking=True))
    assert [f.time for f in fast] == [f.time for f in plain]
    assert all(np.abs(a.image.astype(int) - b.image.astype(int)).mean() < 8 for a, b in zip(plain, fast))


def test_late_audio_track_keeps_the_clock(tmp_path):
    """A track that starts 0.3 s after the video is preceded by silence, not shifted to 0."""
    path = write_video(tmp_path / "late.mkv", 1.2, audio=tone(0.8), audio_start=0.4, colour_at=black_then_white)
    audio = open_video(path).audio()
    assert onset(audio) == pytest.approx(0.4, abs=0.02)
    assert len(audio) / 16_000 == pytest.approx(1.2, abs=0.05)


def test_long_audio_comes_in_blocks_equal_to_the_whole(tmp_path):
    path = write_video(tmp_path / "blocks.mov", 3.0, audio=tone(3.0, frequency=300.0), video=True)
    video = open_video(path)
    blocks = list(video.audio_blocks(block_seconds=0.5))
    assert len(blocks) > 4
    whole = np.concatenate(blocks)
    assert len(whole) == pytest.approx(3.0 * 16_000, abs=32)
    once = video.audio()  # one block: resampled whole, as `prepare_array` does
    np.testing.assert_allclose(whole[1000:-1000], once[1000:len(whole) - 1000], atol=2e-3)


def test_no_audio_track_answers_with_the_frames(tmp_path):
    video = open_video(write_video(tmp_path / "mute.mp4", 1.0, audio=None))
    assert video.has_video and not video.has_audio
    assert video.audio() is None and list(video.audio_blocks()) == []
    assert len(list(video.frames(fps=5))) == 5


def test_no_video_track_answers_with_the_audio(tmp_path):
    video = open_video(write_video(tmp_path / "voice.mkv", 1.0, audio=tone(1.0), video=False))
    assert video.has_audio and not video.has_video
    assert list(video.frames()) == []
    assert len(video.audio()) / 16_000 == pytest.approx(1.0, abs=0.03)


def test_bytes_decode_like_the_file(tmp_path):
    path = write_video(tmp_path / "clip.webm", 1.0, audio=tone(1.0), colour_at=black_then_white)
    from_bytes = open_video(path.read_bytes())
    assert from_bytes.name == "<bytes>"
    np.testing.assert_array_equal(from_bytes.audio(), open_video(path).audio())
    assert len(list(from_bytes.frames(fps=5))) == 5


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "missing"])
def test_a_damaged_file_is_one_error_naming_it(tmp_path, damage):
    good = write_video(tmp_path / "good.mp4", 1.0, audio=tone(1.0)).read_bytes()
    path = tmp_path / f"{damage}.mp4"
    if damage == "garbage":
        path.write_bytes(b"not a video at all " * 100)
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    with pytest.raises(AudioError) as caught:  # VideoError is an AudioError: batches report it per file
        video = open_video(path)
        video.audio(), list(video.frames())
    assert str(path) in str(caught.value)
    if damage in ("garbage", "truncated"):
        assert isinstance(caught.value, VideoError)


def test_silent_track_is_audio_of_its_length(tmp_path):
    """As for audio files, digital silence is audio (answered "no speech"), not an error."""
    audio = open_video(write_video(tmp_path / "silent.mp4", 1.0, audio=np.zeros(RATE, np.float32))).audio()
    assert len(audio) / 16_000 == pytest.approx(1.0, abs=0.05) and np.max(np.abs(audio)) < 1e-3


def test_fps_must_be_positive(tmp_path):
    video = open_video(write_video(tmp_path / "clip.mp4", 0.4))
    with pytest.raises(ValueError, match="fps"):
        list(video.frames(fps=0))


@pytest.mark.corpus
def test_crema_d_videos_decode(shared_data):
    folder = shared_data / "CREMA-D-video"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found (see ../shared/README.md)")
    paths = sorted(folder.glob("*.flv"))
    assert len(paths) == 6
    for path in paths:
        video: Video = open_video(path)
        assert video.has_audio and video.has_video and (video.width, video.height) == (480, 360)
        audio = video.audio()
        assert 1.8 < video.duration < 2.5
        assert len(audio) / 16_000 == pytest.approx(video.duration, abs=0.1)
        frames = list(video.frames(fps=5))
        assert len(frames) == pytest.approx(video.duration * 5, abs=1)
        assert np.all(np.diff([f.time for f in frames]) == pytest.approx(0.2, abs=0.04))
        # The same take's audio in CREMA-D/ (the release's WAV, transcoded): the same speech, which the
        # release's FLV starts 4-52 ms earlier.
        voice = load_audio(shared_data / "CREMA-D" / f"{path.stem}.opus")
        lag, correlation = best_alignment(audio, voice)
        assert 0 <= lag <= 0.1 * 16_000 and correlation > 0.95, (path.name, lag, correlation)


def best_alignment(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """The lag (samples by which `a` runs ahead of `b`) with the highest correlation, and that correlation."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    size = 2 * n
    cross = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(cross))
    lag = lag if lag < n else lag - size
    x, y = a[max(lag, 0):n + min(lag, 0)], b[max(-lag, 0):n - max(lag, 0)]
    return lag, float(np.corrcoef(x, y)[0, 1])


@pytest.mark.slow
def test_decode_benchmark_smoke(tmp_path, capsys):
    """benchmarks/video.py on a small one-second video: it runs and reports every part."""
    import json

    from benchmarks.video import main

    out = tmp_path / "video.json"
    assert main(["--seconds", "1", "--size", "160x96", "--voice-models", "fast", "--cache", str(tmp_path),
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["video"]["frames_kept"] == 5 and result["video"]["size"] == [160, 96]
    assert set(result["rtf"]) == {"audio_decode", "frames_decode", "frames_decode_skip_deblocking", "voice_fast"}
    assert "frames decode" in capsys.readouterr().out
