"""Score a model on labelled records and build the evaluation report."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from emotionnet.cache import cached_log_mels
from emotionnet.corpora import SPLIT_NAME, Record
from emotionnet.corpora.naming import PARSERS
from emotionnet.evaluation.metrics import report
from emotionnet.inference.recognizer import EmotionRecognizer


def default_split(records: list[Record], manifest_only: bool = False) -> str:
    """`test` for known corpora or a manifest with a split column; `all` for a manifest without one.

    `manifest_only` says every record is a row of a user's manifest: whatever corpus
    ids its rows name, they are not that corpus's split, so without a split column
    every row counts.
    """
    if any(r.split for r in records):
        return "test"
    custom_only = manifest_only or all(r.corpus not in PARSERS for r in records)
    return "all" if custom_only else "test"


def evaluate_records(
    recognizer: EmotionRecognizer,
    records: list[Record],
    split: str,
    skipped: dict | None = None,
    excluded: list[str] | None = None,
    progress: bool = True,
    context: str = "speaker",
    protocol: str = SPLIT_NAME,
    cache_dir: str | Path | None = None,
) -> dict:
    """The DESIGN.md report of `recognizer` on `records` (clips that fail to load are listed).

    `context` matters for models that read a speaker's context only (`recognizer.reads_context`:
    speaker-normalised ones, whisper-base with a `context_alpha`): `speaker` reads each clip
    against all its speaker's clips (their audio, never their labels), `clip` scores every
    clip alone. The clips' features are kept in the cache folder `cache_dir` (default
    ~/.cache/emotionnet).
    """
    if context not in ("speaker", "clip"):
        raise ValueError(f"unknown context {context!r}; choose speaker or clip")
    mels, errors = cached_log_mels([r.path for r in records], recognizer.features, progress=progress,
                                   cache_dir=cache_dir)
    for message in errors.values():
        print(f"emotionnet: error: {message}", file=sys.stderr)
    labels = recognizer.labels  # the model's: a clip of an emotion it does not answer is left out, counted
    skipped = dict(skipped or {})
    for r, m in zip(records, mels):
        if m is not None and r.emotion not in labels:
            skipped[r.emotion] = skipped.get(r.emotion, 0) + 1
    kept = [(r, m) for r, m in zip(records, mels) if m is not None and r.emotion in labels]
    if not kept:
        raise ValueError("no clip could be scored")
    speakers = [r.group for r, _ in kept] if context == "speaker" else None
    timelines = recognizer.log_mel_scorer().timelines([m for _, m in kept], speakers=speakers)
    y_true = [labels.index(r.emotion) for r, _ in kept]
    y_pred = [labels.index(t.prediction.most_likely.emotion) for t in timelines]  # a clip without speech: its guess
    name = recognizer.model_file.name if recognizer.model_file else "<in memory>"
    result = report(y_true, y_pred, [r.corpus for r, _ in kept], name, split, skipped, labels)
    result["split_protocol"] = protocol  # the version whose corpora `records` were chosen from
    result["normalisation"] = recognizer.features.normalisation
    if recognizer.reads_context:
        result["context"] = context
    result["data"]["excluded"] = sorted(Path(p).stem for p in excluded or [])
    result["data"]["failed"] = sorted(errors)
    notes = []
    if any(r.corpus == "tess" for r, _ in kept):
        notes.append("TESS has two speakers only: it is split by carrier word, not by speaker.")
    if result.get("context") == "speaker":
        notes.append("Each clip was read against all its speaker's clips in this split (their audio, not "
                     "their labels); --context clip scores every clip alone.")
    if notes:
        result["notes"] = notes
    return result


def format_report(result: dict) -> str:
    """A plain-text summary table of a report: overall, per corpus, per class."""
    context = f"  context {result['context']}" if "context" in result else ""
    lines = [f"model {result['model']}  split {result['split']} ({result.get('split_protocol', SPLIT_NAME)})  "
             f"clips {result['data']['clips']}{context}", "",
             f"{'':12}{'UAR':>8}{'acc':>8}{'F1':>8}{'n':>7}"]
    rows = [("overall", result["overall"])] + sorted(result["per_corpus"].items())
    for name, m in rows:
        lines.append(f"{name:12}{m['uar']:8.3f}{m['accuracy']:8.3f}{m['macro_f1']:8.3f}{m['n']:7d}")
    lines += ["", f"{'class':12}{'recall':>8}{'prec':>8}{'F1':>8}{'n':>7}"]
    for label, m in result["per_class"].items():
        if not m["support"]:  # no clip of this class: there is no recall to show, not a recall of 0
            lines.append(f"{label:12}{'-':>8}{'-':>8}{'-':>8}{0:7d}")
            continue
        lines.append(f"{label:12}{m['recall']:8.3f}{m['precision']:8.3f}{m['f1']:8.3f}{m['support']:7d}")
    return "\n".join(lines)


def plot_confusion(result: dict, path: str | Path) -> None:
    """Row-normalised confusion matrix as a PNG (MissingExtraError without matplotlib)."""
    from emotionnet.extras import require

    matplotlib = require("matplotlib", "the confusion plot", "app")

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(result["confusion"]["matrix"], dtype=float)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    labels = result["confusion"]["labels"]
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['split']} UAR {result['overall']['uar']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
