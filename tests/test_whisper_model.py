"""The `whisper` architecture end to end: its model file, the digest check, training's cache path = inference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import voiced

from emotionnet.models import build_model
from emotionnet.models.file import ModelFileError, load_model_file, save_model_file
from emotionnet.models.spec import ModelSpec, ModelSpecError, default_hparams
from emotionnet.models.whisper.frontend import WHISPER_FEATURES
from emotionnet.models.whisper.head import CACHE_POOL, pool_frames
from emotionnet.models.whisper.weights import installed_parts

pytestmark = pytest.mark.whisper
DIGEST = "e88a8f7791e9ff5776cdfa78b83d0adc0fbf157a19eed34bcb6b3b02c85e1ef1"


@pytest.fixture(scope="module", autouse=True)
def _weights():
    if installed_parts() is None:
        pytest.skip("Whisper-base weight packages not installed (a core dependency: reinstall emotionnet)")


def head_file(path, digest: str = DIGEST, seed: int = 0, varied: bool = False, **changes):
    """A whisper head file: trained on 3 s windows as before, or (`varied`) at any length of 1-10 s."""
    hparams = {**default_hparams("whisper", 80), "encoder_digest": digest, **changes}
    hparams = {k: v for k, v in hparams.items() if v is not None}  # None: a field files before it lacked
    torch.manual_seed(seed)
    model = build_model("whisper", **hparams)
    lengths = ((1.0, 10.0), "own length") if varied else (None, "tile")
    spec = ModelSpec("whisper", hparams, WHISPER_FEATURES, 3.0, 3.0, 1.0, *lengths)
    save_model_file(path, model, {**spec.to_metadata(), "training": {}, "metrics": {}})
    return path


def test_the_file_holds_the_head_only(tmp_path):
    path = head_file(tmp_path / "w.safetensors")
    assert path.stat().st_size < 2_000_000  # the 80 MB encoder is the user's, not the file's
    model, _, meta = load_model_file(path)
    assert meta["model"]["hparams"]["encoder_digest"] == DIGEST
    assert all(name.startswith("head.") for name in model.state_dict())


def test_other_encoder_weights_are_refused_naming_the_digest(tmp_path):
    path = head_file(tmp_path / "w.safetensors", digest="0" * 64)
    with pytest.raises(ModelFileError, match=r"w\.safetensors.*digest.*0000000000000000"):
        load_model_file(path)


def test_bad_whisper_hyper_parameters_are_refused(tmp_path):
    good = {**default_hparams("whisper", 80), "encoder_digest": DIGEST}
    for change, message in [({"layers": 7}, "layers"), ({"encoder_digest": "abc"}, "digest"),
                            ({"encoder": "openai/whisper-large"}, "unknown encoder"), ({"width": 768}, "width"),
                            ({"head": "linear"}, "head must be one of")]:
        with pytest.raises(ModelSpecError, match=message):
            ModelSpec.from_metadata({**ModelSpec("whisper", {**good, **change}, WHISPER_FEATURES).to_metadata()})


def test_cached_states_give_the_recognizers_answer(tmp_path, monkeypatch):
    """Training reads the encoder cache; users run the whole network: the same windows, the same logits."""
    from emotionnet.inference.recognizer import load_model
    from emotionnet.training.encoder_cache import encode_windows, encoder_inputs

    recognizer = load_model(head_file(tmp_path / "w.safetensors", seed=3, layers=4))
    monkeypatch.setattr(recognizer.network.encoder, "bfloat16_matmuls", False)  # the cache's float32
    audio = voiced(4.2)
    timeline = recognizer.predict_timeline(audio, 16_000)
    network = load_model_file(tmp_path / "w.safetensors")[0]
    states = encode_windows(network.encoder, encoder_inputs(audio, 3.0, 3.0))
    with torch.inference_mode():
        cached = torch.softmax(network.head(states[:, :5].float()), dim=-1).numpy()
    direct = np.array([[s.prediction.probabilities[k] for k in s.prediction.probabilities] for s in timeline.segments])
    assert len(timeline.segments) == len(cached) == 2
    assert np.abs(direct - cached).max() < 2e-3  # the cache stores float16


def test_bfloat16_products_give_float32s_answer_and_the_cache_stays_float32(tmp_path, monkeypatch):
    """The fast path where the CPU has native bfloat16: states within bfloat16's rounding, the same answer."""
    from emotionnet.inference.recognizer import load_model
    from emotionnet.training.encoder_cache import encode_windows, encoder_inputs

    recognizer = load_model(head_file(tmp_path / "w.safetensors", seed=5, layers=4))
    encoder = recognizer.network.encoder
    windows = encoder_inputs(voiced(3.0), 3.0, 3.0)
    with torch.inference_mode():
        exact = encoder(windows, bfloat16_matmuls=False)
        fast = encoder(windows, bfloat16_matmuls=True)
    assert all(f.dtype == torch.float32 for f in fast)
    assert torch.equal(exact[0], fast[0])  # the convolutions stay float32
    for e, f in zip(exact[1:], fast[1:], strict=True):
        assert 0 < (f - e).norm() / e.norm() < 0.02  # the blocks' products rounded, not broken
    answers = []
    for setting in (False, True):
        monkeypatch.setattr(encoder, "bfloat16_matmuls", setting)
        answers.append(recognizer.predict(voiced(3.0), 16_000).probabilities)
    assert max(abs(answers[0][k] - answers[1][k]) for k in answers[0]) < 0.03
    monkeypatch.setattr(encoder, "bfloat16_matmuls", True)  # as a user's process has it: the cache ignores it
    with torch.inference_mode():
        cached = encode_windows(encoder, windows)[:, -1].float()
    assert torch.allclose(cached, pool_frames(exact[-1], CACHE_POOL), atol=2e-3, rtol=2e-3)
    assert not torch.allclose(cached, pool_frames(fast[-1], CACHE_POOL), atol=2e-3, rtol=2e-3)


def test_bfloat16_is_chosen_by_the_cpu_unless_the_caller_says():
    from emotionnet.models.whisper.weights import use_bfloat16_matmuls

    assert use_bfloat16_matmuls("float32") is False and use_bfloat16_matmuls("bfloat16") is True
    native = torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported()
    assert use_bfloat16_matmuls() is use_bfloat16_matmuls("auto") is native
    with pytest.raises(ValueError, match="compute_type 'half'"):
        use_bfloat16_matmuls("half")


def test_whisper_base_is_the_default_everywhere_and_says_so(capsys, monkeypatch):
    """load_model() and `predict` without --model run whisper-base (issue 27 item 2), the text names it, and
    the CRNN's old name "default" loads `fast` with one warning line."""
    import json
    from pathlib import Path

    from emotionnet.cli.main import main
    from emotionnet.environment import MODEL_ENV
    from emotionnet.inference.recognizer import load_model
    from emotionnet.models.names import model_path

    monkeypatch.delenv(MODEL_ENV, raising=False)
    path = model_path("whisper-base")
    assert path.stat().st_size <= 5_000_000
    recognizer = load_model()
    assert recognizer.model_file == path and recognizer.spec.arch == "whisper"
    assert recognizer.spec.hparams["encoder_digest"] == DIGEST and recognizer.metadata["training"]["split"] == "v3"
    clip = Path(__file__).resolve().parents[1] / "emotionnet" / "assets" / "speech.wav"
    expected = recognizer.predict(str(clip))
    assert main(["predict", str(clip), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[0])
    assert answer["emotion"] == expected.emotion
    assert answer["confidence"] == pytest.approx(expected.confidence, abs=1e-4)
    assert main(["predict", str(clip)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "model: whisper-base"
    assert main(["predict", str(clip), "--model", "default"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().splitlines()[-1] == "model: fast"
    assert err.strip().splitlines() == ["emotionnet: warning: the model name 'default' is now 'fast' (the default "
                                        "model is whisper-base)"]


def test_batch_takes_whisper_base(tmp_path):
    """A batch row from whisper-base (as `batch --model whisper-base` workers make them) is the Python API's answer."""
    from conftest import write_wav

    from emotionnet.batch import BatchPredictor
    from emotionnet.inference.recognizer import load_model

    clip = write_wav(tmp_path / "a.wav", voiced(2.5, seed=4))
    rows = BatchPredictor("whisper-base").predict_paths([str(clip)])
    expected = load_model("whisper-base").predict(str(clip))
    assert rows[0]["error"] is None and rows[0]["emotion"] == expected.emotion
    assert rows[0]["confidence"] == pytest.approx(expected.confidence, abs=1e-4)


def test_audio_shorter_than_the_window_is_scored_over_its_own_frames(tmp_path):
    """No repeats and no padding in the head's statistics: a 1.7 s clip at a 6 s window, alone or in a
    batch beside a longer clip, gets the logits of the clip encoded alone at its own length."""
    from emotionnet.features import log_mel, model_input
    from emotionnet.inference.recognizer import load_model

    recognizer = load_model(head_file(tmp_path / "w.safetensors", seed=7, varied=True, head="stats"))
    network = recognizer.network
    network.encoder.bfloat16_matmuls = False
    short, long = voiced(1.7, seed=1), voiced(9.0, seed=2)
    mel = log_mel(short, WHISPER_FEATURES)
    with torch.inference_mode():
        alone = torch.softmax(network(model_input(mel, WHISPER_FEATURES, mel.shape[-1])[None]), dim=-1)[0]
        repeated = torch.softmax(network(model_input(mel, WHISPER_FEATURES, 600)[None]), dim=-1)[0]
    assert (alone - repeated).abs().max() > 1e-3  # repeats change the answer: what the old path did
    both = recognizer.predict_arrays([short, long], window=6.0, hop=6.0)
    got = np.array([both[0].prediction.probabilities[k] for k in both[0].prediction.probabilities])
    assert np.abs(got - alone.numpy()).max() < 1e-4
    assert len(both[1].segments) == 2  # the long clip is windowed as before


def test_a_head_trained_on_3_s_windows_refuses_other_windows_with_one_line(tmp_path):
    """The shipped 3 s head at 6 s answered fear 1.0 to every clip: outside its windows it now refuses."""
    from emotionnet.inference.recognizer import load_model

    recognizer = load_model(head_file(tmp_path / "w.safetensors", seed=2, head="stats"))
    assert recognizer.spec.window_range == (3.0, 3.0) and recognizer.spec.tiles_short_windows
    recognizer.predict(voiced(2.0), 16_000)  # its own window: answered (short clips repeated, as trained)
    for window in (1.0, 6.0):
        with pytest.raises(ValueError, match=r"trained on 3 s windows and answers those only, not \d+ s"):
            recognizer.predict_timeline(voiced(2.0), 16_000, window=window)


def test_onnx_refuses_whisper_base_in_one_line_and_writes_nothing(tmp_path, capsys):
    """Export used to write a 45 MB file onnxruntime then refused, and --backend onnx a traceback."""
    from pathlib import Path

    from emotionnet.cli.main import main

    out = tmp_path / "w.onnx"
    assert main(["export", "--onnx", str(out), "--model", "whisper-base"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("emotionnet: error: whisper models run on the torch backend only") and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.iterdir())
    clip = Path(__file__).resolve().parents[1] / "emotionnet" / "assets" / "speech.wav"
    assert main(["predict", str(clip), "--model", "whisper-base", "--backend", "onnx"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("emotionnet: error: whisper models run on the torch backend only") and err.count("\n") == 1


PROPERTY_WINDOWS = (1.0, 2.0, 3.0, 6.0, 10.0)


def property_clips() -> list:
    """The shipped clip, plus the first validation clip (sorted by path) of four corpora when the data is here."""
    from pathlib import Path

    from emotionnet.audio import load_audio

    clips = [load_audio(Path(__file__).resolve().parents[1] / "emotionnet" / "assets" / "speech.wav")]
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    for pattern in ("CREMA-D/1003_*.opus", "RAVDESS/Actor_06/*.opus", "nEMO/samples/KS0_*.opus", "SAVEE/DC_*.opus"):
        found = sorted(data.glob(pattern))
        if found:
            clips.append(load_audio(found[0]))
    return clips


def test_the_shipped_whisper_base_answers_as_at_its_own_window_or_refuses_in_one_line():
    """Issue 27's property: the same speech at windows of 1, 2, 3, 6 and 10 s (hop half the window)
    gets its own window's top class and no probability of 0.999 or more, or the window is refused
    in one line naming the windows the head was trained on (at 6 s the 3 s head answered fear 1.0
    to every clip, and neutral 1.0 at 1 s). Corpus clips join when ../shared/data is here."""
    from emotionnet.inference.recognizer import load_model

    recognizer = load_model("whisper-base")
    for clip in property_clips():
        own = recognizer.predict_timeline(clip, 16_000).prediction
        assert own.confidence < 0.999
        for window in PROPERTY_WINDOWS:
            try:
                answer = recognizer.predict_timeline(clip, 16_000, window=window, hop=window / 2).prediction
            except ValueError as exc:
                assert "trained on" in str(exc) and "\n" not in str(exc)
                continue
            assert (answer.emotion, answer.confidence < 0.999) == (own.emotion, True), (window, answer)


def test_the_statistics_cache_holds_what_the_model_scores(tmp_path):
    """Training on the statistics cache and users running the whole network: one clip whole, the same logits;
    a crop is one stretch of 1-10 s drawn from the clip's key, the same on every run."""
    from emotionnet.features import log_mel, model_input
    from emotionnet.inference.recognizer import load_model
    from emotionnet.training.statistics_cache import encode_statistics, stretch

    recognizer = load_model(head_file(tmp_path / "w.safetensors", seed=9, varied=True, head="stats"))
    network = recognizer.network
    network.encoder.bfloat16_matmuls = False
    audio = voiced(2.6, seed=5)
    row = torch.from_numpy(encode_statistics(network.encoder, audio, "clean", "ab" * 20))
    mel = log_mel(audio, WHISPER_FEATURES)
    with torch.inference_mode():
        cached = network.head.classify_statistics(row)
        direct = network(model_input(mel, WHISPER_FEATURES, mel.shape[-1])[None])
    assert row.shape == (1, 7 * 2 * 512) and torch.allclose(cached, direct, atol=1e-4)
    crop = stretch(audio, "crop", "ab" * 20)
    assert 100 <= crop.shape[-1] < mel.shape[-1] and torch.equal(crop, stretch(audio, "crop", "ab" * 20))
    assert stretch(voiced(1.2), "crop", "ab" * 20) is None  # too short to crop


def test_a_speaker_context_changes_whisper_answers_only_where_the_file_says(tmp_path):
    """Speaker context for whisper-base (issue 27): a file without `context_alpha` (written before it)
    answers exactly as each clip alone, with or without context; at alpha > 0 the clip alone still
    answers as before, and with its speaker's context differently, the same on every call, as
    `same_speaker=True` does. At alpha 1 a clip read against itself alone keeps only the head's bias."""
    from emotionnet.inference.recognizer import load_model

    def probabilities(prediction) -> np.ndarray:
        return np.array(list(prediction.probabilities.values()))

    clips = [voiced(2.0, seed=1), voiced(2.5, f0=220.0, seed=2), voiced(1.5, f0=110.0, seed=3)]
    plain = load_model(head_file(tmp_path / "a0.safetensors", seed=4, head="stats", context_alpha=None), vad="energy")
    assert plain.spec.hparams["context_alpha"] == 0.0 and not plain.reads_context
    reading = load_model(head_file(tmp_path / "a1.safetensors", seed=4, head="stats", context_alpha=1.0), vad="energy")
    assert reading.reads_context
    for network in (plain.network, reading.network):
        network.encoder.bfloat16_matmuls = False
    for path in (tmp_path / "clip0.wav", tmp_path / "clip1.wav"):
        import soundfile

        soundfile.write(path, clips[int(path.stem[-1])], 16_000, subtype="FLOAT")  # the arrays exactly
    alone = [probabilities(plain.predict(c, 16_000)) for c in clips]
    assert all(np.array_equal(probabilities(reading.predict(c, 16_000)), a) for c, a in zip(clips, alone))
    same = [probabilities(r.timeline.prediction) for r in plain.predict_files(
        [tmp_path / "clip0.wav", tmp_path / "clip1.wav"], same_speaker=True)]
    assert np.allclose(same, alone[:2], atol=1e-6)  # alpha 0: context changes nothing

    context = reading.speaker_context(clips, 16_000)
    with_context = [probabilities(reading.predict(c, 16_000, context=context)) for c in clips]
    assert min(np.abs(w - a).max() for w, a in zip(with_context, alone)) > 1e-3
    again = reading.speaker_context(clips, 16_000)
    assert np.array_equal(probabilities(reading.predict(clips[0], 16_000, context=again)), with_context[0])
    by_files = [probabilities(r.timeline.prediction) for r in reading.predict_files(
        [tmp_path / "clip0.wav", tmp_path / "clip1.wav"], same_speaker=True)]
    two = reading.speaker_context(clips[:2], 16_000)
    assert np.allclose(by_files, [probabilities(reading.predict(c, 16_000, context=two)) for c in clips[:2]],
                       atol=1e-5)
    itself = probabilities(reading.predict(clips[0], 16_000, context=reading.speaker_context(clips[:1], 16_000)))
    bias = torch.softmax(reading.network.head.classify.bias.detach() / reading.temperature, dim=0).numpy()
    assert np.allclose(itself, bias, atol=1e-5)


def test_a_bad_speaker_context_is_one_line(tmp_path):
    from emotionnet.inference.recognizer import load_model

    plain = load_model(head_file(tmp_path / "a0.safetensors", seed=4, head="stats"))
    reading = load_model(head_file(tmp_path / "a1.safetensors", seed=4, head="stats", context_alpha=0.5))
    with pytest.raises(ValueError, match="needs at least one clip"):
        reading.speaker_context([])
    context = reading.speaker_context([voiced(1.0)], 16_000)
    with pytest.raises(ValueError, match=r"^this speaker context is a whisper head's and this model reads none[^\n]*$"):
        plain.predict(voiced(1.0), 16_000, context=context)
    good = {**default_hparams("whisper", 80), "encoder_digest": DIGEST}
    for change, message in [({"context_alpha": 1.5}, "context_alpha must be a number from 0 to 1"),
                            ({"context_alpha": 0.5, "head": "attentive"}, "context_alpha must be 0 for an attentive")]:
        with pytest.raises(ModelSpecError, match=message):
            ModelSpec.from_metadata(ModelSpec("whisper", {**good, **change}, WHISPER_FEATURES).to_metadata())
