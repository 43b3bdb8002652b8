"""The model file: safetensors weights plus JSON metadata, and the two architectures."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from emotionnet.features import FeatureConfig
from emotionnet.labels import LABELS
from emotionnet.models import FAMILIES, build_model, count_parameters
from emotionnet.models.file import (
    FORMAT,
    METADATA_KEY,
    ModelFileError,
    load_model_file,
    read_model_file,
    save_model_file,
)

SMALL = {
    "cnn": {"channels": [8, 16], "convs_per_block": 1, "dropout": 0.0, "n_mels": 64},
    "crnn": {"channels": [8, 16, 16], "hidden": 16, "dropout": 0.0, "n_mels": 64},
}


def _meta(arch: str, hparams: dict, model: torch.nn.Module) -> dict:
    return {
        "sample_rate": 16_000,
        "features": FeatureConfig().to_dict(),
        "model": {"arch": arch, "hparams": hparams, "parameters": count_parameters(model)},
        "temperature": 1.3,
        "training": {"recipe": "test", "split": "v1"},
        "metrics": {},
    }


def _inputs() -> torch.Tensor:
    return torch.randn(3, 64, 120, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("arch", ["cnn", "crnn"])
def test_round_trip_gives_identical_outputs(tmp_path, arch):
    torch.manual_seed(0)
    model = build_model(arch, **SMALL[arch]).eval()
    # Non-trivial batch-norm statistics, so buffers are round-tripped too.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    path = tmp_path / f"{arch}.safetensors"
    save_model_file(path, model, _meta(arch, SMALL[arch], model))
    assert not list(tmp_path.glob("*.tmp"))  # written atomically, nothing left over

    loaded, _, meta = load_model_file(path)
    assert not loaded.training
    assert type(loaded) is type(model)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name  # bit-identical weights and buffers
    x = _inputs()
    with torch.no_grad():
        # Loaded models run channels-last (faster on CPU), which only reorders the sums.
        assert torch.allclose(loaded(x), model(x), atol=1e-5, rtol=0)
    assert meta["format"] == FORMAT == 1
    assert meta["labels"] == list(LABELS)
    assert meta["temperature"] == 1.3
    assert meta["model"]["parameters"] == count_parameters(loaded)
    assert FeatureConfig.from_dict(meta["features"]) == FeatureConfig()


def test_fixture_model_file_loads(tiny_model_file):
    model, _, meta = load_model_file(tiny_model_file)
    assert meta["model"]["arch"] == "cnn"
    assert model(torch.zeros(1, 64, 50)).shape == (1, 6)


def test_loader_never_unpickles(tmp_path, monkeypatch, tiny_model_file):
    """safetensors holds raw tensors: loading must not reach pickle or torch.load."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the model loader unpickled something")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model, _, meta = load_model_file(tiny_model_file)
    assert meta["format"] == FORMAT


def test_pickled_checkpoint_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="not a readable .safetensors model file"):
        load_model_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found") as info:
        load_model_file(tmp_path / "absent.safetensors")
    assert "absent.safetensors" in str(info.value)


def test_text_file(tmp_path):
    path = tmp_path / "readme.safetensors"
    path.write_text("this is a text file, not a model\n" * 10)
    with pytest.raises(ModelFileError, match="not a readable .safetensors model file") as info:
        load_model_file(path)
    assert str(path) in str(info.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model_file(path)


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_file(tmp_path, tiny_model_file, keep):
    data = tiny_model_file.read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="not a readable .safetensors model file") as info:
        load_model_file(path)
    assert str(path) in str(info.value)


def test_foreign_safetensors(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2, 2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(ModelFileError, match="not an EmotionNet model"):
        load_model_file(path)


def _rewrite_meta(source, target, change) -> None:
    tensors, meta = read_model_file(source)
    change(meta)
    save_file(tensors, str(target), metadata={METADATA_KEY: json.dumps(meta)})


def test_wrong_format_number(tmp_path, tiny_model_file):
    path = tmp_path / "future.safetensors"
    _rewrite_meta(tiny_model_file, path, lambda m: m.update(format=2))
    with pytest.raises(ModelFileError, match="format 2; this version reads format 1"):
        load_model_file(path)


def test_metadata_not_json(tmp_path):
    path = tmp_path / "bad.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={METADATA_KEY: "{not json"})
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model_file(path)


def test_labels_are_the_files_own(tmp_path, tiny_model_file):
    """A file's labels name its outputs: in another order they are another model's answers, not an error."""
    path = tmp_path / "labels.safetensors"
    _rewrite_meta(tiny_model_file, path, lambda m: m.update(labels=sorted(LABELS, reverse=True)))
    assert load_model_file(path).spec.labels == tuple(sorted(LABELS, reverse=True))
    _rewrite_meta(tiny_model_file, path, lambda m: m.update(labels=["angry", "calm", "sad"]))
    with pytest.raises(ModelFileError, match="labels"):  # three names for six outputs
        load_model_file(path)


def test_weights_of_wrong_shape(tmp_path):
    model = build_model("cnn", **{**SMALL["cnn"], "channels": [8, 32]})
    path = tmp_path / "shapes.safetensors"
    # The metadata describes channels 8,16 but the weights are of 8,32.
    save_model_file(path, model, _meta("cnn", SMALL["cnn"], model))
    with pytest.raises(ModelFileError, match="weights do not match the architecture") as info:
        load_model_file(path)
    assert "blocks.1.0.weight is [32, 8, 3, 3], the description gives [16, 8, 3, 3]" in str(info.value)


def test_missing_weights(tmp_path, tiny_model_file):
    tensors, meta = read_model_file(tiny_model_file)
    tensors.pop("head.weight")
    path = tmp_path / "partial.safetensors"
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    with pytest.raises(ModelFileError, match="weights do not match"):
        load_model_file(path)


def test_unknown_architecture(tmp_path, tiny_model_file):
    path = tmp_path / "arch.safetensors"
    _rewrite_meta(tiny_model_file, path, lambda m: m["model"].update(arch="transformer"))
    with pytest.raises(ModelFileError, match="unknown architecture"):
        load_model_file(path)


def test_missing_model_description(tmp_path, tiny_model_file):
    path = tmp_path / "nomodel.safetensors"
    _rewrite_meta(tiny_model_file, path, lambda m: m.pop("model"))
    with pytest.raises(ModelFileError, match="no 'model'"):
        load_model_file(path)


# The architectures.

def test_architecture_names():
    assert set(FAMILIES) == {"cnn", "crnn", "whisper", "face-cnn"}
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("mlp")


@pytest.mark.parametrize("channels", [[8], [8, 16], [4, 8, 16, 32]])
@pytest.mark.parametrize("convs", [1, 2])
def test_cnn_layers_follow_config(channels, convs):
    model = build_model("cnn", channels=channels, convs_per_block=convs, dropout=0.0)
    assert len(model.blocks) == len(channels)
    convs_found = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs_found) == len(channels) * convs
    assert [c.out_channels for c in convs_found[::convs]] == channels
    assert model.head.in_features == 2 * channels[-1]
    expected = 0
    previous = 1
    for width in channels:
        for i in range(convs):
            expected += (previous if i == 0 else width) * width * 9 + 2 * width  # conv (no bias) + BN
        previous = width
    expected += 2 * channels[-1] * 6 + 6
    assert count_parameters(model) == expected
    assert model.eval()(torch.zeros(2, 64, 40)).shape == (2, 6)


def _crnn_parameters(channels: list[int], hidden: int, n_mels: int = 64) -> int:
    """The CRNN's parameter count worked out by hand from its layers."""
    total, previous = 0, 1
    for width in channels:
        total += previous * width * 9 + 2 * width  # 3x3 conv without bias, batch norm's scale and shift
        previous = width
    total += channels[-1] * (n_mels // 2 ** len(channels)) * hidden + hidden  # projection
    total += 2 * (4 * hidden * hidden * 2 + 8 * hidden)  # BiLSTM: input and hidden weights, two biases
    total += 2 * hidden * hidden + hidden + hidden + 1  # attention scores
    return total + 2 * hidden * 6 + 6  # head


@pytest.mark.parametrize("channels, hidden", [([8, 16], 16), ([8, 16, 24], 32), ([16, 32, 64], 96)])
def test_crnn_layers_follow_config(channels, hidden):
    model = build_model("crnn", channels=channels, hidden=hidden, dropout=0.0).eval()
    assert count_parameters(model) == _crnn_parameters(channels, hidden)
    # Time is pooled by the first two blocks only (steps of 4 frames, 40 ms), frequency by every block.
    seen = {}
    model.lstm.register_forward_hook(lambda module, args, out: seen.update(steps=args[0].shape[1]))
    model.project.register_forward_hook(lambda module, args, out: seen.update(width=args[0].shape[-1]))
    assert model(torch.zeros(2, 64, 97)).shape == (2, 6)
    assert seen == {"steps": 97 // 4, "width": channels[-1] * (64 // 2 ** len(channels))}


def test_models_take_any_length():
    for arch in ("cnn", "crnn"):
        model = build_model(arch, **SMALL[arch]).eval()
        for frames in (16, 97, 297):
            assert model(torch.zeros(1, 64, frames)).shape == (1, 6)


def test_the_defaults_are_the_shipped_models():
    """One set of defaults (each family's declaration), and it is what ships (the default recipe's CRNN,
    `fast`); the classes hold none."""
    from emotionnet.models.names import model_path
    from emotionnet.models.spec import default_hparams

    _, meta = read_model_file(model_path("fast"))
    arch = meta["model"]["arch"]
    model = build_model(arch)
    assert count_parameters(model) == meta["model"]["parameters"]
    assert {**default_hparams(arch), **meta["model"]["hparams"]} == default_hparams(arch)
    for name, family in FAMILIES.items():
        with pytest.raises(TypeError):
            family.build()  # no second set of defaults in the class
        assert count_parameters(build_model(name)) * 4 < 5e6  # every default model fits in 5 MB of float32
