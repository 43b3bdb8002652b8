"""The ONNX backend: export, metadata, where the .onnx comes from, and agreement with torch."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA, voiced, write_wav

from emotionnet import EmotionRecognizer
from emotionnet.audio import load_audio
from emotionnet.cli.main import main
from emotionnet.digest import file_digest
from emotionnet.features import log_mel
from emotionnet.inference import onnx_backend
from emotionnet.inference.onnx_backend import OnnxScorer, export_onnx, read_onnx_metadata
from emotionnet.inference.windows import cut_windows
from emotionnet.models.file import load_model_file

TOLERANCE = 1e-4


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    """Every test exports into its own cache, never the user's: the command line's through its
    environment, the library's through `cache_dir` (`onnx_recognizer`)."""
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


def onnx_recognizer(model_file: Path, cache: Path) -> EmotionRecognizer:
    """`model_file` on the onnx backend, its export kept in the test's cache folder."""
    return EmotionRecognizer.from_file(model_file, backend="onnx", cache_dir=cache.parent)


@pytest.fixture
def model_copy(tmp_path, tiny_model_file) -> Path:
    """A private copy of the tiny model, so sibling .onnx files do not leak into other tests."""
    return Path(shutil.copy(tiny_model_file, tmp_path / "tiny.safetensors"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """A few real clips from each corpus if the corpora are here, else generated speech-like audio."""
    if (SHARED_DATA / "CREMA-D").is_dir():
        from emotionnet.corpora import audio_files

        found = []
        for corpus in ("CREMA-D", "RAVDESS", "TESS", "SAVEE"):
            if (SHARED_DATA / corpus).is_dir():
                found.extend(audio_files(SHARED_DATA / corpus)[:: 997][:3])
        if found:
            return found
    folder = tmp_path_factory.mktemp("generated")
    return [write_wav(folder / f"{i}.wav", voiced(s, f0=f0, seed=i))
            for i, (s, f0) in enumerate([(2.0, 140), (3.5, 220), (7.0, 110)])]


def model_inputs(recognizer: EmotionRecognizer, paths: list[Path]) -> torch.Tensor:
    frames = recognizer.spec.frames(recognizer.window)
    hop = round(recognizer.hop * recognizer.features.sample_rate / recognizer.features.hop_length)
    windows = [cut_windows(log_mel(load_audio(p), recognizer.features), frames, hop, recognizer.features)[0]
               for p in paths]
    return torch.cat(windows)


def test_export_writes_a_self_describing_onnx(tmp_path, tiny_model_file):
    import onnx

    model, _, metadata = load_model_file(tiny_model_file)
    out = export_onnx(model, metadata, tmp_path / "tiny.onnx", source_sha1=file_digest(tiny_model_file))
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    (graph_input,) = proto.graph.input
    (graph_output,) = proto.graph.output
    assert graph_input.name == "features" and graph_output.name == "logits"
    dims = graph_input.type.tensor_type.shape.dim
    frames = EmotionRecognizer.from_file(tiny_model_file).spec.frames(3.0)
    assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [64, frames]
    props = read_onnx_metadata(out)
    assert json.loads(props["emotionnet"]) == metadata
    assert props["emotionnet.model_sha1"] == file_digest(tiny_model_file)


def test_onnxruntime_matches_torch_logits(tmp_path, tiny_model_file, clips):
    recognizer = EmotionRecognizer.from_file(tiny_model_file)
    out = export_onnx(recognizer.network, recognizer.metadata, tmp_path / "tiny.onnx")
    inputs = model_inputs(recognizer, clips)
    assert len(inputs) >= len(clips)
    scorer = OnnxScorer(out, 64, recognizer.spec.frames(recognizer.window))
    with torch.inference_mode():
        expected = recognizer.network(inputs)
    for batch in (inputs[:1], inputs):  # batch of one and of many: the batch axis is dynamic
        got = scorer(batch)
        assert got.shape == (len(batch), 6)
        assert float((got - expected[: len(batch)]).abs().max()) < TOLERANCE


def test_the_crnn_exports_too(tmp_path):
    from emotionnet.models import build_model
    from emotionnet.models.spec import ModelSpec

    torch.manual_seed(0)
    spec = ModelSpec("crnn", {"channels": [8, 16, 16], "hidden": 16, "dropout": 0.0}, window=2.0, hop=1.0)
    model = build_model("crnn", **spec.model_hparams).eval()
    metadata = spec.to_metadata()
    recognizer = EmotionRecognizer.from_model(model, metadata)
    out = export_onnx(model, metadata, tmp_path / "crnn.onnx")
    scorer = OnnxScorer(out, 64, recognizer.spec.frames(2.0))
    inputs = torch.randn(5, 64, recognizer.spec.frames(2.0))
    with torch.inference_mode():
        assert float((scorer(inputs) - model(inputs)).abs().max()) < TOLERANCE


def test_the_cache_is_exported_once_and_reused(model_copy, cache, monkeypatch):
    recognizer = onnx_recognizer(model_copy, cache)
    cached = cache / f"{file_digest(model_copy)}.onnx"
    assert recognizer.network.source == cached and cached.is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "export_onnx", refuse)
    assert onnx_recognizer(model_copy, cache)._scoring.network.source == cached


def test_a_sibling_onnx_is_preferred_and_a_stale_one_ignored(capsys, model_copy, tmp_path, cache):
    sibling = model_copy.with_suffix(".onnx")
    assert main(["export", "--onnx", str(sibling), "--model", str(model_copy)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {sibling}" in out
    difference = float(out.split("max |logit difference| ")[1].split()[0])
    assert difference < TOLERANCE
    assert onnx_recognizer(model_copy, cache)._scoring.network.source == sibling
    assert not cache.exists()

    # Another model's export under this model's name: not used, with a warning.
    model, _, metadata = load_model_file(model_copy)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)
    export_onnx(model, metadata, sibling, source_sha1="0" * 40)
    with pytest.warns(UserWarning, match="was not exported from"):
        recognizer = onnx_recognizer(model_copy, cache)
    assert recognizer.network.source == cache / f"{file_digest(model_copy)}.onnx"
    clip = write_wav(tmp_path / "clip.wav", voiced(2.0))
    assert main(["predict", str(clip), "--model", str(model_copy), "--backend", "onnx", "--json"]) == 0
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"emotionnet: warning: {sibling} was not exported from tiny.safetensors")


def test_a_tampered_onnx_with_a_copied_tag_is_not_trusted(model_copy, tmp_path):
    """The tag only names the model file; the answers have to agree too."""
    sibling = model_copy.with_suffix(".onnx")
    model, _, metadata = load_model_file(model_copy)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.5)
    export_onnx(model, metadata, sibling, source_sha1=file_digest(model_copy))  # the right tag, other weights
    with pytest.warns(UserWarning, match="answers differently"):
        recognizer = EmotionRecognizer.from_file(model_copy, backend="onnx")
    assert isinstance(recognizer.network.source, bytes)  # exported afresh, in memory
    clip = voiced(2.0)
    torch_answer = EmotionRecognizer.from_file(model_copy).predict(clip, 16_000).probabilities
    onnx_answer = recognizer.predict(clip, 16_000).probabilities
    assert max(abs(torch_answer[k] - onnx_answer[k]) for k in torch_answer) < TOLERANCE


def test_an_unwritable_cache_falls_back_to_memory(model_copy, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("the cache cannot be made under a file")
    recognizer = EmotionRecognizer.from_file(model_copy, backend="onnx", cache_dir=blocker)
    assert isinstance(recognizer.network.source, bytes)
    assert recognizer.predict(voiced(2.0), 16_000).emotion


def test_predict_backend_onnx_matches_torch(capsys, tiny_model_file, clips, tmp_path):
    long_file = write_wav(tmp_path / "long.wav", np.concatenate(
        [voiced(3.0, seed=7), np.zeros(4 * 16_000, np.float32), voiced(3.0, seed=8)]))
    paths = [*map(str, clips), str(long_file)]
    results = {}
    for backend in ("torch", "onnx"):
        code = main(["predict", *paths, "--json", "--model", str(tiny_model_file), "--backend", backend])
        out, err = capsys.readouterr()
        assert code == 0 and err == ""
        results[backend] = [json.loads(line) for line in out.splitlines()]
    assert len(results["onnx"]) == len(paths)
    assert any("segments" in r for r in results["onnx"])
    for t, o in zip(results["torch"], results["onnx"]):
        assert t["path"] == o["path"] and t["emotion"] == o["emotion"]
        np.testing.assert_allclose(list(o["probabilities"].values()), list(t["probabilities"].values()),
                                   atol=TOLERANCE)
        assert len(t.get("segments", [])) == len(o.get("segments", []))
        for ts, os_ in zip(t.get("segments", []), o.get("segments", [])):
            assert (ts["speech"], ts["emotion"]) == (os_["speech"], os_["emotion"])
            if ts["speech"]:
                np.testing.assert_allclose(list(os_["probabilities"].values()),
                                           list(ts["probabilities"].values()), atol=TOLERANCE)


def test_onnx_backend_refuses_another_window(capsys, tiny_model_file, clips):
    code = main(["predict", str(clips[0]), "--model", str(tiny_model_file), "--backend", "onnx", "--window", "5"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("emotionnet: error: window 5 s with the onnx backend")
    # the model's own window, given explicitly, is fine; so is another hop
    assert main(["predict", str(clips[0]), "--model", str(tiny_model_file), "--backend", "onnx",
                 "--window", "3", "--hop", "1"]) == 0


def test_export_cli_errors(capsys, tiny_model_file, tmp_path):
    assert main(["export", "--onnx", str(tmp_path / "x.bin"), "--model", str(tiny_model_file)]) == 1
    assert "should end in .onnx" in capsys.readouterr().err
    assert main(["export", "--onnx", str(tmp_path / "x.onnx"), "--model", str(tmp_path / "none.safetensors")]) == 1
    assert "model file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["export", "--help"])
    assert info.value.code == 0 and "examples:" in capsys.readouterr().out


def test_predict_with_an_exported_onnx_file_uses_that_file(capsys, tiny_model_file, clips, tmp_path):
    onnx_file = tmp_path / "exported.onnx"
    assert main(["export", "--onnx", str(onnx_file), "--model", str(tiny_model_file)]) == 0
    capsys.readouterr()
    answers = {}
    for model in (tiny_model_file, onnx_file):
        assert main(["predict", str(clips[0]), "--json", "--model", str(model)]) == 0
        answers[model] = json.loads(capsys.readouterr().out)
    # the tiny model's answers, not the shipped model's (the packaged .onnx)
    np.testing.assert_allclose(list(answers[onnx_file]["probabilities"].values()),
                               list(answers[tiny_model_file]["probabilities"].values()), atol=TOLERANCE)


def test_a_file_that_is_not_onnx_is_one_clear_line(capsys, clips, tmp_path):
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x00" * 100)
    assert main(["predict", str(clips[0]), "--model", str(fake)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"emotionnet: error: {fake}: ") and len(err.strip().splitlines()) == 1
    assert main(["predict", str(clips[0]), "--model", str(fake), "--backend", "torch"]) == 1
    assert "is an ONNX file" in capsys.readouterr().err


def test_an_onnx_file_loads_in_every_surface(tiny_model_file, tmp_path, capsys):
    """`load_model("x.onnx")` from Python, and --model x.onnx in evaluate, serve, batch and the app."""
    from emotionnet import load_model
    from emotionnet.app.analysis import analyse
    from emotionnet.batch.predictor import BatchPredictor
    from emotionnet.serving.model import ServedModel

    recognizer = load_model(tiny_model_file)
    onnx_file = export_onnx(recognizer.network, recognizer.metadata, tmp_path / "tiny.onnx")
    wav = write_wav(tmp_path / "a.wav", voiced(2.0))
    expected = recognizer.predict(wav).probabilities

    def close(probabilities) -> None:
        np.testing.assert_allclose(list(probabilities.values()), list(expected.values()), atol=TOLERANCE)

    close(load_model(onnx_file).predict(wav).probabilities)
    served = ServedModel.load(str(onnx_file))
    close(served.score_uploads([("a.wav", wav.read_bytes())], None, None, math.inf)[0].prediction.probabilities)
    row = BatchPredictor(str(onnx_file)).predict_paths([str(wav)])[0]
    close({label: row[f"p_{label}"] for label in expected})
    close(analyse(load_model(str(onnx_file)), wav.read_bytes(), "a.wav").prediction.probabilities)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,emotion\na.wav,happy\n")
    assert main(["evaluate", "--manifest", str(manifest), "--model", str(onnx_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "tiny.onnx"


def test_an_unknown_model_name_is_one_line_naming_the_known_ones(capsys, clips):
    assert main(["predict", str(clips[0]), "--model", "whisper-tiny"]) == 1
    assert capsys.readouterr().err == ("emotionnet: error: unknown model 'whisper-tiny' (the model names: whisper-base, fast, face; "
                                       "or give a .safetensors or .onnx file)\n")
    assert main(["predict", str(clips[0]), "--model", "fast", "--json"]) == 0
