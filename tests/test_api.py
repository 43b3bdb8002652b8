"""The public Python API: one way to load, three ways to predict, a speaker context, every error named."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import voiced, write_wav

import emotionnet
import emotionnet.cli.main
from emotionnet import EmotionRecognizer, FileResult, load_model
from emotionnet.environment import MODEL_ENV
from emotionnet.inference.recognizer import default_model_path

SR = 16_000


def test_the_library_reads_no_environment_the_command_line_does(monkeypatch, tiny_model_file, capsys):
    monkeypatch.setenv(MODEL_ENV, str(tiny_model_file))
    assert load_model().model_file == default_model_path() == EmotionRecognizer.from_file().model_file
    clip = write_wav(Path(str(tiny_model_file)).parent / "clip.wav", voiced(2.0))
    assert emotionnet.cli.main.main(["predict", str(clip), "--json"]) == 0  # the CLI's default is the variable's
    assert json.loads(capsys.readouterr().out)["probabilities"] == load_model(tiny_model_file).predict(
        clip).probabilities


def test_the_recognizer_has_a_small_public_surface(tiny_model_file):
    methods = {name for name, _ in inspect.getmembers(EmotionRecognizer, callable) if not name.startswith("_")}
    assert methods == {"predict", "predict_timeline", "predict_files", "speaker_context", "from_model",
                       "from_file", "from_onnx", "predict_arrays", "log_mel_scorer",
                       "windowing"}  # the one window rule for this model, as the live engine and the service apply it
    recognizer = load_model(tiny_model_file)
    assert (recognizer.window, recognizer.hop, recognizer.temperature) == (3.0, 1.5, 1.0)
    assert recognizer.features is recognizer.spec.features and recognizer.labels == emotionnet.LABELS


def test_a_speaker_context_from_the_api_is_the_one_evaluation_uses(tiny_speaker_model_file, tiny_model_file):
    from emotionnet.features import log_mel

    loud, soft = voiced(2.0, seed=1), 0.5 * voiced(2.0, seed=1)
    recognizer = load_model(tiny_speaker_model_file)
    context = recognizer.speaker_context([loud, soft], SR)
    with_context = recognizer.predict(soft, SR, context=context).probabilities
    mels = [log_mel(a, recognizer.features) for a in (loud, soft)]
    grouped = recognizer.log_mel_scorer().timelines(mels, speakers=["x", "x"])[1].prediction.probabilities
    assert with_context == pytest.approx(grouped, abs=1e-6)
    alone = recognizer.predict(soft, SR).probabilities
    assert max(abs(alone[k] - with_context[k]) for k in alone) > 1e-4  # the context changes the answer
    # A model normalised per utterance has no use for a context: the answer is the clip's own.
    utterance = load_model(tiny_model_file)
    assert utterance.predict(soft, SR, context=context) == utterance.predict(soft, SR)
    with pytest.raises(ValueError, match="at least one clip"):
        recognizer.speaker_context([])


def test_predict_files_checks_window_and_hop_before_reading_anything(tiny_model_file, tmp_path):
    recognizer = load_model(tiny_model_file)
    for window, hop in [(0.2, 0.1), (3.0, 0.0), (2.0, 3.0)]:
        with pytest.raises(ValueError, match="window|hop"):
            recognizer.predict_files([tmp_path / "not-there.wav"], window=window, hop=hop)
    good = write_wav(tmp_path / "a.wav", voiced(2.0))
    (result,) = recognizer.predict_files([good], window=1.0, hop=0.5)
    assert isinstance(result, FileResult) and result.ok and result.error is None
    assert result.timeline == recognizer.predict_timeline(good, window=1.0, hop=0.5)
    assert len(result.timeline.segments) == 3  # 2 s in 1 s windows every 0.5 s
    with pytest.raises(ValueError, match="hop"):
        recognizer.predict_timeline(good, hop=5.0)


def _exception_classes() -> dict[str, str]:
    """Every exception or warning class the package defines: name -> module."""
    found = {}
    for path in sorted(Path(emotionnet.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith(("Error", "Exception", "Warning"))
                    for b in node.bases):
                found[node.name] = path.name
    return found


def test_every_public_exception_is_exported():
    classes = _exception_classes()
    assert {"AudioError", "ModelFileError", "ModelSpecError", "OnnxBackendError", "MicrophoneError"} <= set(classes)
    private = {name for name in classes if name.startswith("_")}
    # CLIError belongs to the command line (it becomes a message and an exit status), not to the API;
    # Abandoned is the service's signal to a batch whose requests went away, never raised to a caller.
    missing = set(classes) - private - {"CLIError", "Abandoned"} - set(emotionnet.__all__)
    assert missing == set()
    for name in emotionnet.__all__:
        assert getattr(emotionnet, name) is not None
    assert issubclass(emotionnet.ModelFileError, ValueError) and issubclass(emotionnet.AudioError, ValueError)


def test_file_results_serialise_as_the_cli_prints_them(tiny_model_file, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"nonsense")
    good = write_wav(tmp_path / "good.wav", voiced(2.0))
    results = list(load_model(tiny_model_file).predict_files([good, bad]))
    assert results[0].to_dict()["path"] == str(good) and "probabilities" in results[0].to_dict()
    assert results[1].to_dict() == {"path": str(bad), "error": {"code": "bad_audio", "message": results[1].error}}
    assert np.isclose(sum(results[0].to_dict()["probabilities"].values()), 1.0)


def test_load_model_takes_a_name_a_model_file_or_an_onnx_file(tiny_model_file, tmp_path, monkeypatch):
    from emotionnet.inference.onnx_backend import export_onnx
    from emotionnet.inference.recognizer import UnknownModelError
    from emotionnet.models.names import MODELS, model_path

    monkeypatch.delenv(MODEL_ENV, raising=False)
    assert "fast" in MODELS and load_model("fast").model_file == model_path("fast")
    with pytest.warns(FutureWarning, match="'default' is now 'fast'"):  # the CRNN's name before 2026-12
        assert load_model("default").model_file == model_path("fast")
    with pytest.raises(UnknownModelError, match="unknown model 'no-such-model'.*whisper-base, fast"):
        load_model("no-such-model")
    recognizer = load_model(tiny_model_file)
    onnx_file = export_onnx(recognizer.network, recognizer.metadata, tmp_path / "tiny.onnx")
    from_onnx = load_model(str(onnx_file))
    assert from_onnx.backend == "onnx" and from_onnx.model_file == onnx_file
    audio = voiced(2.0)
    assert from_onnx.predict(audio, 16_000).probabilities == pytest.approx(
        recognizer.predict(audio, 16_000).probabilities, abs=1e-4)
    with pytest.raises(ValueError, match="ONNX file"):
        load_model(onnx_file, backend="torch")


def test_the_batched_methods_agree_with_predict(tiny_model_file):
    from emotionnet.features import log_mel

    recognizer = load_model(tiny_model_file)
    clips = [voiced(2.0, seed=1), voiced(5.0, seed=2)]
    one_by_one = [recognizer.predict_timeline(clip, 16_000) for clip in clips]
    from_arrays = recognizer.predict_arrays(clips)
    from_mels = recognizer.log_mel_scorer().timelines([log_mel(clip, recognizer.features) for clip in clips],
                                                      [clip.size / 16_000 for clip in clips])
    for expected, a, b in zip(one_by_one, from_arrays, from_mels):
        assert a.prediction.probabilities == pytest.approx(expected.prediction.probabilities, abs=1e-5)
        assert b.prediction.probabilities == pytest.approx(expected.prediction.probabilities, abs=1e-5)
        assert len(a.segments) == len(expected.segments) == len(b.segments)
    scored = recognizer.log_mel_scorer().scores([log_mel(clips[0], recognizer.features)])[0]
    assert scored.clip_probabilities(recognizer.temperature) == pytest.approx(
        list(one_by_one[0].prediction.probabilities.values()), abs=1e-5)
    with pytest.raises(ValueError, match="hop"):
        recognizer.predict_arrays(clips, hop=0)
    with pytest.raises(ValueError, match="hop"):  # the log-mel scorer: the window rule applied once, when it is made
        recognizer.log_mel_scorer(hop=0)


def test_no_module_outside_inference_touches_the_recognizers_internals():
    """The recognizer is the only way in: its scoring is private to `emotionnet/inference/`."""
    root = Path(emotionnet.__file__).parent
    offenders = []
    for path in [*root.rglob("*.py"), *(root.parent / "benchmarks").glob("*.py"), *(root.parent / "scripts").glob("*.py")]:
        if "inference" in path.relative_to(root.parent).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("scoring", "_scoring"):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.ImportFrom) and node.module == "emotionnet.inference.scoring":
                offenders.append(f"{path.name}:{node.lineno} imports the scoring module")
    assert not offenders


def test_every_error_is_an_emotionnet_error_and_keeps_its_builtin_base():
    """One `except EmotionNetError` catches what EmotionNet refuses; `except ValueError` still works."""
    classes = _exception_classes()
    for name in set(classes) - {"CLIError", "Abandoned"}:
        if issubclass(getattr(emotionnet, name), Warning):  # a warning is not a refusal
            continue
        assert issubclass(getattr(emotionnet, name), emotionnet.EmotionNetError), name
    assert issubclass(emotionnet.AudioTooLongError, emotionnet.AudioError)
    assert issubclass(emotionnet.AudioError, ValueError) and issubclass(emotionnet.MissingExtraError, ImportError)


def test_audio_over_the_limit_is_told_apart_by_its_class(tiny_model_file, tmp_path):
    from emotionnet.inference.results import FileResult

    long = write_wav(tmp_path / "long.wav", voiced(3.0))
    [result] = load_model(tiny_model_file).predict_files([long], max_seconds=1.0)
    assert result.to_dict()["error"]["code"] == "audio_too_long"
    with pytest.raises(emotionnet.AudioTooLongError):
        emotionnet.load_audio(long, max_seconds=1.0)
    # a message that merely says "too long" is bad audio, not over the limit
    named = emotionnet.AudioError("x: name too long")
    assert FileResult("x", error=str(named), cause=named).to_dict()["error"]["code"] == "bad_audio"


def test_the_recognizer_is_built_by_its_constructor(tiny_model_file):
    """from_file, from_onnx and from_model all end in the constructor: no attributes patched afterwards."""
    from emotionnet.models.file import load_model_file

    network, spec, metadata = load_model_file(tiny_model_file)
    built = EmotionRecognizer(network, spec, vad="energy", model_file=tiny_model_file, metadata=metadata)
    loaded = load_model(tiny_model_file, vad="energy")
    assert (built.model_file, built.backend, built.vad, built.metadata) == (loaded.model_file, "torch", "energy",
                                                                            loaded.metadata)
    clip = voiced(2.0)
    assert built.predict(clip, 16_000).probabilities == pytest.approx(loaded.predict(clip, 16_000).probabilities)
    source = inspect.getsource(emotionnet.inference.recognizer)
    assert "__new__" not in source and ".model_file, recognizer.backend =" not in source
