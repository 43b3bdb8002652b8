"""Shared fixtures: generated audio, a small untrained model file, the corpora if present."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from emotionnet.evaluation.signals import speech_like

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
if str(REPO) not in sys.path:  # tests of the benchmarks import them
    sys.path.insert(0, str(REPO))

# The tests' speech is generated (`voiced`: a gliding harmonic tone with bursts), which the energy
# gate hears as speech and silero-vad, rightly, does not. The library reads no environment: in this
# process `vad="auto"` finds silero-vad "not installed" (the fixture below) and takes the gate; a
# command-line process a test starts is told `EMOTIONNET_VAD=energy` in its own environment
# (`cli_env`), and `run_batch` calls, whose workers are other processes, pass `load_options=ENERGY_GATE`.
# Tests of silero-vad ask for `silero_installed` (tests/test_speech_detector.py's `silero`), which gives
# the detector back.
ENERGY_GATE = {"vad": "energy"}  # load_model's options for work this process hands to others (batch workers)


def cli_env(**variables: str) -> dict[str, str]:
    """The environment of a command-line process a test starts, for that process only: this one's, with
    this checkout first on the import path, one thread, the energy gate as the speech detector, and
    `variables` (the command line reads them as a user's shell would set them)."""
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "EMOTIONNET_VAD": "energy", **variables}


@pytest.fixture(scope="session", autouse=True)
def _energy_gate_unless_silero():
    """Session-wide (fixtures of every scope are made after it); `silero` undoes it for one test."""
    from emotionnet import vad

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vad, "silero_available", lambda: False)
        yield


@pytest.fixture
def silero_installed(monkeypatch):
    """silero-vad as this machine has it (tests/test_speech_detector.py's `silero` builds on it)."""
    from importlib.util import find_spec

    from emotionnet import vad

    monkeypatch.setattr(vad, "silero_available", lambda: find_spec("silero_vad") is not None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only corpora; tests that need them skip when they are absent."""
    if not (SHARED_DATA / "CREMA-D").is_dir():
        pytest.skip(f"corpora not found at {SHARED_DATA} (see ../shared/README.md)")
    return SHARED_DATA


def voiced(seconds: float = 2.0, sample_rate: int = 16_000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A speech-like test signal: a gliding harmonic tone with syllable-rate bursts."""
    return speech_like(seconds, f0, seed, sample_rate)


def make_tiny_model_file(path: Path, normalisation: str = "utterance") -> Path:
    """An untrained but complete model file: for plumbing tests, not for accuracy."""
    import torch

    from emotionnet.features import FeatureConfig
    from emotionnet.models import build_model, count_parameters
    from emotionnet.models.file import save_model_file

    torch.manual_seed(0)
    hparams = {"channels": [8, 16], "convs_per_block": 1, "dropout": 0.0, "n_mels": 64}
    model = build_model("cnn", **hparams).eval()
    save_model_file(path, model, {
        "sample_rate": 16_000,
        "features": FeatureConfig(normalisation=normalisation).to_dict(),
        "model": {"arch": "cnn", "hparams": hparams, "parameters": count_parameters(model)},
        "inference": {"window": 3.0, "hop": 1.5},
        "temperature": 1.0,
        "training": {"recipe": "untrained test fixture", "split": "v1"},
        "metrics": {},
    })
    return path


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> Path:
    return make_tiny_model_file(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def make_tiny_face_model_file(path: Path) -> Path:
    """An untrained face model file (FaceCNN with few channels, the shipped detector): plumbing, not accuracy."""
    import torch

    from emotionnet.models.face.network import FaceCNN
    from emotionnet.training.face_recipe import FaceRecipe, save_face_model

    torch.manual_seed(0)
    recipe = FaceRecipe(channels=(4, 8), dropout=0.1)
    save_face_model(path, FaceCNN(recipe.channels, recipe.dropout).eval(), recipe, temperature=1.0, flip_average=False,
                    training={"recipe": "untrained test fixture"}, calibration={}, metrics={})
    return path


@pytest.fixture(scope="session")
def tiny_face_model_file(tmp_path_factory) -> Path:
    return make_tiny_face_model_file(tmp_path_factory.mktemp("model") / "tiny-face.safetensors")


@pytest.fixture(scope="session")
def tiny_speaker_model_file(tmp_path_factory) -> Path:
    """The same, normalised per speaker."""
    return make_tiny_model_file(tmp_path_factory.mktemp("model") / "tiny-speaker.safetensors", "speaker")


def write_wav(path: Path, audio: np.ndarray, sample_rate: int = 16_000, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, sample_rate, **kwargs)
    return path


TOY_SPEAKERS = {"s1": "train", "s2": "train", "s3": "train", "s4": "train", "s5": "val", "s6": "test"}


def make_toy_corpus(root: Path) -> Path:
    """A learnable toy corpus (pitch depends on the class) and its manifest `root/toy.csv`."""
    from emotionnet.labels import LABELS

    rows = ["path,emotion,speaker,split"]
    for c, label in enumerate(LABELS):
        for s, (speaker, split) in enumerate(TOY_SPEAKERS.items()):
            name = f"clips/{speaker}_{label}.wav"
            write_wav(root / name, voiced(0.6, f0=90 + 45 * c, seed=10 * c + s))
            rows.append(f"{name},{label},{speaker},{split}")
    (root / "toy.csv").write_text("\n".join(rows) + "\n")
    return root / "toy.csv"
