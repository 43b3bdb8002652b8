"""The live engine, its sources, `emotionnet listen` and the latency benchmark's plumbing."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, voiced, write_wav

from emotionnet import load_model
from emotionnet.cli.main import main
from emotionnet.labels import LABELS
from emotionnet.streaming import (
    ArraySource,
    FileSource,
    MicrophoneError,
    MicrophoneSource,
    RingBuffer,
    StreamEngine,
)

SR = 16_000
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Streaming runs on one thread (as `listen` does); restore the setting afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def recognizer(tiny_model_file):
    return load_model(tiny_model_file)


def quiet(seconds: float, level: float = 0.0, seed: int = 1) -> np.ndarray:
    noise = level * np.random.default_rng(seed).standard_normal(int(seconds * SR))
    return noise.astype(np.float32)


def test_ring_buffer_keeps_the_latest_samples_in_fixed_memory():
    ring = RingBuffer(5)
    data = ring.data
    ring.extend(np.arange(3))
    assert ring.latest().tolist() == [0, 1, 2]
    ring.extend(np.arange(3, 7))
    assert ring.latest().tolist() == [2, 3, 4, 5, 6]
    assert ring.latest(2).tolist() == [5, 6]
    ring.extend(np.arange(7, 20))  # more than the capacity at once
    assert ring.latest().tolist() == [15, 16, 17, 18, 19]
    assert ring.data is data and len(ring) == 5 and ring.total == 20


def test_a_result_every_hop_at_the_expected_times(recognizer, tmp_path):
    path = write_wav(tmp_path / "five.wav", voiced(5.0))
    results = list(StreamEngine(recognizer, hop=0.5).run(FileSource(path, realtime=False)))
    assert [r.time for r in results] == pytest.approx([0.5 * k for k in range(1, 11)])
    assert [r.start for r in results] == pytest.approx([max(0.0, 0.5 * k - 3.0) for k in range(1, 11)])
    assert all(r.speech and r.prediction is not None for r in results)
    for r in results:  # the smoothed answer is a distribution, and its emotion the most probable class
        assert sum(r.prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert r.emotion == max(r.prediction.probabilities, key=r.prediction.probabilities.get)
        assert sum(r.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(r.latency_ms >= 0 for r in results)

    # Audio after the last full hop gets one last result at the end of the stream.
    path = write_wav(tmp_path / "odd.wav", voiced(5.2))
    times = [r.time for r in StreamEngine(recognizer, hop=1.0).run(FileSource(path, realtime=False))]
    assert times == pytest.approx([1.0, 2.0, 3.0, 4.0, 5.0, 5.2])


def test_chunk_sizes_do_not_change_the_results(recognizer):
    audio = voiced(4.0, seed=5)
    a = [r.probabilities for r in StreamEngine(recognizer).run(ArraySource(audio, block_seconds=0.1))]
    b = [r.probabilities for r in StreamEngine(recognizer).run(ArraySource(audio, block_seconds=0.77))]
    assert a == b


@pytest.mark.parametrize("window", [3.0, 2.0])
def test_a_streamed_window_scores_exactly_like_predict(recognizer, window):
    audio = voiced(6.0, seed=3)
    engine = StreamEngine(recognizer, window=window, hop=0.5, smoothing=0, adapt=False)
    results = list(engine.run(ArraySource(audio, block_seconds=0.37)))
    assert len(results) == 12
    for result in results:
        start, end = round(result.start * SR), round(result.time * SR)
        assert end - start == min(end, round(window * SR))
        expected = recognizer.predict(audio[start:end], SR).probabilities
        assert result.probabilities == pytest.approx(expected, abs=1e-6)
        # Without smoothing the shown prediction is the window's own.
        assert result.prediction.probabilities == pytest.approx(expected, abs=1e-6)


def test_silence_is_labelled_as_silence(recognizer):
    audio = np.concatenate([voiced(4.0), quiet(5.0), voiced(3.0, seed=2)])
    results = list(StreamEngine(recognizer).run(ArraySource(audio)))
    for r in results:
        if r.start >= 4.0 and r.time <= 9.0:  # windows wholly inside the silence
            assert not r.speech and r.prediction is None and r.emotion is None and r.probabilities is None
            assert r.to_dict()["emotion"] is None and r.to_dict()["speech"] is False
    assert results[0].speech and results[-1].speech
    assert any(not r.speech for r in results)


def test_steady_background_noise_is_not_speech(recognizer):
    # Room noise at about -46 dBFS, above the absolute floor: the running noise floor rejects it.
    results = list(StreamEngine(recognizer).run(ArraySource(quiet(6.0, level=0.005))))
    assert results and not any(r.speech for r in results)


def test_smoothing_starts_afresh_after_a_long_silence(recognizer):
    audio = np.concatenate([voiced(3.0), quiet(6.0), voiced(3.0, seed=7, f0=220)])
    engine = StreamEngine(recognizer, smoothing=1.0, reset_after=2.0)
    results = list(engine.run(ArraySource(audio)))
    after = next(r for r in results if r.time > 9.0 and r.speech)
    assert after.prediction.probabilities == pytest.approx(after.probabilities)
    second = results[results.index(after) + 1]
    assert second.speech and second.prediction.probabilities != pytest.approx(second.probabilities)


def test_ten_minutes_stream_in_constant_memory(recognizer):
    pattern = np.concatenate([voiced(4.0), quiet(6.0, level=0.001)])  # 10 s: speech, then quiet

    def ten_minutes():
        for _ in range(60):
            yield from np.split(pattern, 10)  # 1 s blocks

    engine = StreamEngine(recognizer, hop=3.0)  # a long hop: this is about memory, not many scorings
    data, capacity = engine.buffer.data, engine.buffer.capacity
    sizes, times = set(), []
    for result in engine.run(ten_minutes()):
        times.append(result.time)
        if len(times) > 5:  # once the window and the gate's memory have filled
            sizes.add((engine.buffer.data.nbytes, len(engine.buffer), len(engine.gate._minima)))
    assert times == pytest.approx([3.0 * k for k in range(1, 201)]) and engine.seconds == pytest.approx(600.0)
    assert engine.buffer.data is data and engine.buffer.capacity == capacity == 3 * SR
    assert sizes == {(3 * SR * 4, 3 * SR, 2)}  # the same sizes from then to the end


def test_window_and_hop_are_checked(recognizer):
    with pytest.raises(ValueError, match="window"):
        StreamEngine(recognizer, window=5.0)
    with pytest.raises(ValueError, match="hop"):
        StreamEngine(recognizer, window=2.0, hop=2.5)


def test_a_file_source_paces_in_real_time(tmp_path):
    path = write_wav(tmp_path / "short.wav", voiced(0.5))
    chunks = list(FileSource(path, realtime=True))
    assert len(chunks) == 5
    assert chunks[-1].arrived - chunks[0].arrived >= 0.35  # blocks 0.1 s apart, not all at once


def _portaudio_present() -> bool:
    try:
        import sounddevice  # noqa: F401
    except OSError:  # the package is installed, the PortAudio library (libportaudio2) is not
        return False
    return True


needs_portaudio = pytest.mark.skipif(
    not _portaudio_present(), reason="the PortAudio library is missing (apt-get install libportaudio2)")


@needs_portaudio
def test_no_such_microphone_is_a_clear_error():
    with pytest.raises(MicrophoneError, match="input device"):
        MicrophoneSource(device=9999)


def test_listen_streams_json_lines(tiny_model_file, tmp_path, capsys):
    path = write_wav(tmp_path / "talk.wav", np.concatenate([voiced(3.0), quiet(4.0), voiced(2.0, seed=4)]))
    assert main(["listen", "--input", str(path), "--json", "--fast", "--model", str(tiny_model_file)]) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["time"] for line in lines] == pytest.approx([0.5 * k for k in range(1, 19)])
    for line in lines:
        assert set(line) >= {"time", "start", "speech", "emotion", "confidence", "probabilities", "latency_ms"}
        if line["speech"]:
            assert line["emotion"] in LABELS and set(line["probabilities"]) == set(LABELS)
        else:
            assert line["emotion"] is None and line["probabilities"] is None
    assert any(not line["speech"] for line in lines)
    assert "listened 9.0 s" in err  # the summary goes to stderr, stdout stays JSON


def test_listen_view_and_summary(tiny_model_file, tmp_path, capsys):
    path = write_wav(tmp_path / "talk.wav", voiced(2.0))
    assert main(["listen", "--input", str(path), "--fast", "--model", str(tiny_model_file)]) == 0
    out = capsys.readouterr().out
    assert "2.0 s" in out and "listened 2.0 s; speech 2.0 s (100%)" in out
    assert sum(label in out for label in LABELS) == 6  # the summary's share of each emotion


@needs_portaudio
def test_listen_without_a_microphone_says_to_use_input(tiny_model_file, capsys):
    assert main(["listen", "--device", "9999", "--model", str(tiny_model_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emotionnet: error: no input device 9999")
    assert "--input FILE" in err and len(err.strip().splitlines()) == 1


def test_listen_without_portaudio_is_one_clear_line(tiny_model_file, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails as when libportaudio2 is absent
    assert main(["listen", "--model", str(tiny_model_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("emotionnet: error: ") and len(err.strip().splitlines()) == 1
    assert "--input FILE" in err


def test_listen_usage_errors(tiny_model_file, tmp_path, capsys):
    assert main(["listen", "--window", "9", "--model", str(tiny_model_file)]) == 1
    assert "window" in capsys.readouterr().err
    assert main(["listen", "--input", str(tmp_path / "missing.wav"), "--model", str(tiny_model_file)]) == 2
    assert "file not found" in capsys.readouterr().err


def test_latency_benchmark_runs(tiny_model_file, capsys):
    spec = importlib.util.spec_from_file_location("latency_benchmark", REPO / "benchmarks" / "latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report = module.main(["--model", str(tiny_model_file), "--seconds", "2", "--json"])
    assert report["latency_all"]["n"] == 4 and report["latency_all"]["median_ms"] >= 0
    assert 0 < report["cpu"]["cpu_share"] and len(report["model"]["sha256"]) == 64
    assert json.loads(capsys.readouterr().out)["hop"] == 0.5


class FakeSoundDevice:
    """Just enough of `sounddevice` for MicrophoneSource: one 48 kHz-only input that plays `audio`."""

    def __init__(self, audio: np.ndarray, rate: int = 48_000):
        self.audio, self.rate = audio, rate
        self.default = type("Default", (), {"device": (0, 0)})()
        fake = self

        class InputStream:
            def __init__(self, samplerate, channels, dtype, device, blocksize, callback):
                self.blocksize, self.callback, self.active = blocksize, callback, False

            def start(self):
                self.active = True
                self.thread = threading.Thread(target=self.play, daemon=True)
                self.thread.start()

            def play(self):
                for i in range(0, fake.audio.size - self.blocksize + 1, self.blocksize):
                    if not self.active:
                        return
                    self.callback(fake.audio[i:i + self.blocksize, None], self.blocksize, None, None)
                self.active = False

            def stop(self):
                self.active = False

            def close(self):
                fake.closed = True

        self.InputStream = InputStream
        self.closed = False

    def query_devices(self, device=None, kind=None):
        info = {"name": "Fake microphone", "max_input_channels": 1, "default_samplerate": float(self.rate)}
        if kind is None:
            return [info]
        if device not in (None, 0):
            raise ValueError(f"No input device matching {device!r}")
        return info

    def check_input_settings(self, device, channels, dtype, samplerate):
        if samplerate != self.rate:
            raise RuntimeError("Invalid sample rate")


def test_microphone_source_resamples_and_feeds_the_engine(recognizer, monkeypatch):
    from emotionnet.streaming import sources

    fake = FakeSoundDevice(voiced(2.0, sample_rate=48_000))
    monkeypatch.setattr(sources, "_sounddevice", lambda: fake)
    assert sources.list_input_devices() == [
        {"id": 0, "name": "Fake microphone", "channels": 1, "sample_rate": 48_000.0, "default": True}]
    with pytest.raises(MicrophoneError, match="no input device 3"):
        MicrophoneSource(device=3)
    microphone = MicrophoneSource()
    assert microphone.name == "Fake microphone" and microphone.sample_rate == 48_000
    results = list(StreamEngine(recognizer).run(microphone))
    assert fake.closed  # the stream is closed when it ends
    assert 3 <= len(results) <= 4 and all(r.speech for r in results)  # ~2 s at 16 kHz after resampling
    assert all(r.latency_ms >= 0 for r in results)


def test_listen_from_a_microphone_until_ctrl_c(tiny_model_file, monkeypatch, capsys):
    import emotionnet.streaming

    class InterruptedMicrophone:
        name, dropped = "fake microphone", 0

        def __init__(self, device=None):
            self.closed = False

        def __iter__(self):
            yield from np.split(voiced(3.0), 30)
            raise KeyboardInterrupt  # the user presses Ctrl-C

        def close(self):
            self.closed = True

    monkeypatch.setattr(emotionnet.streaming, "MicrophoneSource", InterruptedMicrophone)
    assert main(["listen", "--model", str(tiny_model_file)]) == 0
    out = capsys.readouterr().out
    assert "fake microphone" in out and "listened 3.0 s; speech 3.0 s (100%)" in out


def test_a_speaker_normalised_stream_adapts_to_the_voice_it_has_heard(tiny_speaker_model_file):
    recognizer = load_model(tiny_speaker_model_file)
    recognizer._scoring.spec = dataclasses.replace(recognizer.spec, temperature=0.05)  # spread the untrained model's near-uniform probabilities
    audio = np.concatenate([voiced(6.0, seed=3), 0.2 * voiced(4.0, seed=4)])
    adapted = StreamEngine(recognizer, smoothing=0, adapt=True)
    alone = StreamEngine(recognizer, smoothing=0)  # the default: every window its own context
    a = list(adapted.run(ArraySource(audio)))
    b = list(alone.run(ArraySource(audio)))
    # Before a few seconds of speech each window is its own context, as in predict.
    assert a[0].probabilities == pytest.approx(b[0].probabilities, abs=1e-6)
    assert b[0].probabilities == pytest.approx(recognizer.predict(audio[:SR // 2], SR).probabilities, abs=1e-6)
    # Later, the quieter speech is read against the louder voice heard before it.
    assert adapted.context.speech_seconds > 3.0
    assert max(abs(a[-1].probabilities[k] - b[-1].probabilities[k]) for k in LABELS) > 1e-3
    assert alone.context.stats() is None


def test_listen_no_adapt_judges_every_window_alone(tiny_speaker_model_file, tmp_path, capsys):
    path = write_wav(tmp_path / "talk.wav", np.concatenate([voiced(5.0, seed=3), 0.2 * voiced(3.0, seed=4)]))

    def last_probabilities(*extra) -> dict:
        assert main(["listen", "--input", str(path), "--json", "--fast", "--model", str(tiny_speaker_model_file),
                     *extra]) == 0
        return json.loads(capsys.readouterr().out.splitlines()[-1])["raw_probabilities"]

    from emotionnet.audio import load_audio

    recognizer = load_model(tiny_speaker_model_file)
    alone = recognizer.predict(load_audio(path)[-3 * SR:], SR).probabilities  # the file's own (PCM16) samples
    assert last_probabilities("--no-adapt") == pytest.approx(alone, abs=1e-4)
    assert last_probabilities() == pytest.approx(alone, abs=1e-4)  # the default, as predict (issue 19)
    assert last_probabilities("--adapt") != pytest.approx(alone, abs=1e-4)


# --- issue 13 ------------------------------------------------------------------------------------


def test_the_last_hop_is_not_printed_twice(tiny_model_file, tmp_path, capsys):
    path = write_wav(tmp_path / "talk.wav", voiced(2.02))  # 0.02 s after the last hop
    assert main(["listen", "--input", str(path), "--fast", "--json", "--model", str(tiny_model_file)]) == 0
    times = [json.loads(line)["time"] for line in capsys.readouterr().out.splitlines()]
    assert times == pytest.approx([0.5, 1.0, 1.5, 2.0])  # once: 2.0 and 2.02, both shown as "2.0 s"
    path = write_wav(tmp_path / "more.wav", voiced(2.3))
    assert main(["listen", "--input", str(path), "--fast", "--json", "--model", str(tiny_model_file)]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["time"] == pytest.approx(2.3)


def test_the_letter_strip_and_the_summary_say_what_they_are(tiny_model_file, tmp_path, capsys):
    path = write_wav(tmp_path / "talk.wav", voiced(2.0))
    assert main(["listen", "--input", str(path), "--fast", "--model", str(tiny_model_file)]) == 0
    out = capsys.readouterr().out
    assert "a angry, d disgust, f fear, h happy, n neutral, s sad, · silence" in out
    assert "the whole file, as 'emotionnet predict' says:" in out  # --input: predict's summary (issue 19)


def test_absurd_stream_samples_give_finite_levels(recognizer):
    audio = voiced(3.0)
    audio[8_000:16_000] *= 1e25  # once: "level_db": NaN in listen --json
    audio[20_000] = np.nan
    results = list(StreamEngine(recognizer).run(ArraySource(audio)))
    assert results and all(np.isfinite(r.level_db) for r in results)
    for r in results:
        json.loads(json.dumps(r.to_dict(), allow_nan=False))


def test_a_file_source_decodes_in_blocks(tmp_path, monkeypatch):
    from emotionnet.audio import load_audio
    from emotionnet.streaming import sources

    path = write_wav(tmp_path / "talk.wav", voiced(5.0, sample_rate=22_050), 22_050)
    whole = load_audio(path)
    monkeypatch.setattr(sources, "load_audio", None, raising=False)  # never the whole file at once
    decoded = []
    blocks = sources.iter_audio_blocks
    monkeypatch.setattr(sources, "iter_audio_blocks",
                        lambda *a, **k: (decoded.append(b.size) or b for b in blocks(*a, **k, block_seconds=1.0)))
    source = FileSource(path, realtime=False)
    streamed = np.concatenate([chunk.samples for chunk in source])
    assert source.duration == pytest.approx(5.0) and len(decoded) >= 5
    assert all(chunk.samples.size == 1_600 for chunk in list(FileSource(path, realtime=False))[:-1])
    np.testing.assert_allclose(streamed[:whole.size - 100], whole[:whole.size - 100], atol=2e-3)


def test_damage_inside_an_input_file_is_one_line(tiny_model_file, tmp_path, capsys, monkeypatch):
    from emotionnet.audio import AudioError
    from emotionnet.streaming import sources

    path = write_wav(tmp_path / "talk.wav", voiced(3.0))

    def damaged(*args, **kwargs):
        yield voiced(1.0)
        raise AudioError(f"{path}: unreadable or unsupported audio (damaged block)")

    monkeypatch.setattr(sources, "iter_audio_blocks", damaged)
    assert main(["listen", "--input", str(path), "--fast", "--model", str(tiny_model_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emotionnet: error: ") and "damaged block" in err and "Traceback" not in err


# --- issue 29 item 4: faces in `listen` (a video file as the stand-in camera; --camera) ---------------


def listen_video(path, model_file, capsys) -> tuple[list[dict], str]:
    assert main(["listen", "--input", str(path), "--json", "--fast", "--model", str(model_file)]) == 0
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_listen_a_video_gives_voice_face_and_fused_per_hop(tiny_model_file, tmp_path, capsys):
    from benchmarks.common import write_video

    path = write_video(tmp_path / "talk.mp4", 3.0, audio=voiced(3.0, sample_rate=48_000))  # grey frames
    hops, err = listen_video(path, tiny_model_file, capsys)
    assert [h["time"] for h in hops] == pytest.approx([0.5 * k for k in range(1, 7)])
    for hop in hops:
        assert set(hop) == {"time", "start", "voice", "face", "fused"}
        assert hop["voice"]["emotion"] in LABELS and hop["face"]["face"] is False
        assert hop["face"]["frames"] == math.ceil((hop["time"] - hop["start"]) * 5 - 1e-6)  # frames at 0, 0.2, ... in the window
        assert hop["fused"]["emotion"] == hop["voice"]["emotion"]  # no face: the voice answers alone
    assert "listened 3.0 s" in err


def test_listen_a_video_with_a_face_fuses_it(tiny_model_file, tmp_path, capsys):
    from PIL import Image

    from benchmarks.common import write_video

    fer = SHARED_DATA / "FER2013" / "validation" / "happy"
    if not fer.is_dir():
        pytest.skip(f"FER2013 not found at {fer.parent.parent} (see ../shared/README.md)")
    face = np.asarray(Image.open(sorted(fer.iterdir())[0]).convert("RGB").resize((96, 96)))
    canvas = np.full((144, 192, 3), 128, np.uint8)
    canvas[24:120, 48:144] = face  # a face on a grey wall, found by the detector
    path = write_video(tmp_path / "face.mp4", 2.0, size=(192, 144), image_at=lambda t: canvas,
                       audio=np.zeros(2 * 48_000, np.float32))  # silent: the face answers alone
    hops, _ = listen_video(path, tiny_model_file, capsys)
    assert len(hops) == 4
    for hop in hops:
        assert hop["voice"]["speech"] is False and hop["face"]["face"] is True
        assert hop["face"]["frames_with_face"] == hop["face"]["frames"] > 0
        assert hop["face"]["emotion"] == hop["fused"]["emotion"] == "happy"


def test_listen_text_shows_voice_face_and_both(tiny_model_file, tmp_path, capsys):
    from benchmarks.common import write_video

    path = write_video(tmp_path / "talk.mp4", 1.0, audio=voiced(1.0, sample_rate=48_000))
    assert main(["listen", "--input", str(path), "--fast", "--model", str(tiny_model_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "voice, face and both" in lines[0]
    assert "voice" in lines[1] and "face no face" in lines[1] and "both" in lines[1]


def test_listen_camera_missing_is_one_clear_line(tiny_model_file, tmp_path, capsys):
    missing = str(tmp_path / "video9")
    assert main(["listen", "--camera", missing, "--model", str(tiny_model_file)]) == 1
    out, err = capsys.readouterr()
    assert not out and err.count("\n") == 1
    assert err.startswith(f"emotionnet: error: cannot open camera '{missing}'") and "Traceback" not in err


def test_listen_input_and_camera_exclude_each_other(tiny_model_file, tmp_path, capsys):
    assert main(["listen", "--input", str(tmp_path / "a.mp4"), "--camera", "--model", str(tiny_model_file)]) == 1
    assert "--input and --camera exclude each other" in capsys.readouterr().err
