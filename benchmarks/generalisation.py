"""Generalisation of a model file: does it hear emotion, or the corpora it learnt?

One run measures, on split v2 of the seven corpora in ../shared/data (DESIGN.md,
"Evaluation protocol"):

- in-domain: test UAR per corpus with each clip alone (the headline), and with the
  two contexts a user could have: 5 other clips of the speaker drawn at random, and
  the speaker's neutral clips only (each with the clip itself);
- collapse (share of the most-predicted class) and calibration (ECE with 15 bins,
  Brier score, a reliability diagram) for every row;
- leave-one-corpus-out over the seven corpora: the default recipe trained on the
  other six corpora's train splits (selected on their val splits), the held-out
  corpus's test split scored clip by clip; and the classic peers (eGeMAPS and
  ComParE SVMs, the latter also standardised per speaker) on the same LOCO;
- the channel suite: a stratified subset of the test split replayed through
  channels no training clip went through (emotionnet.evaluation.channels), the
  UAR drop per channel.

    python -m benchmarks.generalisation --json docs/results/generalisation.json \
        --plot docs/results/reliability.png > docs/results/generalisation.md
    python -m benchmarks.generalisation --model my.safetensors --only in-domain,channels
    python -m benchmarks.generalisation --only loco --loco-epochs 6 --loco-steps 120 --loco-ema-decay 0.99
                                                                  # LOCO on a budget (2-core CPU)

LOCO models are kept under $EMOTIONNET_CACHE/benchmarks/generalisation/, named by
recipe and clips, so a re-run reuses them (and resumes an interrupted one).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import peer_methods as peers
from benchmarks.common import ALL_CORPORA as CORPORA
from benchmarks.common import CORPORA as V1_CORPORA
from benchmarks.common import (
    DEFAULT_DATA,
    clip_figures,
    comma_list,
    finish,
    machine_info,
    resolve_data,
    shown,
    train_or_reuse,
    user_cache_dir,
    user_cache_root,
)
from benchmarks.generalisation_report import TARGETS, format_markdown, plot_reliability
from emotionnet.corpora import SPLIT_NAME, Collection, Record, find_records, select, split_of
from emotionnet.digest import file_digest
from emotionnet.evaluation.metrics import (
    reliability,
    summary,
)
from emotionnet.labels import LABEL_INDEX

SECTIONS = ("in-domain", "loco", "peers", "peers-in-domain", "channels", "peers-channels", "voices")
# Synthetic voices the corpora never had: the old model called seven of eight of them angry.
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "de", "pl", "tr", "es")
SENTENCES = ("The meeting has been moved to Thursday afternoon.",
             "I left the keys on the kitchen table.",
             "We will take the early train tomorrow morning.",
             "Please read the instructions before you start.")
CONTEXTS = ("alone", "random5", "neutral")
PEER_METHODS = ("compare_linear_svm_speaker", "compare_linear_svm", "egemaps_rbf_svm")  # the target's peer first


def default_cache() -> Path:
    return user_cache_root() / "benchmarks" / "generalisation"


# --------------------------------------------------------------------------- scoring

def probabilities(recognizer, mels: list, contexts: list | None = None) -> np.ndarray:
    """(clips, classes) calibrated clip probabilities, as `predict` computes them."""
    from emotionnet.training.calibration import clip_probabilities

    return clip_probabilities(recognizer.log_mel_scorer().scores(mels, contexts=contexts), recognizer.temperature)


def table(records: Sequence[Record], probs: np.ndarray) -> dict:
    """Figures over all clips, over the four v1 corpora's clips (the v1 target's figure), and per corpus."""
    y = np.array([LABEL_INDEX[r.emotion] for r in records])
    corpora = np.array([r.corpus for r in records])
    v1 = np.isin(corpora, V1_CORPORA)
    return {"overall": clip_figures(y, probs), "overall_v1": clip_figures(y[v1], probs[v1]) if v1.any() else None,
            "per_corpus": {c: clip_figures(y[corpora == c], probs[corpora == c]) for c in CORPORA if (corpora == c).any()}}


def speaker_contexts(records: Sequence[Record], mels: list, kind: str, seed: int) -> list:
    """Each clip's normalisation statistics under a context a user could have (None: alone).

    `random5`: the clip and 5 other clips of its speaker drawn at random; `neutral`: the
    clip and its speaker's neutral clips (alone where the speaker has none).
    """
    from emotionnet.features import band_stats

    if kind == "alone":
        return [None] * len(records)
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        by_speaker[r.group].append(i)
    rng = np.random.default_rng(seed)
    contexts = []
    for i, r in enumerate(records):
        others = [j for j in by_speaker[r.group] if j != i]
        if kind == "neutral":
            others = [j for j in others if records[j].emotion == "neutral"]
        else:
            others = sorted(rng.choice(others, size=min(5, len(others)), replace=False).tolist()) if others else []
        contexts.append(band_stats([mels[i]] + [mels[j] for j in others]) if others else None)
    return contexts


def load_split(records: Sequence[Record], config, progress: bool) -> tuple[list[Record], list]:
    from emotionnet.cache import cached_log_mels

    mels, errors = cached_log_mels([r.path for r in records], config, progress=progress, cache_dir=user_cache_dir())
    for message in errors.values():
        print(f"generalisation: skipped {message}", file=sys.stderr)
    kept = [(r, m) for r, m in zip(records, mels) if m is not None]
    return [r for r, _ in kept], [m for _, m in kept]


# --------------------------------------------------------------------------- sections

def run_in_domain(recognizer, test: list[Record], seed: int, progress: bool) -> dict:
    records, mels = load_split(test, recognizer.features, progress)
    out = {}
    for kind in CONTEXTS:
        if kind != "alone" and recognizer.features.normalisation != "speaker":
            continue  # the model normalises each window by itself: a context changes nothing
        probs = probabilities(recognizer, mels, speaker_contexts(records, mels, kind, seed))
        out[kind] = table(records, probs)
        if kind == "alone":
            y = np.array([LABEL_INDEX[r.emotion] for r in records])
            out[kind]["reliability"] = reliability(y, probs)
    return out


def run_loco(collection: Collection, corpora: Sequence[str], epochs: int | None, steps: int | None,
             ema_decay: float | None, seed: int, cache: Path, progress: bool) -> dict:
    """The default recipe trained without each corpus; that corpus's test split scored clip by clip."""
    from emotionnet.inference.recognizer import EmotionRecognizer
    from emotionnet.training.calibration import calibration_curves, clip_probabilities, validation_temperature
    from emotionnet.training.recipe import Recipe

    result = {}
    for held_out in corpora:
        train = [r for r in collection.records if r.corpus != held_out and split_of(r) in ("train", "val")]
        test = [r for r in collection.records if r.corpus == held_out and split_of(r) == "test"]
        if not train or not test:
            continue
        recipe = Recipe()
        recipe.fit.seed = seed
        if epochs:
            recipe.fit.epochs = epochs
        if steps:
            recipe.fit.steps_per_epoch = steps
        if ema_decay:  # a shorter run needs a shorter weight average, or it averages in the initial weights
            recipe.fit.ema_decay = ema_decay
        subset = Collection(records=train, skipped=collection.skipped, excluded=collection.excluded)
        started = time.perf_counter()
        path, meta, reused = train_or_reuse(f"loco-{held_out}", seed, subset, recipe, cache, progress=progress)
        recognizer = EmotionRecognizer.from_file(path)
        records, mels = load_split(test, recognizer.features, progress)
        y = np.array([LABEL_INDEX[r.emotion] for r in records])
        scored = recognizer.log_mel_scorer().scores(mels)  # scored once: the figures and the calibration curves
        alone = clip_probabilities(scored, recognizer.temperature)
        # The realistic contexts too, so the per-speaker peer (which standardises with all of a
        # test speaker's clips) has a comparison that also knows something of the speaker.
        contexts = {kind: clip_figures(y, probabilities(recognizer, mels, speaker_contexts(records, mels, kind, seed)))
                    for kind in CONTEXTS[1:] if recognizer.features.normalisation == "speaker"}
        # Validation clips of the six corpora it learnt and of the one it never heard: where the
        # temperature for an unseen corpus is chosen (the test clips' curve is read, not used).
        base = validation_temperature(meta)
        calibration = {"held_out_test": calibration_curves(scored, y, base)}
        for name, part in (("seen_val", [r for r in train if split_of(r) == "val"]),
                           ("held_out_val", [r for r in collection.records
                                             if r.corpus == held_out and split_of(r) == "val"])):
            part_records, part_mels = load_split(part, recognizer.features, progress)
            calibration[name] = calibration_curves(recognizer.log_mel_scorer().scores(part_mels),
                                                   np.array([LABEL_INDEX[r.emotion] for r in part_records]), base)
        result[held_out] = {**clip_figures(y, alone), "contexts": contexts, "reliability": reliability(y, alone),
                            "calibration": calibration,
                            "model_file": path.name,
                            "val_uar": meta["training"]["history"][meta["training"]["best_epoch"] - 1]["uar"],
                            "epochs": meta["training"]["epochs"], "best_epoch": meta["training"]["best_epoch"],
                            "reused": reused, "seconds": round(time.perf_counter() - started, 1)}
    return result


def run_peers(collection: Collection, methods: Sequence[str], loco: bool, in_domain: bool, progress: bool) -> dict:
    """The classic peers on the same LOCO and/or on split v2 train -> test.

    Each feature set is read once (openSMILE functionals, cached under $EMOTIONNET_CACHE/opensmile)
    and serves both sections.
    """
    records = collection.records
    features: dict[str, dict] = {}
    result: dict[str, dict] = {"peers_loco": {}, "peers_in_domain": {}}
    for method in methods:
        feature_set = peers.METHODS[method]["feature_set"]
        if feature_set not in features:
            features[feature_set], _ = peers.extract_features([r.path for r in records], feature_set, progress=progress)
        if loco:
            print(f"generalisation: {method}: leave-one-corpus-out", file=sys.stderr)
            result["peers_loco"][method] = peers.leave_one_corpus_out(method, records, features[feature_set], CORPORA)
        if in_domain:
            print(f"generalisation: {method}: split v2 train -> test", file=sys.stderr)
            result["peers_in_domain"][method] = peers.train_and_test(method, records, features[feature_set])
    return {key: value for key, value in result.items() if value}


def stratified(records: Sequence[Record], per_class: int, seed: int) -> list[Record]:
    """At most `per_class` clips of each (corpus, emotion), chosen by a seeded shuffle."""
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        groups[(r.corpus, r.emotion)].append(r)
    rng = np.random.default_rng(seed)
    chosen = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda r: r.path)
        chosen.extend(group[i] for i in sorted(rng.permutation(len(group))[:per_class]))
    return chosen


def channel_conditions(test: list[Record], per_class: int, seed: int,
                       progress: bool) -> tuple[list[Record], dict[str, list[np.ndarray]]]:
    """A stratified subset of the test clips, clean and through each channel: the same audio for
    EmotionNet and the peers."""
    from tqdm import tqdm

    from emotionnet.audio import AudioError, load_audio
    from emotionnet.evaluation.channels import CHANNELS

    audio, records = [], []
    for r in stratified(test, per_class, seed):
        try:
            audio.append(load_audio(r.path))
            records.append(r)
        except AudioError as exc:
            print(f"generalisation: skipped {exc}", file=sys.stderr)
    conditions = {"clean": audio}
    for name, channel in CHANNELS.items():
        rng = np.random.default_rng(seed)
        conditions[name] = [channel(a, rng) for a in tqdm(audio, desc=name, unit="clip", disable=not progress,
                                                          leave=False)]
    return records, conditions


def with_drops(scores: dict[str, dict], per_class: int) -> dict:
    """{"clean", "channels": {name: figures + drop}} from figures per condition."""
    clean = scores["clean"]
    channels = {name: {**row, "drop": clean["overall"]["uar"] - row["overall"]["uar"]}
                for name, row in scores.items() if name != "clean"}
    return {"clips": clean["overall"]["n"], "per_class": per_class, "clean": clean, "channels": channels}


def run_channels(recognizer, records: list[Record], conditions: dict[str, list[np.ndarray]], per_class: int) -> dict:
    """Clean and channel-degraded UAR on the same clips; the drop per channel."""
    from emotionnet.features import log_mel

    return with_drops({name: table(records, probabilities(recognizer, [log_mel(a, recognizer.features) for a in clips]))
                       for name, clips in conditions.items()}, per_class)


def run_peer_channels(collection: Collection, records: list[Record], conditions: dict[str, list[np.ndarray]],
                      methods: Sequence[str], per_class: int, progress: bool) -> dict:
    """The peers, trained on split v2's train split, on the same clean and degraded clips."""
    y = np.array([LABEL_INDEX[r.emotion] for r in records])
    corpora = np.array([r.corpus for r in records])
    features: dict[str, dict] = {}
    degraded: dict[str, dict[str, np.ndarray]] = {}
    result = {}
    for method in methods:
        feature_set = peers.METHODS[method]["feature_set"]
        if feature_set not in features:
            features[feature_set], _ = peers.extract_features([r.path for r in collection.records], feature_set,
                                                              progress=progress)
            degraded[feature_set] = {name: peers.functionals(clips, feature_set, progress)
                                     for name, clips in conditions.items()}
        print(f"generalisation: {method}: channel suite", file=sys.stderr)
        classifier = peers.trained_classifier(method, collection.records, features[feature_set])
        per_speaker = peers.METHODS[method].get("per_speaker", False)
        scores = {}
        for name, x in degraded[feature_set].items():
            pred = classifier.predict(peers.standardised(x, records, per_speaker))
            scores[name] = {"overall": summary(y, pred),
                            "per_corpus": {c: summary(y[corpora == c], pred[corpora == c]) for c in sorted(set(corpora))}}
        result[method] = with_drops(scores, per_class)
    return result


def run_voices(recognizer) -> dict:
    """Neutral sentences in espeak-ng voices: which emotions does the model hear in a flat synthetic voice?"""
    import shutil
    import subprocess
    import tempfile

    from emotionnet.audio import load_audio

    if not shutil.which("espeak-ng"):
        return {"skipped": "espeak-ng is not installed (apt-get install espeak-ng)"}
    answers: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for voice in VOICES:
            answers[voice] = []
            for i, sentence in enumerate(SENTENCES):
                wav = Path(folder) / f"{voice}-{i}.wav"
                subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), sentence], check=True,
                               capture_output=True)
                answers[voice].append(recognizer.predict(load_audio(wav), sample_rate=16_000).most_likely.emotion)
    flat = [a for voice in answers.values() for a in voice]
    counts = {label: flat.count(label) for label in sorted(set(flat))}
    return {"answers": answers, "counts": counts, "collapse": max(counts.values()) / len(flat),
            "angry_share": counts.get("angry", 0) / len(flat)}


# --------------------------------------------------------------------------- the run

def run(model: Path, data: Path, only: Sequence[str], loco_epochs: int | None, loco_steps: int | None,
        loco_ema: float | None, channel_clips: int, seed: int, cache: Path, progress: bool,
        loco_corpora: Sequence[str] = CORPORA, peer_methods: Sequence[str] = PEER_METHODS,
        split: str = "test") -> dict:
    from emotionnet.inference.recognizer import EmotionRecognizer

    started = time.perf_counter()
    collection = find_records([data])
    test = select(collection.records, split)  # in-domain and channels; "val" when choosing between models
    recognizer = EmotionRecognizer.from_file(model)
    result = {
        "benchmark": "generalisation", "split": SPLIT_NAME, "scored_split": split, "model_file": shown(model),
        "sha256": file_digest(model, "sha256"), "normalisation": recognizer.features.normalisation,
        "temperature": recognizer.temperature, "data": {"clips": collection.per_corpus(), "test": len(test),
                                                        "excluded": [Path(p).stem for p in collection.excluded]},
        "machine": machine_info(), "targets": TARGETS,
    }
    if "in-domain" in only:
        result["in_domain"] = run_in_domain(recognizer, test, seed, progress)
    if "loco" in only:
        result["loco"] = run_loco(collection, loco_corpora, loco_epochs, loco_steps, loco_ema, seed, cache, progress)
        result["loco_budget"] = {"epochs": loco_epochs, "steps_per_epoch": loco_steps, "ema_decay": loco_ema}
        from emotionnet.training.calibration import unseen_corpus_scale

        result["unseen_corpus_calibration"] = unseen_corpus_scale(
            {corpus: fold["calibration"] for corpus, fold in result["loco"].items()},
            TARGETS["ece_test"], TARGETS["ece_loco"])
    if "peers" in only or "peers-in-domain" in only:
        result.update(run_peers(collection, peer_methods, "peers" in only, "peers-in-domain" in only, progress))
    if "channels" in only or "peers-channels" in only:
        records, conditions = channel_conditions(test, channel_clips, seed, progress)
        if "channels" in only:
            result["channels"] = run_channels(recognizer, records, conditions, channel_clips)
        if "peers-channels" in only:
            result["peers_channels"] = run_peer_channels(collection, records, conditions, peer_methods,
                                                         channel_clips, progress)
    if "voices" in only:
        result["voices"] = run_voices(recognizer)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", metavar="NAME|FILE", help="a model name (default, whisper-base) or file (default: the shipped one)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="corpus root (relative: from the repository root)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}")
    parser.add_argument("--loco-epochs", type=int, help="maximum epochs of each LOCO training (default: the recipe's)")
    parser.add_argument("--loco-steps", type=int, help="batches per epoch of each LOCO training (default: one pass)")
    parser.add_argument("--loco-ema-decay", type=float, help="weight-average decay of each LOCO training "
                        "(default: the recipe's; a shorter budget needs a smaller one)")
    parser.add_argument("--loco-corpora", default=",".join(CORPORA), help="held-out corpora of the LOCO table "
                        "(several runs over parts of it can share the trained models)")
    parser.add_argument("--peer-methods", default=",".join(PEER_METHODS), help="peers on the LOCO table "
                        f"(default {','.join(PEER_METHODS)})")
    parser.add_argument("--channel-clips", type=int, default=20, help="test clips per corpus and emotion in the "
                        "channel suite (default 20)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="the split in-domain and "
                        "channels score: val to choose between models, test once after (default test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", metavar="DIR", help="where LOCO model files are kept")
    parser.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    parser.add_argument("--plot", metavar="PNG", help="write the reliability diagram")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    only = comma_list(args.only)
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    from emotionnet.inference.recognizer import resolve_model_path

    model = resolve_model_path(args.model)
    result = run(model, resolve_data(args.data), only, args.loco_epochs, args.loco_steps, args.loco_ema_decay, args.channel_clips, args.seed,
                 Path(args.cache) if args.cache else default_cache(), not args.quiet,
                 comma_list(args.loco_corpora), comma_list(args.peer_methods), args.split)
    if args.plot and ("in_domain" in result or "loco" in result):
        plot_reliability(result, args.plot)
    return finish(result, format_markdown(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
