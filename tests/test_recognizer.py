"""EmotionRecognizer on every kind of input the audio contract allows, and every kind it refuses."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile
import soxr
from conftest import voiced, write_wav

from emotionnet import LABELS, AudioError, EmotionRecognizer

SR = 16_000
SAME = 1e-5  # identical samples reach the model
RESAMPLED = 0.02  # resampling moves samples slightly


@pytest.fixture(scope="module")
def recognizer(tiny_model_file) -> EmotionRecognizer:
    # The untrained model's probabilities all sit near 1/6; a low temperature spreads
    # them so that a different input moves them by far more than RESAMPLED.
    recognizer = EmotionRecognizer.from_file(tiny_model_file)
    recognizer._scoring.spec = dataclasses.replace(recognizer.spec, temperature=0.05)
    return recognizer


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return voiced(2.0)


def probs(recognizer, audio, sample_rate=None) -> np.ndarray:
    prediction = recognizer.predict(audio, sample_rate)
    assert list(prediction.probabilities) == list(LABELS)
    return np.array(list(prediction.probabilities.values()))


def test_probabilities_are_a_distribution(recognizer, clip):
    p = recognizer.predict(clip, SR)
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.emotion == max(p.probabilities, key=p.probabilities.get)
    assert p.confidence == p.probabilities[p.emotion]


def test_a_different_signal_moves_the_probabilities_beyond_the_tolerances(recognizer, clip):
    other = probs(recognizer, voiced(2.0, f0=220, seed=3), SR)
    assert np.abs(other - probs(recognizer, clip, SR)).max() > 2 * RESAMPLED


def test_float_file_equals_array(recognizer, clip, tmp_path):
    path = write_wav(tmp_path / "clip.wav", clip, subtype="FLOAT")
    np.testing.assert_allclose(probs(recognizer, path), probs(recognizer, clip, SR), atol=SAME)
    np.testing.assert_allclose(probs(recognizer, str(path)), probs(recognizer, clip, SR), atol=SAME)
    np.testing.assert_allclose(probs(recognizer, path.read_bytes()), probs(recognizer, clip, SR), atol=SAME)


def test_int16_array_equals_pcm16_file_and_is_near_float(recognizer, clip, tmp_path):
    int16 = np.round(clip * 32767).astype(np.int16)
    path = write_wav(tmp_path / "clip16.wav", int16, subtype="PCM_16")
    np.testing.assert_allclose(probs(recognizer, int16, SR), probs(recognizer, path), atol=SAME)
    np.testing.assert_allclose(probs(recognizer, int16, SR), probs(recognizer, clip, SR), atol=RESAMPLED)


def test_stereo_is_the_mean_of_its_channels(recognizer, clip, tmp_path):
    stereo = np.stack([clip, clip], axis=1)
    np.testing.assert_allclose(probs(recognizer, stereo, SR), probs(recognizer, clip, SR), atol=SAME)
    path = write_wav(tmp_path / "stereo.wav", stereo, subtype="FLOAT")
    np.testing.assert_allclose(probs(recognizer, path), probs(recognizer, clip, SR), atol=SAME)
    louder_left = np.stack([1.5 * clip, 0.5 * clip], axis=1)
    np.testing.assert_allclose(probs(recognizer, louder_left, SR), probs(recognizer, clip, SR), atol=SAME)


@pytest.mark.parametrize("rate", [48_000, 44_100, 8_000])
def test_other_sample_rates_are_resampled(recognizer, clip, tmp_path, rate):
    if rate < SR:
        # A band-limited reference: 8 kHz cannot hold the clip's top octave.
        reference = soxr.resample(soxr.resample(clip, SR, rate, quality="VHQ"), rate, SR, quality="VHQ")
        audio = soxr.resample(clip, SR, rate, quality="VHQ")
    else:
        reference, audio = clip, soxr.resample(clip, SR, rate, quality="VHQ")
    expected = probs(recognizer, reference, SR)
    np.testing.assert_allclose(probs(recognizer, audio, rate), expected, atol=RESAMPLED)
    path = write_wav(tmp_path / f"clip{rate}.wav", audio, rate, subtype="FLOAT")
    np.testing.assert_allclose(probs(recognizer, path), expected, atol=RESAMPLED)


def test_aiff_bytes_named_wav_decode_by_content(recognizer, clip, tmp_path):
    path = tmp_path / "really_aiff.wav"
    soundfile.write(str(path), clip, SR, format="AIFF", subtype="FLOAT")
    assert path.read_bytes()[:4] == b"FORM"
    np.testing.assert_allclose(probs(recognizer, path), probs(recognizer, clip, SR), atol=SAME)


def test_flac_decodes_to_the_same_answer(recognizer, clip, tmp_path):
    path = tmp_path / "clip.flac"
    soundfile.write(str(path), clip, SR, format="FLAC", subtype="PCM_16")
    assert path.read_bytes()[:4] == b"fLaC"
    np.testing.assert_allclose(probs(recognizer, path), probs(recognizer, clip, SR), atol=RESAMPLED)


@pytest.mark.parametrize(("fmt", "subtype"), [("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III")])
def test_lossy_formats_decode(recognizer, clip, tmp_path, fmt, subtype):
    from emotionnet.audio import load_audio

    if fmt not in soundfile.available_formats() or subtype not in soundfile.available_subtypes(fmt):
        pytest.skip(f"libsndfile {soundfile.__libsndfile_version__} cannot write {fmt}/{subtype} "
                    "(MP3 needs libsndfile >= 1.1, Opus >= 1.0.29)")
    rate = 48_000 if subtype == "OPUS" else SR  # Opus runs at 48 kHz only
    audio = clip if rate == SR else soxr.resample(clip, SR, rate, quality="VHQ")
    path = tmp_path / f"clip.{fmt.lower()}.bin"  # no telling extension: decoded by content
    try:
        soundfile.write(str(path), audio, rate, format=fmt, subtype=subtype)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        pytest.skip(f"libsndfile could not write {fmt}/{subtype}: {exc}")
    # A lossy codec changes the samples (and may pad them), so check the decoded audio, not the answer.
    decoded = load_audio(path)
    assert abs(decoded.size / SR - clip.size / SR) < 0.1
    rms = float(np.sqrt(np.mean(decoded**2)))
    assert rms == pytest.approx(float(np.sqrt(np.mean(clip**2))), rel=0.1)
    assert sum(recognizer.predict(path).probabilities.values()) == pytest.approx(1.0, abs=1e-5)


# --- the audio contract's refusals: one exception type, a message naming input and problem ---

def _raises(source, sample_rate=None, match=None, max_seconds=None, recognizer=None) -> str:
    with pytest.raises(AudioError, match=match) as info:
        if recognizer is not None:
            recognizer.predict_timeline(source, sample_rate, max_seconds=max_seconds)
        else:
            from emotionnet.audio import to_audio
            to_audio(source, sample_rate, max_seconds=max_seconds)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_missing_file(recognizer, tmp_path):
    message = _raises(tmp_path / "nowhere.wav", match="not found", recognizer=recognizer)
    assert "nowhere.wav" in message


def test_unreadable_file(recognizer, tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEthis is not audio at all" * 10)
    assert "garbage.wav" in _raises(path, match="unreadable or unsupported", recognizer=recognizer)
    text = tmp_path / "notes.flac"
    text.write_text("just some words, not audio\n")
    assert "notes.flac" in _raises(text, match="unreadable or unsupported", recognizer=recognizer)
    _raises(b"not audio either", match="unreadable or unsupported", recognizer=recognizer)


def test_a_directory_is_not_an_audio_file(recognizer, tmp_path):
    _raises(tmp_path, match="directory", recognizer=recognizer)


def test_empty_inputs(recognizer, tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    assert "empty.wav" in _raises(path, match="empty", recognizer=recognizer)
    _raises(b"", match="empty", recognizer=recognizer)
    _raises(np.zeros(0, np.float32), SR, match="empty", recognizer=recognizer)
    header_only = write_wav(tmp_path / "no_frames.wav", np.zeros(0, np.float32))
    _raises(header_only, match="empty", recognizer=recognizer)


def test_too_short(recognizer, clip, tmp_path):
    _raises(clip[: int(0.2 * SR)], SR, match="too short", recognizer=recognizer)
    path = write_wav(tmp_path / "short.wav", clip[: int(0.1 * SR)])
    message = _raises(path, match="too short", recognizer=recognizer)
    assert "short.wav" in message and "0.25" in message
    recognizer.predict(clip[: int(0.25 * SR)], SR)  # exactly the minimum is fine


def test_all_zero_is_no_speech(recognizer, tmp_path):
    """Digital silence is audio without speech (issue 31), from an array, a stereo int16 array or a file."""
    path = write_wav(tmp_path / "silence.wav", np.zeros(2 * SR, np.float32))
    for source, rate in ((np.zeros(SR, np.float32), SR), (np.zeros((SR, 2), np.int16), SR), (path, None)):
        prediction = recognizer.predict(source, rate)
        assert prediction.speech is False and prediction.emotion is None and prediction.guess is None


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(recognizer, clip, tmp_path, bad):
    audio = clip.copy()
    audio[1000] = bad
    _raises(audio, SR, match="non-finite", recognizer=recognizer)
    path = write_wav(tmp_path / "nan.wav", audio, subtype="FLOAT")
    assert "nan.wav" in _raises(path, match="non-finite", recognizer=recognizer)


def test_too_long_with_a_limit(recognizer, tmp_path):
    audio = voiced(5.0)
    _raises(audio, SR, match="too long", max_seconds=4.0, recognizer=recognizer)
    path = write_wav(tmp_path / "long.wav", audio)
    message = _raises(path, match="too long", max_seconds=4.0, recognizer=recognizer)
    assert "long.wav" in message and "5.0 s" in message and "4 s" in message
    assert recognizer.predict_timeline(path, max_seconds=6.0).duration == pytest.approx(5.0)
    assert recognizer.predict_timeline(path).duration == pytest.approx(5.0)  # no limit by default


def test_array_needs_a_sample_rate(recognizer, clip):
    _raises(clip, None, match="sample_rate", recognizer=recognizer)
    _raises(clip, 0, match="sample rate", recognizer=recognizer)
    _raises(np.zeros((2, 2, SR), np.float32), SR, match="shape", recognizer=recognizer)


def test_predict_files_reports_bad_files_and_goes_on(recognizer, clip, tmp_path):
    good = write_wav(tmp_path / "good.wav", clip)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nonsense")
    long = write_wav(tmp_path / "long.wav", voiced(5.0))
    paths = [bad, good, tmp_path / "missing.wav", long]
    results = list(recognizer.predict_files(paths, max_seconds=4.0))
    assert [r.path for r in results] == [str(p) for p in paths]  # in the order given
    assert [r.ok for r in results] == [False, True, False, False]
    assert "unreadable" in results[0].error and "not found" in results[2].error and "too long" in results[3].error
    assert results[0].to_dict() == {"path": str(bad), "error": {"code": "bad_audio", "message": results[0].error}}
    np.testing.assert_allclose(list(results[1].timeline.prediction.probabilities.values()),
                               probs(recognizer, good), atol=SAME)


def test_clips_of_one_speaker_share_their_normalisation(tiny_speaker_model_file, tiny_model_file, clip):
    from emotionnet.features import log_mel

    speaker_model = EmotionRecognizer.from_file(tiny_speaker_model_file)
    speaker_model._scoring.spec = dataclasses.replace(speaker_model.spec, temperature=0.05)
    mels = [log_mel(clip, speaker_model.features), log_mel(0.5 * clip, speaker_model.features)]

    def answers(model, speakers):
        return [t.prediction.probabilities for t in model.log_mel_scorer().timelines(mels, speakers=speakers)]

    def gap(pair) -> float:
        return max(abs(pair[0][k] - pair[1][k]) for k in pair[0])

    alone, together = answers(speaker_model, None), answers(speaker_model, ["a", "a"])
    # Alone, a clip and its 6 dB quieter copy look alike (up to the noise floor);
    # read against one speaker's voice, the level difference shows.
    assert gap(alone) < 0.02 and gap(together) > 0.2
    assert answers(speaker_model, [None, None]) == alone
    # one approx per clip: pytest >= 9.2 refuses approx on a list of dicts
    for two_speakers, one in zip(answers(speaker_model, ["a", "b"]), alone, strict=True):
        assert two_speakers == pytest.approx(one, abs=1e-6)
    # A model normalised per utterance has no use for speakers.
    utterance_model = EmotionRecognizer.from_file(tiny_model_file)
    assert answers(utterance_model, ["a", "a"]) == answers(utterance_model, None)
