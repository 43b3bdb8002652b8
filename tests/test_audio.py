"""The audio module's own contract: arrays and files in, mono float32 16 kHz out."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import voiced, write_wav

from emotionnet.audio import MIN_SECONDS, SAMPLE_RATE, AudioError, load_audio, prepare_array, to_audio


def test_audio_error_is_a_value_error():
    assert issubclass(AudioError, ValueError)


def test_mono_float_at_16k_passes_through():
    audio = voiced(0.5)
    out = prepare_array(audio, 16_000)
    assert out.dtype == np.float32 and out.ndim == 1
    np.testing.assert_array_equal(out, audio)
    assert out.flags["C_CONTIGUOUS"]


def test_float64_becomes_float32():
    out = prepare_array(voiced(0.5).astype(np.float64), 16_000)
    assert out.dtype == np.float32


def test_stereo_is_averaged():
    left, right = voiced(0.5, seed=1), voiced(0.5, f0=200, seed=2)
    out = prepare_array(np.stack([left, right], axis=1), 16_000)
    assert out.shape == left.shape
    np.testing.assert_allclose(out, (left + right) / 2, atol=1e-7)


def test_48k_is_resampled():
    audio = voiced(0.5, sample_rate=48_000)
    out = prepare_array(audio, 48_000)
    assert out.dtype == np.float32
    assert abs(out.size - 8_000) <= 1
    # A tone keeps its frequency through resampling.
    t = np.arange(48_000) / 48_000
    tone = prepare_array((0.5 * np.sin(2 * np.pi * 1_000 * t)).astype(np.float32), 48_000)
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.argmax(spectrum) * SAMPLE_RATE / tone.size == pytest.approx(1_000, abs=2)


def test_stereo_48k_int16():
    audio = voiced(0.5, sample_rate=48_000)
    ints = (np.stack([audio, audio], axis=1) * 32767).astype(np.int16)
    out = prepare_array(ints, 48_000)
    assert out.dtype == np.float32 and out.ndim == 1 and abs(out.size - 8_000) <= 1
    np.testing.assert_allclose(out, prepare_array(audio, 48_000), atol=1e-3)


def test_int16_scaled_to_unit_range():
    ints = np.zeros(8_000, dtype=np.int16)
    ints[:3] = [-32768, 32767, 16384]
    out = prepare_array(ints, 16_000)
    assert out[0] == -1.0
    assert out[1] == pytest.approx(1.0, abs=1e-4)
    assert out[2] == pytest.approx(0.5)


def test_int32_scaled_to_unit_range():
    ints = np.zeros(8_000, dtype=np.int32)
    ints[:2] = [-(2**31), 2**30]
    out = prepare_array(ints, 16_000)
    assert out[0] == -1.0 and out[1] == pytest.approx(0.5)


def test_uint8_is_centred_and_scaled():
    """Unsigned 8-bit PCM is centred on 128: 0 is -1, 128 is silence, 255 is almost +1."""
    ints = np.full(8_000, 128, dtype=np.uint8)
    ints[:2] = [0, 255]
    out = prepare_array(ints, 16_000)
    assert out[0] == pytest.approx(-1.0)
    assert out[1] == pytest.approx(127 / 128)
    assert np.all(out[2:] == 0)


def test_uint8_file_matches_array(tmp_path):
    audio = voiced(0.5)
    path = write_wav(tmp_path / "u8.wav", audio, subtype="PCM_U8")
    as_file = load_audio(path)
    np.testing.assert_allclose(as_file, audio, atol=1 / 64)


def test_int16_file_matches_float(tmp_path):
    audio = voiced(0.5)
    path = write_wav(tmp_path / "i16.wav", audio, subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path), audio, atol=1e-4)


def test_file_stereo_48k(tmp_path):
    audio = voiced(0.5, sample_rate=48_000)
    path = write_wav(tmp_path / "stereo.flac", np.stack([audio, -audio * 0.5], axis=1), 48_000)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1 and abs(out.size - 8_000) <= 1


def test_aiff_named_wav_decodes(tmp_path):
    """The format comes from the content, not the extension."""
    audio = voiced(0.5)
    path = tmp_path / "really_aiff.wav"
    soundfile.write(str(path), audio, 16_000, format="AIFF", subtype="PCM_16")
    assert path.read_bytes()[:4] == b"FORM"
    np.testing.assert_allclose(load_audio(path), audio, atol=1e-4)


def test_opus_decodes(tmp_path):
    if "OPUS" not in soundfile.available_subtypes("OGG"):
        pytest.skip("libsndfile without Opus")
    path = write_wav(tmp_path / "clip.opus", voiced(0.5), format="OGG", subtype="OPUS")
    out = load_audio(path)
    assert out.dtype == np.float32 and abs(out.size - 8_000) < 400


def test_bytes_decode(tmp_path):
    audio = voiced(0.5)
    path = write_wav(tmp_path / "clip.wav", audio, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(path.read_bytes()), audio)
    np.testing.assert_array_equal(to_audio(path.read_bytes()), audio)


def test_to_audio_dispatches(tmp_path):
    audio = voiced(0.5)
    path = write_wav(tmp_path / "clip.wav", audio, subtype="FLOAT")
    np.testing.assert_array_equal(to_audio(path), audio)
    np.testing.assert_array_equal(to_audio(str(path)), audio)
    np.testing.assert_array_equal(to_audio(audio, 16_000), audio)
    with pytest.raises(AudioError, match="sample_rate"):
        to_audio(audio)


# Each error names the input and the problem.

def _error(call) -> str:
    with pytest.raises(AudioError) as info:
        call()
    return str(info.value)


def test_error_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    message = _error(lambda: load_audio(path))
    assert str(path) in message and "not found" in message


def test_error_directory(tmp_path):
    message = _error(lambda: load_audio(tmp_path))
    assert str(tmp_path) in message and "directory" in message


def test_error_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    message = _error(lambda: load_audio(path))
    assert str(path) in message and "empty" in message


def test_error_not_audio(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio\n" * 20)
    message = _error(lambda: load_audio(path))
    assert str(path) in message and "unreadable or unsupported" in message


def test_error_truncated_header(tmp_path):
    path = write_wav(tmp_path / "cut.wav", voiced(0.5))
    path.write_bytes(path.read_bytes()[:20])
    message = _error(lambda: load_audio(path))
    assert str(path) in message and "unreadable" in message


def test_error_empty_bytes():
    message = _error(lambda: load_audio(b""))
    assert "<bytes>" in message and "empty" in message


def test_error_name_overrides(tmp_path):
    message = _error(lambda: load_audio(b"garbage bytes here", name="upload.wav"))
    assert message.startswith("upload.wav:")


def test_error_empty_array():
    message = _error(lambda: prepare_array(np.zeros(0, dtype=np.float32), 16_000, name="mic"))
    assert message.startswith("mic:") and "empty" in message


def test_error_too_short():
    samples = int(MIN_SECONDS * 16_000) - 1
    message = _error(lambda: prepare_array(voiced(1.0)[:samples], 16_000, name="short"))
    assert message.startswith("short:") and "too short" in message
    prepare_array(voiced(1.0)[: samples + 1], 16_000)  # exactly 0.25 s is enough


def test_error_too_short_file(tmp_path):
    path = write_wav(tmp_path / "blip.wav", voiced(0.1))
    message = _error(lambda: load_audio(path))
    assert str(path) in message and "too short" in message


def test_digital_silence_is_audio_not_an_error(tmp_path):
    """A muted microphone is audio without speech (issue 31): the recognizer says so, the decoder does not fail."""
    assert not np.any(prepare_array(np.zeros(8_000, dtype=np.float32), 16_000))
    path = write_wav(tmp_path / "silence.wav", np.zeros(8_000, dtype=np.int16))
    assert load_audio(path).shape == (8_000,) and not np.any(load_audio(path))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_error_non_finite(bad):
    audio = voiced(0.5)
    audio[100] = bad
    message = _error(lambda: prepare_array(audio, 16_000))
    assert message.startswith("<array>:") and "non-finite" in message


def test_error_bad_shapes_and_types():
    assert "shape" in _error(lambda: prepare_array(np.zeros((2, 2, 8_000), dtype=np.float32), 16_000))
    assert "sample type" in _error(lambda: prepare_array(np.array(["a"] * 8_000), 16_000))
    assert "sample rate" in _error(lambda: prepare_array(voiced(0.5), 0))


def test_max_seconds_on_arrays():
    audio = voiced(1.0)
    assert prepare_array(audio, 16_000, max_seconds=1.0).size == 16_000
    message = _error(lambda: prepare_array(audio, 16_000, max_seconds=0.5))
    assert "too long" in message and "0.5" in message
    # The limit is in seconds of audio, whatever the input rate.
    message = _error(lambda: to_audio(voiced(1.0, sample_rate=48_000), 48_000, max_seconds=0.9))
    assert "too long" in message


def test_max_seconds_on_files(tmp_path):
    path = write_wav(tmp_path / "long.wav", voiced(1.0, sample_rate=8_000), 8_000)
    assert load_audio(path, max_seconds=2).size == 16_000
    message = _error(lambda: load_audio(path, max_seconds=0.5))
    assert str(path) in message and "too long" in message and "1.0 s" in message


# --- issue 13: every odd input is one clear AudioError ---------------------------------------------


def test_array_likes_are_accepted_and_odd_objects_refused():
    import torch

    audio = voiced(0.5)
    expected = prepare_array(audio, 16_000)
    np.testing.assert_array_equal(prepare_array(audio.tolist(), 16_000), expected)  # a list
    np.testing.assert_array_equal(prepare_array(torch.from_numpy(audio), 16_000), expected)  # a tensor
    assert "got None" in _error(lambda: prepare_array(None, 16_000))
    assert "shape" in _error(lambda: prepare_array(3, 16_000))  # an int is a 0-d array
    assert "shape" in _error(lambda: prepare_array(np.float32(0.5), 16_000))
    assert "pass sample_rate" in _error(lambda: to_audio(12345))  # not a file: an array without its rate


@pytest.mark.parametrize("rate", ["16000", float("nan"), float("inf"), -1, True, None])
def test_sample_rates_that_are_not_positive_finite_numbers(rate):
    # a NaN rate once made soxr spin forever
    message = _error(lambda: prepare_array(voiced(0.5), rate))
    assert message.startswith("<array>:") and ("sample rate" in message or "sample_rate" in message)


def test_absurd_rates_are_refused_by_default_and_can_be_allowed(tmp_path):
    from emotionnet.audio import AudioLimits

    assert "outside" in _error(lambda: prepare_array(voiced(1.0, sample_rate=2_000), 2_000))
    assert "outside" in _error(lambda: prepare_array(voiced(0.5), 2_000_000))
    lifted = AudioLimits(min_sample_rate=1_000)
    assert prepare_array(voiced(1.0, sample_rate=2_000), 2_000, limits=lifted).size == 16_000
    # a WAV header that says 1 Hz: refused before anything is resampled
    path = write_wav(tmp_path / "one-hertz.wav", voiced(0.5), 16_000)
    data = bytearray(path.read_bytes())
    data[24:28] = (1).to_bytes(4, "little")  # the fmt chunk's sample rate
    data[28:32] = (2).to_bytes(4, "little")  # and its byte rate
    path.write_bytes(bytes(data))
    message = _error(lambda: load_audio(path))
    assert str(path) in message and "sample rate 1 Hz is outside" in message


def test_huge_finite_values_are_refused():
    audio = voiced(0.5).astype(np.float64) * 1e25  # once answered "angry" with confidence NaN
    assert "absurd sample values" in _error(lambda: prepare_array(audio, 16_000))
    assert "absurd" in _error(lambda: prepare_array((voiced(0.5) * 1e20).astype(np.float32), 16_000))
    # PCM values stored as floats are fine
    prepare_array(voiced(0.5) * 32767, 16_000)


def test_int64_is_refused_with_a_hint():
    ints = (voiced(0.5) * 32767).astype(np.int64)  # once scaled by 2^63 into near-silence
    message = _error(lambda: prepare_array(ints, 16_000))
    assert "int64" in message and "astype(np.int16)" in message


def test_channels_first_is_named():
    stereo = np.stack([voiced(0.5), voiced(0.5, seed=1)])  # (2, N): once "too short (0.00 s)"
    message = _error(lambda: prepare_array(stereo, 16_000))
    assert "(channels, samples)" in message and "samples.T" in message


def test_default_duration_limit_can_be_lifted():
    import math

    from emotionnet.audio import DEFAULT_LIMITS, AudioLimits

    assert DEFAULT_LIMITS.max_seconds == 4 * 3600
    audio = voiced(1.0)
    assert "too long" in _error(lambda: prepare_array(audio, 16_000, limits=AudioLimits(max_seconds=0.5)))
    assert prepare_array(audio, 16_000, limits=AudioLimits(max_seconds=0.5), max_seconds=math.inf).size == 16_000


def test_long_files_decode_in_blocks_to_the_same_samples(tmp_path):
    from emotionnet.audio import iter_audio_blocks

    audio = voiced(3.0, sample_rate=44_100)
    path = write_wav(tmp_path / "long.wav", audio, 44_100)
    whole = load_audio(path)  # one block: one call to the resampler
    blocks = list(iter_audio_blocks(path, block_seconds=0.5))
    assert len(blocks) >= 6
    streamed = np.concatenate(blocks)
    assert abs(streamed.size - whole.size) <= 1
    n = min(streamed.size, whole.size)
    np.testing.assert_allclose(streamed[:n], whole[:n], atol=2e-3)


def test_many_channels_at_a_high_rate_decode_in_blocks_sized_by_samples_times_channels(tmp_path):
    """A small FLAC of 8 channels at 384 kHz (constant: it compresses to 33 kB) held 234 MB of NumPy
    arrays when decoded whole as one 10-second block (issue 30: 1.4 GB for the probe's file)."""
    import tracemalloc

    from emotionnet.audio import BLOCK_VALUES, block_frames

    rate, channels = 384_000, 8
    path = tmp_path / "eight.flac"
    with soundfile.SoundFile(str(path), "w", rate, channels, subtype="PCM_16", format="FLAC") as f:
        second = np.full((rate, channels), 1000, np.int16)
        for _ in range(10):
            f.write(second)
    assert block_frames(rate, channels) * channels <= BLOCK_VALUES
    tracemalloc.start()  # NumPy reports its buffers to tracemalloc
    try:
        audio = load_audio(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert audio.size == 10 * SAMPLE_RATE and float(audio[SAMPLE_RATE]) == pytest.approx(1000 / 32768, rel=1e-3)
    assert peak < 100 * 2**20, f"decoding held {peak / 2**20:.0f} MB"


def test_block_decoding_passes_silence_and_finds_overlong_files(tmp_path):
    from emotionnet.audio import iter_audio_blocks

    silent = write_wav(tmp_path / "silent.wav", np.zeros(16_000 * 2, np.float32))
    assert sum(block.size for block in iter_audio_blocks(silent, block_seconds=0.5)) == 16_000 * 2
    path = write_wav(tmp_path / "long.wav", voiced(2.0))
    assert "too long" in _error(lambda: list(iter_audio_blocks(path, max_seconds=1.0, block_seconds=0.5)))


def test_default_limits_can_be_changed_for_every_path(monkeypatch, tiny_model_file):
    from emotionnet import audio, load_model
    from emotionnet.audio import AudioLimits

    low = voiced(1.0, sample_rate=2_000)
    recognizer = load_model(tiny_model_file)
    assert "outside" in _error(lambda: recognizer.predict(low, 2_000))
    monkeypatch.setattr(audio, "DEFAULT_LIMITS", AudioLimits(min_sample_rate=1_000))
    assert recognizer.predict(low, 2_000).emotion
