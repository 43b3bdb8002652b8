"""Distillation: a teacher's soft labels beside the hard ones (training/distillation.py)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import make_toy_corpus

from emotionnet.cli.main import main
from emotionnet.corpora import read_manifest
from emotionnet.digest import file_digest
from emotionnet.models.file import load_model_file
from emotionnet.training.distillation import teacher_probabilities
from emotionnet.training.losses import distillation_loss, masked_cross_entropy

pytestmark = pytest.mark.slow  # browser, Ray, service and training tests (pyproject markers)

TINY = ["--epochs", "1", "--arch", "cnn", "--steps-per-epoch", "3", "--batch-size", "8", "--channels", "8,16",
        "--window", "1.0", "--quiet"]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("distil")
    make_toy_corpus(root)
    with pytest.MonkeyPatch.context() as mp:  # the command line's cache; the library is given cache_dir=root / "cache"
        mp.setenv("EMOTIONNET_CACHE", str(root / "cache"))
        assert main(["train", "--manifest", str(root / "toy.csv"), "--out", str(root / "teacher.safetensors"),
                     *TINY]) == 0
        yield root


def test_the_loss_is_cross_entropy_to_the_teacher_over_the_corpus_classes():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 6, generator=g, requires_grad=True)
    present = torch.ones(5, 6, dtype=torch.bool)
    present[:, 1] = False  # a corpus without disgust
    labels = torch.tensor([0, 2, 3, 4, 5])
    one_hot = torch.nn.functional.one_hot(labels, 6).float()
    assert torch.allclose(distillation_loss(logits, one_hot, present), masked_cross_entropy(logits, labels, present))
    # What the teacher puts on a class the corpus lacks is dropped and the rest renormalised.
    leaking = one_hot * 0.5
    leaking[:, 1] = 0.5
    assert torch.allclose(distillation_loss(logits, leaking, present), masked_cross_entropy(logits, labels, present))
    # A clip without a soft label adds nothing.
    assert distillation_loss(logits[:1], torch.zeros(1, 6), present[:1]).item() == 0.0
    # Its gradient moves the student toward the teacher.
    soft = torch.softmax(torch.randn(5, 6, generator=g), dim=-1)
    distillation_loss(logits, soft, present).backward()
    stepped = (logits - logits.grad).detach()
    before = distillation_loss(logits.detach(), soft, present)
    assert distillation_loss(stepped, soft, present) < before


def test_a_teachers_probabilities_are_its_calibrated_clip_answers(toy):
    from emotionnet.cache import cached_log_mels
    from emotionnet.inference.recognizer import load_model
    from emotionnet.training.calibration import clip_probabilities

    records = read_manifest(toy / "toy.csv").records
    teacher = toy / "teacher.safetensors"
    missing = dataclasses.replace(records[0], path=str(toy / "gone.wav"))
    probs = teacher_probabilities(teacher, [*records, missing], progress=False, cache_dir=toy / "cache")
    assert probs.shape == (len(records) + 1, 6)
    assert np.allclose(probs[:-1].sum(axis=1), 1) and not probs[-1].any()  # an unreadable clip: no soft label
    recognizer = load_model(teacher)
    mels, _ = cached_log_mels([r.path for r in records], recognizer.features, progress=False, cache_dir=toy / "cache")
    expected = clip_probabilities(recognizer.log_mel_scorer().scores(mels), recognizer.temperature)
    assert np.allclose(probs[:-1], expected, atol=1e-6)


def test_the_teacher_loads_with_the_runs_options(toy):
    """Issue 26: the teacher was loaded with default options whatever the run was given."""
    records = read_manifest(toy / "toy.csv").records[:4]
    teacher = toy / "teacher.safetensors"
    cache = toy / "cache"
    with pytest.raises(ValueError, match="speech detector 'bogus'"):
        teacher_probabilities(teacher, records, progress=False, load_options={"vad": "bogus"}, cache_dir=cache)
    chosen = teacher_probabilities(teacher, records, progress=False, load_options={"vad": "energy"}, cache_dir=cache)
    assert np.allclose(chosen, teacher_probabilities(teacher, records, progress=False, cache_dir=cache), atol=1e-6)


def test_a_taught_student_records_its_teacher_and_weight_zero_is_the_plain_run(toy):
    from safetensors.torch import load_file

    def train(name: str, *extra: str) -> dict:
        assert main(["train", "--manifest", str(toy / "toy.csv"), "--out", str(toy / name), *TINY, *extra]) == 0
        return load_file(toy / name)

    plain = train("plain.safetensors")
    teacher = str(toy / "teacher.safetensors")
    unweighted = train("w0.safetensors", "--teacher", teacher, "--distillation-weight", "0")
    taught = train("taught.safetensors", "--teacher", teacher)
    assert all(torch.equal(plain[k], unweighted[k]) for k in plain)
    assert not all(torch.equal(plain[k], taught[k]) for k in plain)
    record = load_model_file(toy / "taught.safetensors").metadata["training"]
    assert record["teacher"] == {"model": teacher, "file": "teacher.safetensors", "sha1": file_digest(teacher)}
    assert record["recipe"]["teacher"] == teacher and record["recipe"]["fit"]["distillation_weight"] == 0.5
    assert "teacher" not in load_model_file(toy / "plain.safetensors").metadata["training"]["recipe"]


@pytest.mark.parametrize("flags, message", [
    (["--teacher", "no-such-model"], "--teacher: unknown model 'no-such-model'"),
    (["--teacher", "fast", "--distillation-weight", "1.5"], "--distillation-weight must be between 0 and 1"),
])
def test_a_wrong_teacher_stops_before_training(toy, capsys, flags, message):
    out = toy / "never.safetensors"
    assert main(["train", "--manifest", str(toy / "toy.csv"), "--out", str(out), *TINY, *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name(out.name + ".ckpt").exists()
