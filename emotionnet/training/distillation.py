"""A teacher's soft labels for training a student model (knowledge distillation).

The `whisper-base` model hears voices it never trained on far better than the
CRNN (LOCO 0.56 against 0.39) but costs ten times the CPU. Training the CRNN on
the teacher's calibrated probabilities beside the hard labels passes on what the
teacher knows of each clip: which clips are ambiguous, which emotions a voice
is close to (Hinton, Vinyals and Dean, 2015). The student stays as fast as before.

A teacher on a pretrained encoder (its family's recipe "encoder-head") reads the encoder cache (training/encoder_cache.py), filling
it for clips it lacks, so soft labels for a corpus cost one pass of the head;
any other teacher scores the cached log-mels of its own front end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotionnet.corpora import Record
from emotionnet.inference.results import ScoredWindows
from emotionnet.labels import LABELS
from emotionnet.training.calibration import clip_probabilities


def teacher_probabilities(teacher: str | Path, records: Sequence[Record], progress: bool = True,
                          load_options: dict | None = None, cache_dir: str | Path | None = None) -> np.ndarray:
    """(clips, classes): the teacher's calibrated clip probabilities, one row per record.

    The teacher is loaded with `load_options` (`load_model`'s vad, compute_type, encoder_weights: the
    run's, so a teacher on a pretrained encoder finds the weights the run was pointed at). A clip the
    teacher cannot read gets a row of zeros: no soft label, so the distillation loss leaves it to its
    hard label. Its features or encoder states come from the caches in `cache_dir` (default ~/.cache/emotionnet).
    """
    from emotionnet.inference.recognizer import load_model
    from emotionnet.models.registry import family_of

    recognizer = load_model(teacher, **(load_options or {}))
    if family_of(recognizer.spec).recipe == "encoder-head":
        scored = _encoder_head_scores(recognizer.network, records, cache_dir)
    else:
        scored = _log_mel_scores(recognizer, records, progress, cache_dir)
    out = np.zeros((len(records), len(LABELS)))
    read = [i for i, s in enumerate(scored) if s is not None]
    if read:
        out[read] = clip_probabilities([scored[i] for i in read], recognizer.temperature)
    return out


def _encoder_head_scores(network, records: Sequence[Record], cache_dir: str | Path | None,
                         ) -> list[ScoredWindows | None]:
    from emotionnet.training.encoder_cache import StateStore, encoder_folder, fill, window_shape
    from emotionnet.training.head_training import CachedStates, as_scored, clip_logits

    encoder, digest = network.encoder, network.encoder_digest
    folder = encoder_folder(digest, cache_dir)
    fill(records, "clean", StateStore(folder / "clean"), 0, encoder, digest)
    cache = CachedStates(folder, ("clean",), window_shape(encoder), digest)
    logits = clip_logits(network.head, cache, records, network.layers)
    return [as_scored([x])[0] if len(x) else None for x in logits]


def _log_mel_scores(recognizer, records: Sequence[Record], progress: bool,
                    cache_dir: str | Path | None) -> list[ScoredWindows | None]:
    from emotionnet.cache import cached_log_mels

    mels, _ = cached_log_mels([r.path for r in records], recognizer.features, progress=progress, cache_dir=cache_dir)
    found = [i for i, m in enumerate(mels) if m is not None]
    scored: list[ScoredWindows | None] = [None] * len(records)
    for i, windows in zip(found, recognizer.log_mel_scorer().scores([mels[i] for i in found])):
        scored[i] = windows
    return scored


def teacher_record(teacher: str | Path) -> dict:
    """What a student's model file records of its teacher: the name or file, and the file's digest."""
    from emotionnet.digest import file_digest
    from emotionnet.inference.recognizer import resolve_model_path

    path = resolve_model_path(str(teacher))
    return {"model": str(teacher), "file": path.name, "sha1": file_digest(path)}
