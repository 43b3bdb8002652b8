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

    python benchmarks/generalisation.py --json docs/results/generalisation.json \
        --plot docs/results/reliability.png > docs/results/generalisation.md
    python benchmarks/generalisation.py --model my.safetensors --only in-domain,channels
    python benchmarks/generalisation.py --only loco --loco-epochs 6 --loco-steps 120 --loco-ema-decay 0.99
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

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `emotionnet` importable from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import peer_methods as peers  # noqa: E402
from benchmarks.common import ALL_CORPORA as CORPORA  # noqa: E402
from benchmarks.common import CORPORA as V1_CORPORA  # noqa: E402
from benchmarks.common import CORPUS_TITLES as TITLES  # noqa: E402
from benchmarks.common import DEFAULT_DATA, comma_list, finish, machine_info, resolve_data, shown, train_or_reuse  # noqa: E402
from emotionnet.corpora import SPLIT_NAME, Collection, Record, find_records, select, split_of  # noqa: E402
from emotionnet.digest import file_digest  # noqa: E402
from emotionnet.evaluation.metrics import (  # noqa: E402
    brier_score,
    calibration_error,
    collapse,
    expected_calibration_error,
    reliability,
    summary,
)
from emotionnet.labels import LABEL_INDEX  # noqa: E402
from emotionnet.training.calibration import SCALES  # noqa: E402

SECTIONS = ("in-domain", "loco", "peers", "peers-in-domain", "channels", "peers-channels", "voices")
# Synthetic voices the corpora never had: the old model called seven of eight of them angry.
VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb+m3", "de", "pl", "tr", "es")
SENTENCES = ("The meeting has been moved to Thursday afternoon.",
             "I left the keys on the kitchen table.",
             "We will take the early train tomorrow morning.",
             "Please read the instructions before you start.")
CONTEXTS = ("alone", "random5", "neutral")
PEER_METHODS = ("compare_linear_svm_speaker", "compare_linear_svm", "egemaps_rbf_svm")  # the target's peer first
TARGETS = {"test_uar_v1": 0.72, "test_uar_new": 0.70, "loco_mean": 0.55, "collapse": 0.30,
           "channel_drop": 0.05, "ece_test": 0.05, "ece_loco": 0.10}


def default_cache() -> Path:
    from emotionnet.cache import cache_root

    return cache_root() / "benchmarks" / "generalisation"


# --------------------------------------------------------------------------- scoring

def probabilities(recognizer, mels: list, contexts: list | None = None) -> np.ndarray:
    """(clips, classes) calibrated clip probabilities, as `predict` computes them."""
    from emotionnet.training.calibration import clip_probabilities

    return clip_probabilities(recognizer.score_log_mels(mels, contexts=contexts), recognizer.temperature)


def figures(y: np.ndarray, probs: np.ndarray) -> dict:
    """UAR, accuracy, macro-F1, collapse, ECE and Brier of clip probabilities."""
    pred = probs.argmax(axis=1)
    return {**summary(y, pred), "collapse": collapse(pred),
            "ece": expected_calibration_error(y, probs), "brier": brier_score(y, probs)}


def table(records: Sequence[Record], probs: np.ndarray) -> dict:
    """Figures over all clips, over the four v1 corpora's clips (the v1 target's figure), and per corpus."""
    y = np.array([LABEL_INDEX[r.emotion] for r in records])
    corpora = np.array([r.corpus for r in records])
    v1 = np.isin(corpora, V1_CORPORA)
    return {"overall": figures(y, probs), "overall_v1": figures(y[v1], probs[v1]) if v1.any() else None,
            "per_corpus": {c: figures(y[corpora == c], probs[corpora == c]) for c in CORPORA if (corpora == c).any()}}


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

    mels, errors = cached_log_mels([r.path for r in records], config, progress=progress)
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
        recognizer = EmotionRecognizer(path)
        records, mels = load_split(test, recognizer.features, progress)
        y = np.array([LABEL_INDEX[r.emotion] for r in records])
        scored = recognizer.score_log_mels(mels)  # scored once: the figures and the calibration curves
        alone = clip_probabilities(scored, recognizer.temperature)
        # The realistic contexts too, so the per-speaker peer (which standardises with all of a
        # test speaker's clips) has a comparison that also knows something of the speaker.
        contexts = {kind: figures(y, probabilities(recognizer, mels, speaker_contexts(records, mels, kind, seed)))
                    for kind in CONTEXTS[1:] if recognizer.features.normalisation == "speaker"}
        # Validation clips of the six corpora it learnt and of the one it never heard: where the
        # temperature for an unseen corpus is chosen (the test clips' curve is read, not used).
        base = validation_temperature(meta)
        calibration = {"held_out_test": calibration_curves(scored, y, base)}
        for name, part in (("seen_val", [r for r in train if split_of(r) == "val"]),
                           ("held_out_val", [r for r in collection.records
                                             if r.corpus == held_out and split_of(r) == "val"])):
            part_records, part_mels = load_split(part, recognizer.features, progress)
            calibration[name] = calibration_curves(recognizer.score_log_mels(part_mels),
                                                   np.array([LABEL_INDEX[r.emotion] for r in part_records]), base)
        result[held_out] = {**figures(y, alone), "contexts": contexts, "reliability": reliability(y, alone),
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
                answers[voice].append(recognizer.predict(load_audio(wav), sample_rate=16_000).emotion)
    flat = [a for voice in answers.values() for a in voice]
    counts = {label: flat.count(label) for label in sorted(set(flat))}
    return {"answers": answers, "counts": counts, "collapse": max(counts.values()) / len(flat),
            "angry_share": counts.get("angry", 0) / len(flat)}


# --------------------------------------------------------------------------- the run

def run(model: Path, data: Path, only: Sequence[str], loco_epochs: int | None, loco_steps: int | None,
        loco_ema: float | None, channel_clips: int, seed: int, cache: Path, progress: bool,
        loco_corpora: Sequence[str] = CORPORA, peer_methods: Sequence[str] = PEER_METHODS) -> dict:
    from emotionnet.inference.recognizer import EmotionRecognizer

    started = time.perf_counter()
    collection = find_records([data])
    test = select(collection.records, "test")
    recognizer = EmotionRecognizer(model)
    result = {
        "benchmark": "generalisation", "split": SPLIT_NAME, "model_file": shown(model),
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


def _f(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_markdown(result: dict) -> str:
    lines = [f"# Generalisation of `{result['model_file']}` (split {result['split']})", "",
             f"sha256 `{result['sha256'][:16]}…`, normalisation `{result['normalisation']}`, "
             f"temperature {result['temperature']:.3f}; {result['machine']}", ""]
    corpora = [c for c in CORPORA if c in result["data"]["clips"]]
    header = "| | all seven | v1 four | " + " | ".join(TITLES[c] for c in corpora) + " |"
    rule = "|---" * (len(corpora) + 3) + "|"
    if "in_domain" in result:
        lines += ["## Test UAR, split v2", "", header, rule]
        names = {"alone": "each clip alone", "random5": "with 5 random clips of the speaker",
                 "neutral": "with the speaker's neutral clips"}
        for kind, rows in result["in_domain"].items():
            lines.append(f"| {names[kind]} | {_f(rows['overall']['uar'])} | {_f((rows['overall_v1'] or {}).get('uar'))} | "
                         + " | ".join(_f(rows["per_corpus"].get(c, {}).get("uar")) for c in corpora) + " |")
        alone = result["in_domain"]["alone"]
        for key, title in (("collapse", "collapse, alone"), ("ece", "ECE, alone"), ("brier", "Brier, alone")):
            lines.append(f"| {title} | {_f(alone['overall'][key])} | {_f((alone['overall_v1'] or {}).get(key))} | "
                         + " | ".join(_f(alone["per_corpus"].get(c, {}).get(key)) for c in corpora) + " |")
        lines.append("")
    if "peers_in_domain" in result:
        lines += ["## The peers on split v2 (trained on every corpus's train split, test UAR)", "",
                  "| | all seven | " + " | ".join(TITLES[c] for c in CORPORA) + " |", "|---" * (len(CORPORA) + 2) + "|"]
        for method, rows in result["peers_in_domain"].items():
            lines.append(f"| {peers.METHODS[method]['title']} | {_f(rows['overall']['uar'])} | "
                         + " | ".join(_f(rows["per_corpus"].get(c, {}).get("uar")) for c in CORPORA) + " |")
        lines.append("")
    if "loco" in result or "peers_loco" in result:
        lines += ["## Leave-one-corpus-out, test UAR of the held-out corpus (each clip alone)", "",
                  "| | mean | " + " | ".join(TITLES[c] for c in CORPORA) + " |", "|---" * (len(CORPORA) + 2) + "|"]
        rows = []
        if "loco" in result:
            loco = result["loco"]
            budget = result.get("loco_budget", {})
            reduced = budget.get("epochs") or budget.get("steps_per_epoch")
            schedule = (f"{budget.get('epochs') or 'the recipe’s'} epochs at most of "
                        f"{budget.get('steps_per_epoch') or 'a pass of the clips in'} steps" if reduced
                        else "its full schedule")
            rows.append((f"EmotionNet default recipe ({schedule})", loco, "uar"))
            rows.append(("EmotionNet: collapse", loco, "collapse"))
            rows.append(("EmotionNet: ECE", loco, "ece"))
            unseen = result.get("unseen_corpus_calibration") or {}
            if unseen:
                rows.append((f"EmotionNet: ECE at the unseen-corpus temperature (x{unseen['scale']:.2f})",
                             {c: {"ece": e} for c, e in unseen["held_out_test_ece"].items()}, "ece"))
            for kind, title in (("random5", "with 5 random clips of the speaker"),
                                ("neutral", "with the speaker's neutral clips")):
                with_context = {c: v["contexts"][kind] for c, v in loco.items() if kind in v.get("contexts", {})}
                if with_context:
                    rows.append((f"EmotionNet, {title}", with_context, "uar"))
            rows.append(("EmotionNet: validation UAR of the six corpora (selection)", loco, "val_uar"))
        for method, table_ in result.get("peers_loco", {}).items():
            rows.append((peers.METHODS[method]["title"], table_, "uar"))
        for title, table_, key in rows:
            values = [table_.get(c, {}).get(key) for c in CORPORA]
            present = [v for v in values if v is not None]
            mean = float(np.mean(present)) if present else None
            lines.append(f"| {title} | {_f(mean)} | " + " | ".join(_f(v) for v in values) + " |")
        lines.append("")
    unseen = result.get("unseen_corpus_calibration")
    if unseen:
        lines += ["## Temperature for a corpus the model never heard (chosen on validation clips only)", "",
                  f"Scale {unseen['scale']:.2f} times the validation temperature: mean ECE "
                  f"{unseen['seen_val_ece']:.3f} on the six learnt corpora's validation clips and "
                  f"{unseen['held_out_val_ece']:.3f} on the held-out corpus's (at scale 1: "
                  f"{_scale_one(result, 'seen_val'):.3f} and {_scale_one(result, 'held_out_val'):.3f}). "
                  "The log-loss-optimal scale on each held-out corpus's validation clips: "
                  + ", ".join(f"{TITLES[c]} {v:.2f}" for c, v in unseen["held_out_val_best_scale"].items()) + ".", ""]
    if "channels" in result:
        ch = result["channels"]
        lines += [f"## Channel suite ({ch['clips']} test clips, at most {ch['per_class']} per corpus and emotion)", "",
                  "| channel | UAR | drop | collapse | ECE |", "|---|---|---|---|---|",
                  f"| clean | {_f(ch['clean']['overall']['uar'])} | | {_f(ch['clean']['overall']['collapse'])} | "
                  f"{_f(ch['clean']['overall']['ece'])} |"]
        for name, row in ch["channels"].items():
            lines.append(f"| {name} | {_f(row['overall']['uar'])} | {row['drop']:+.3f} | "
                         f"{_f(row['overall']['collapse'])} | {_f(row['overall']['ece'])} |")
        lines.append("")
    if "peers_channels" in result:
        tables = {"EmotionNet": result["channels"]} if "channels" in result else {}
        tables.update({peers.METHODS[m]["title"].split(" (")[0] + (", per speaker" if "speaker" in m else ""): t
                       for m, t in result["peers_channels"].items()})
        names = list(next(iter(tables.values()))["channels"])
        lines += ["## Channel suite beside the peers (UAR clean, then the drop per channel)", "",
                  "| | clean | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
        for title, t in tables.items():
            lines.append(f"| {title} | {_f(t['clean']['overall']['uar'])} | "
                         + " | ".join(f"{t['channels'][n]['drop']:+.3f}" for n in names) + " |")
        lines.append("")
    voices = result.get("voices")
    if voices and "counts" in voices:
        lines += [f"## Synthetic voices ({len(voices['answers'])} espeak-ng voices x {len(SENTENCES)} neutral "
                  "sentences)", "", "| voice | answers |", "|---|---|"]
        lines += [f"| {voice} | {', '.join(answers)} |" for voice, answers in voices["answers"].items()]
        lines += ["", f"Answers: {voices['counts']}; most common {voices['collapse']:.0%} of them, "
                  f"angry {voices['angry_share']:.0%}.", ""]
    lines += ["## Targets (DESIGN.md)", ""] + [f"- {v}" for v in verdicts(result)]
    lines += ["", f"Wall time {result['wall_seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def _scale_one(result: dict, part: str) -> float:
    """Mean ECE over the LOCO folds at the models' validation (in-domain) temperature."""
    one = int(np.argmin(np.abs(SCALES - 1.0)))
    return float(np.mean([v["calibration"][part]["ece"][one] for v in result["loco"].values()]))


def verdicts(result: dict) -> list[str]:
    out = []
    alone = result.get("in_domain", {}).get("alone")
    if alone:
        pc = alone["per_corpus"]
        if alone["overall_v1"]:
            v1 = alone["overall_v1"]["uar"]
            out.append(f"split v1 corpora test UAR alone {v1:.3f} (target >= 0.72): {'met' if v1 >= 0.72 else 'MISSED'}")
        for c, target in (("crema-d", 0.65), ("ravdess", 0.70), ("tess", 0.98), ("savee", 0.50)):
            if c in pc:
                ok = pc[c]["uar"] >= target
                out.append(f"{TITLES[c]} test UAR alone {pc[c]['uar']:.3f} (target >= {target:.2f}): "
                           f"{'met' if ok else 'MISSED'}")
        for c in ("nemo", "ased", "turev"):
            if c in pc:
                ok = pc[c]["uar"] >= TARGETS["test_uar_new"]
                out.append(f"{TITLES[c]} test UAR alone {pc[c]['uar']:.3f} (target >= 0.70): {'met' if ok else 'MISSED'}")
        ece = alone["overall"]["ece"]
        out.append(f"ECE on test {ece:.3f} (target <= 0.05): {'met' if ece <= TARGETS['ece_test'] else 'MISSED'}")
    loco = result.get("loco")
    if loco:
        mean = float(np.mean([v["uar"] for v in loco.values()]))
        out.append(f"LOCO mean UAR {mean:.3f} (target >= 0.55): {'met' if mean >= TARGETS['loco_mean'] else 'MISSED'}")
        worst = max(v["collapse"] for v in loco.values())
        out.append(f"LOCO worst collapse {worst:.3f} (target <= 0.30): {'met' if worst <= TARGETS['collapse'] else 'MISSED'}")
        worst_ece = max(v["ece"] for v in loco.values())
        pooled = pooled_reliability([v["reliability"] for v in loco.values()])
        if pooled:
            out.append(f"LOCO ECE of the held-out corpora pooled {calibration_error(pooled):.3f}")
        unseen = result.get("unseen_corpus_calibration")
        if unseen:
            worst_scaled = max(unseen["held_out_test_ece"].values())
            out.append(f"LOCO worst ECE at the unseen-corpus temperature (x{unseen['scale']:.2f}) {worst_scaled:.3f} "
                       f"(target <= 0.10): {'met' if worst_scaled <= TARGETS['ece_loco'] else 'MISSED'}")
        out.append(f"LOCO worst ECE {worst_ece:.3f} (target <= 0.10): "
                   f"{'met' if worst_ece <= TARGETS['ece_loco'] else 'MISSED'}")
        peer = result.get("peers_loco", {}).get("compare_linear_svm_speaker")
        if peer:
            below = [TITLES[c] for c in loco if c in peer and loco[c]["uar"] <= peer[c]["uar"]]
            out.append("LOCO above the per-speaker ComParE SVM on every corpus: "
                       + ("met" if not below else f"MISSED on {', '.join(below)}"))
    channels = result.get("channels")
    if channels:
        worst_name, worst = max(((n, r["drop"]) for n, r in channels["channels"].items()), key=lambda x: x[1])
        out.append(f"channel suite worst drop {worst:+.3f} ({worst_name}; target <= 0.05): "
                   f"{'met' if worst <= TARGETS['channel_drop'] else 'MISSED'}")
    return out


def pooled_reliability(tables: Sequence[dict]) -> dict | None:
    """One reliability table from several over the same bins (bin means weighted by their counts)."""
    if not tables:
        return None
    counts = np.sum([t["count"] for t in tables], axis=0)
    pooled = {"edges": tables[0]["edges"], "count": counts.tolist()}
    for key in ("confidence", "accuracy"):
        weighted = np.sum([np.asarray(t[key]) * np.asarray(t["count"]) for t in tables], axis=0)
        pooled[key] = (weighted / np.maximum(counts, 1)).tolist()
    return pooled


def plot_reliability(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    curves = [("test, each clip alone", result.get("in_domain", {}).get("alone", {}).get("reliability")),
              ("LOCO models on their held-out corpora, pooled", pooled_reliability(
                  [v["reliability"] for v in result.get("loco", {}).values()]))]
    for label, data in curves:
        if not data:
            continue
        count = np.asarray(data["count"])
        used = count > 0
        ax.plot(np.asarray(data["confidence"])[used], np.asarray(data["accuracy"])[used], marker="o", label=label)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title("Reliability (15 bins)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", metavar="FILE", help="model file (default: the shipped one)")
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
                 comma_list(args.loco_corpora), comma_list(args.peer_methods))
    if args.plot and ("in_domain" in result or "loco" in result):
        plot_reliability(result, args.plot)
    return finish(result, format_markdown(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
