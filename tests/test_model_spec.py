"""ModelSpec: a model file's description is checked before anything is built from it.

Crafted descriptions (missing keys, wrong types, zero rates, absurd widths, NaN)
and crafted files (random and mutated bytes, truncations, absurd safetensors
headers, a pickle under a .safetensors name) each give one ModelFileError, never
another exception, never an unpickling, never a network built at full size.
"""

from __future__ import annotations

import json
import math
import pickle
import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from emotionnet import ModelFileError, ModelSpec, ModelSpecError
from emotionnet.features import FeatureConfig
from emotionnet.models import file as model_file
from emotionnet.models.family import MAX_WIDTH
from emotionnet.models.file import METADATA_KEY, load_model_file, read_model_file
from emotionnet.models.spec import check_window, default_hparams


@pytest.fixture(scope="module")
def tiny(tiny_model_file) -> tuple[dict, dict]:
    return read_model_file(tiny_model_file)


@pytest.fixture
def full_builds(monkeypatch) -> list[str]:
    """The devices networks get built on while loading (`meta` costs nothing)."""
    devices: list[str] = []
    real = model_file.build_model

    def spy(*args, **kwargs):
        devices.append(torch.empty(0).device.type)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_file, "build_model", spy)
    return devices


def _write(path: Path, tensors: dict, meta) -> Path:
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(tensors, str(path), metadata={METADATA_KEY: raw})
    return path


def _set(meta: dict, dotted: str, value) -> dict:
    meta = json.loads(json.dumps(meta))
    *parents, last = dotted.split(".")
    node = meta
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return meta


_DELETE = object()

# (field, crafted value, words the error must contain)
CRAFTED = [
    ("features", _DELETE, "no 'features'"),
    ("features", [16000, 400], "features must be a JSON object"),
    ("features.n_mels", _DELETE, "features lack n_mels"),
    ("features.sample_rate", 0, "hears 16000 Hz"),
    ("features.sample_rate", 8000, "hears 16000 Hz"),
    ("sample_rate", 0, "sample_rate 0 differs"),
    ("features.hop_length", 0, "features.hop_length"),
    ("features.hop_length", -160, "features.hop_length"),
    ("features.win_length", 0, "features.win_length"),
    ("features.n_fft", 10**9, "features.n_fft"),
    ("features.n_fft", 512.5, "features.n_fft must be an integer"),
    ("features.n_mels", 0, "features.n_mels"),
    ("features.n_mels", 10**6, "features.n_mels"),
    ("features.f_max", 1e9, "features.f_max"),
    ("features.f_min", 9000.0, "features.f_min"),
    ("features.log_offset", 0, "features.log_offset"),
    ("features.log_offset", math.nan, "features.log_offset"),
    ("features.normalisation", "loudness", "features.normalisation"),
    ("features.normalisation", ["utterance"], "features.normalisation"),
    ("inference", [3.0, 1.5], "inference must be a JSON object"),
    ("inference.window", 0, "inference.window"),
    ("inference.window", 1e9, "inference.window"),
    ("inference.window", "3", "inference.window must be a number"),
    ("inference.hop", 0, "inference.hop"),
    ("inference.hop", 5.0, "inference.hop"),
    ("temperature", 0, "temperature"),
    ("temperature", -1.0, "temperature"),
    ("temperature", math.nan, "temperature"),
    ("temperature", math.inf, "temperature"),
    ("temperature", "1.0", "temperature must be a number"),
    ("model", _DELETE, "no 'model'"),
    ("model", ["cnn"], "model must be a JSON object"),
    ("model.arch", _DELETE, "unknown architecture None"),
    ("model.arch", "transformer", "unknown architecture 'transformer'"),
    ("model.arch", ["cnn"], "unknown architecture"),
    ("model.hparams", [8, 16], "model.hparams must be a JSON object"),
    ("model.hparams.channels", _DELETE, "model.hparams lack channels"),
    ("model.hparams.channels", "8,16", "model.hparams.channels must be a list"),
    ("model.hparams.channels", [], "model.hparams.channels must be a list"),
    ("model.hparams.channels", [8] * 100, "model.hparams.channels must be a list"),
    ("model.hparams.channels", [8, 10**6], "each of model.hparams.channels"),
    ("model.hparams.channels", [8, 10**9], "each of model.hparams.channels"),
    ("model.hparams.channels", [8, 1e6], "must be an integer"),
    ("model.hparams.channels", [8, 0], "each of model.hparams.channels"),
    ("model.hparams.convs_per_block", 10**6, "model.hparams.convs_per_block"),
    ("model.hparams.dropout", 2.0, "model.hparams.dropout"),
    ("model.hparams.dropout", math.nan, "model.hparams.dropout"),
    ("model.hparams.batch_norm", "yes", "model.hparams.batch_norm"),
    ("model.hparams.layers", 12, "no hyper-parameter layers"),
    ("model.hparams.n_mels", 32, "model.hparams.n_mels is 32 but the features have 64"),
    ("model.hparams.n_classes", 7, "model.hparams.n_classes is 7"),
    ("labels", "angry", "labels must be a list"),
    ("labels", ["angry"], "labels must be a list of 2"),
    ("labels", ["angry", "angry", "sad"], "name a label twice"),
    ("labels", ["angry", 3, "sad"], "each of labels must be a name"),
    ("labels", ["angry", "sad"], "head.weight is [6, 32], the description gives [2, 32]"),
    ("answers", ["angry", "bored"], "answers ['bored'] are not among the labels"),
    ("format", "1", "format '1'"),
]


@pytest.mark.parametrize("field, value, words", CRAFTED, ids=[f"{c[0]}={c[1]!r}"[:60] for c in CRAFTED])
def test_crafted_metadata_is_one_clear_error(tmp_path, tiny, full_builds, field, value, words):
    tensors, meta = tiny
    path = _write(tmp_path / "crafted.safetensors", tensors, _set(meta, field, value))
    with pytest.raises(ModelFileError) as info:
        load_model_file(path)
    assert str(info.value).startswith(f"{path}: ") and words in str(info.value)
    assert "cpu" not in full_builds  # refused before any network was built for real


def test_metadata_that_is_not_an_object(tmp_path, tiny):
    tensors, _ = tiny
    for raw, words in [("[1, 2]", "a JSON list, not an object"), ("null", "NoneType"), ('"model"', "str"),
                       ("[" * 100_000, "not valid JSON")]:
        path = _write(tmp_path / "list.safetensors", tensors, raw)
        with pytest.raises(ModelFileError, match=words):
            load_model_file(path)


def test_huge_widths_are_refused_by_their_description(tmp_path, tiny, full_builds):
    """Widths of 1e6 once allocated gigabytes before failing: now the description is refused."""
    tensors, meta = tiny
    for width in (MAX_WIDTH + 1, 10**6, 10**9):
        path = _write(tmp_path / "wide.safetensors", tensors, _set(meta, "model.hparams.channels", [width, width]))
        with pytest.raises(ModelFileError, match="channels"):
            load_model_file(path)
    assert full_builds == []


def test_plausible_widths_the_weights_do_not_have_are_refused_on_the_meta_device(tmp_path, tiny, full_builds):
    """Widths within bounds but not the file's: caught by comparing shapes, before real memory is used."""
    tensors, meta = tiny
    path = _write(tmp_path / "wide.safetensors", tensors, _set(meta, "model.hparams.channels", [MAX_WIDTH] * 4))
    with pytest.raises(ModelFileError, match="weights do not match the architecture"):
        load_model_file(path)
    assert full_builds == ["meta"]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, tiny, bad):
    tensors, meta = tiny
    tensors = {k: v.clone() for k, v in tensors.items()}
    tensors["head.weight"][0, 0] = bad
    path = _write(tmp_path / "nan.safetensors", tensors, meta)
    with pytest.raises(ModelFileError, match="head.weight holds NaN or infinite values"):
        load_model_file(path)


def test_the_spec_round_trips_and_fills_what_old_files_leave_out(tiny):
    _, meta = tiny
    spec = ModelSpec.from_metadata(meta)
    assert spec.arch == "cnn" and spec.window == 3.0 and spec.hop == 1.5 and spec.temperature == 1.0
    assert spec.hparams["batch_norm"] is True and spec.hparams["n_classes"] == 6  # absent in the file
    again = ModelSpec.from_metadata({**meta, **spec.to_metadata()})
    assert again == spec
    assert spec.input_shape == (64, FeatureConfig().frames_of_samples(3 * 16_000))
    old = {k: v for k, v in meta.items() if k not in ("inference", "temperature", "sample_rate")}
    assert ModelSpec.from_metadata(old) == spec  # files before these fields get the defaults


def test_saving_refuses_a_description_that_would_not_load(tmp_path, tiny):
    from emotionnet.models import build_model
    from emotionnet.models.file import save_model_file

    _, meta = tiny
    model = build_model("cnn", **default_hparams("cnn"))
    with pytest.raises(ModelSpecError, match="temperature"):
        save_model_file(tmp_path / "x.safetensors", model, _set(meta, "temperature", 0))
    assert not list(tmp_path.iterdir())


def test_window_rule():
    check_window(0.5, 0.5)
    check_window(3.0, 0.1)
    for window, hop, words in [(0.4, 0.2, "window"), (3.0, 0.0, "hop"), (2.0, 2.5, "hop"), (3.0, 0.09, "from 0.1 s"),
                               (math.nan, 1.0, "window"), (3.0, math.inf, "hop")]:
        with pytest.raises(ValueError, match=words):
            check_window(window, hop)
    with pytest.raises(ValueError, match="from 0.5 s to 3 s"):
        check_window(4.0, 1.0, longest=3.0)


# --------------------------------------------------------------------------- fuzzing the file

def _expect_clean(path: Path) -> str:
    """'loaded' or 'refused'; anything but a ModelFileError fails the test."""
    try:
        load_model_file(path)
    except ModelFileError as exc:
        assert str(exc).startswith(f"{path}:"), exc
        return "refused"
    return "loaded"


def test_random_bytes(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "random.safetensors"
    for n in [0, 1, 7, 8, 9, 64, 1000, 5000] + [rng.randrange(1, 20_000) for _ in range(60)]:
        path.write_bytes(rng.randbytes(n))
        assert _expect_clean(path) == "refused"


def test_mutated_bytes(tmp_path, tiny_model_file):
    data = tiny_model_file.read_bytes()
    header = 8 + struct.unpack("<Q", data[:8])[0]
    rng = random.Random(1)
    path = tmp_path / "mutated.safetensors"
    outcomes = []
    for case in range(300):
        mutated = bytearray(data)
        # Half the cases hit the header (lengths, JSON, offsets), half anywhere.
        limit = header if case % 2 else len(data)
        for _ in range(rng.randint(1, 8)):
            mutated[rng.randrange(limit)] = rng.randrange(256)
        path.write_bytes(bytes(mutated))
        outcomes.append(_expect_clean(path))
    assert outcomes.count("refused") > 50  # most header hits break it; a weight's low bits may not


def test_truncations(tmp_path, tiny_model_file):
    data = tiny_model_file.read_bytes()
    path = tmp_path / "cut.safetensors"
    for end in sorted({*range(0, 64), *range(0, len(data), max(1, len(data) // 97))}):
        path.write_bytes(data[:end])
        assert _expect_clean(path) == "refused"


def _raw_safetensors(header: dict, body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def test_absurd_headers(tmp_path, tiny):
    _, meta = tiny
    metadata = {"__metadata__": {METADATA_KEY: json.dumps(meta)}}
    path = tmp_path / "absurd.safetensors"
    cases = [
        struct.pack("<Q", 2**63) + b"{}",  # a header longer than the file
        struct.pack("<Q", 2**40) + b"{}",
        _raw_safetensors({**metadata, "head.weight": {"dtype": "F32", "shape": [10**9, 10**9],
                                                      "data_offsets": [0, 4]}}, b"\0" * 4),
        _raw_safetensors({**metadata, "head.weight": {"dtype": "F32", "shape": [6, 64],
                                                      "data_offsets": [0, 2**62]}}, b"\0" * 16),
        _raw_safetensors({**metadata, "head.weight": {"dtype": "X99", "shape": [1], "data_offsets": [0, 4]}},
                         b"\0" * 4),
        _raw_safetensors({**metadata, "head.weight": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}},
                         b"\0" * 4),
        _raw_safetensors({"__metadata__": {METADATA_KEY: 5}}),
        _raw_safetensors({"__metadata__": [1, 2]}),
        _raw_safetensors([1, 2, 3]),
        _raw_safetensors(metadata),  # a valid description and no weights at all
    ]
    for data in cases:
        path.write_bytes(data)
        assert _expect_clean(path) == "refused"


class _Payload:
    def __reduce__(self):
        return (Path.write_text, (Path(_Payload.marker), "unpickled"))


def test_a_pickle_renamed_safetensors_is_never_unpickled(tmp_path):
    _Payload.marker = str(tmp_path / "ran")
    for i, data in enumerate([pickle.dumps(_Payload()), pickle.dumps({"w": _Payload()}, protocol=2)]):
        path = tmp_path / f"pickle{i}.safetensors"
        path.write_bytes(data)
        assert _expect_clean(path) == "refused"
    torch.save({"weights": torch.zeros(3), "payload": _Payload()}, tmp_path / "checkpoint.safetensors")
    assert _expect_clean(tmp_path / "checkpoint.safetensors") == "refused"
    assert not (tmp_path / "ran").exists()
