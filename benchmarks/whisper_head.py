"""The `whisper-base` head on cached encoder states: in-domain split v3, LOCO over eight corpora, calibration.

The encoder is frozen, so every figure here reads the encoder cache
(emotionnet/training/encoder_cache.py) instead of re-encoding audio: a LOCO
fold is minutes. Per fold the head trains on the other seven corpora's train
splits (clean and augmented copies), keeps the epoch with the best mean
validation UAR of those seven, and its temperature is fitted on their
validation clips. The unseen-corpus temperature scale is then chosen on the
held-out corpora's validation clips only (the rule of the shipped CRNN: the
scale minimising the fold-average of max(seen ECE / 0.05, held-out ECE / 0.10)),
and test figures are read once, after every choice.

    python -m benchmarks.whisper_head --json docs/results/whisper-head.json > docs/results/whisper-head.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import clip_figures, labels_of
from emotionnet.corpora import Record, find_records, split_of
from emotionnet.environment import from_environment
from emotionnet.evaluation.metrics import expected_calibration_error
from emotionnet.models.whisper.encoder import WhisperEncoder
from emotionnet.models.whisper.head import StatsHead
from emotionnet.models.whisper.weights import load_encoder_tensors, tensors_digest
from emotionnet.training.encoder_cache import encoder_folder, window_shape
from emotionnet.training.head_training import (
    CachedStates,
    CachedStatistics,
    HeadConfig,
    clip_logits,
    clip_probabilities,
    per_corpus_uar,
    train_head,
)
from emotionnet.training.statistics_cache import statistics_folder
from emotionnet.training.whisper_recipe import fit_temperature

CORPORA = ("crema-d", "ravdess", "tess", "savee", "nemo", "ased", "turev", "banglaser")
SCALES = np.round(np.exp(np.linspace(np.log(0.8), np.log(3.0), 31)), 3)


def figures(records: Sequence[Record], logits: list[torch.Tensor], temperature: float) -> dict:
    probs = clip_probabilities(logits, temperature)
    return {**clip_figures(labels_of(records), probs), "per_corpus_uar": per_corpus_uar(records, probs)}


def ece_curve(records, logits, temperature) -> list[float]:
    y = labels_of(records)
    return [expected_calibration_error(y, clip_probabilities(logits, temperature * s)) for s in SCALES]


def cached(records: Sequence[Record], cache: CachedStates) -> list[Record]:
    return [r for r in records if cache.windows(r, "clean")]


def run_fold(cache, records, held_out: str | None, config: HeadConfig, variants, log) -> dict:
    """Train without `held_out` (None: on every corpus) and score what the fold needs."""
    def part(split: str, inside: bool) -> list[Record]:
        return cached([r for r in records if split_of(r) == split and (r.corpus == held_out) != inside], cache)

    train, val = part("train", True), part("val", True)
    start = time.time()
    head, fit = train_head(cache, train, val, config, variants, progress=lambda m: log(f"  [{held_out or 'all'}] {m}"))
    val_logits = clip_logits(head, cache, val, config.layers)
    temperature = fit_temperature(val_logits, labels_of(val))
    fold = {"held_out": held_out, "train_clips": len(train), "val_clips": len(val), "seconds": time.time() - start,
            "best_epoch": fit["best_epoch"], "seen_val_uar": fit["val_uar"], "temperature": temperature,
            "layer_weights": head.layer_weights().tolist(), "history": fit["history"],
            "seen_val_ece_curve": ece_curve(val, val_logits, temperature)}
    if held_out is None:
        test = cached([r for r in records if split_of(r) == "test"], cache)
        fold["_test"] = (test, clip_logits(head, cache, test, config.layers))
    else:
        held_val, held_test = part("val", False), part("test", False)
        held_val_logits = clip_logits(head, cache, held_val, config.layers)
        fold["held_out_val"] = figures(held_val, held_val_logits, temperature)
        fold["held_out_val_ece_curve"] = ece_curve(held_val, held_val_logits, temperature)
        fold["_test"] = (held_test, clip_logits(head, cache, held_test, config.layers))
    fold["_head"] = head.state_dict()  # --combine --rescore scores test clips cached after the fold ran
    return fold


def rescore_test(folds: list[dict], cache, records: Sequence[Record], layers: int) -> None:
    """Each saved fold's held-out test clips scored again with its head, from the cache as it is now."""
    for fold in folds:
        head = StatsHead(layers + 1, 512, 6)
        head.load_state_dict(fold["_head"])
        test = cached([r for r in records if split_of(r) == "test" and r.corpus == fold["held_out"]], cache)
        fold["_test"] = (test, clip_logits(head, cache, test, layers))


def choose_scale(folds: list[dict]) -> float:
    cost = np.mean([np.maximum(np.array(f["seen_val_ece_curve"]) / 0.05, np.array(f["held_out_val_ece_curve"]) / 0.10)
                    for f in folds], axis=0)
    return float(SCALES[int(np.argmin(cost))])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--corpora", default=",".join(CORPORA), help="LOCO folds to run")
    parser.add_argument("--config", default="{}", help="HeadConfig fields as JSON")
    parser.add_argument("--no-in-domain", action="store_true")
    parser.add_argument("--json", help="write the full result here")
    parser.add_argument("--folds-dir", help="save each LOCO fold here (test scores unread) instead of reporting; "
                                            "several processes can share the folds, then --combine reports")
    parser.add_argument("--combine", help="report the folds saved in this folder (choose the scale, read test once)")
    parser.add_argument("--rescore", action="store_true",
                        help="with --combine: score each fold's held-out test clips again with its saved stats head, "
                             "from the cache as it is now (test clips cached after the folds ran)")
    parser.add_argument("--variants", default="clean,aug1,aug2", help="cached variants to train on")
    parser.add_argument("--cache", choices=("frames", "statistics"), default="frames",
                        help="frames: 3 s windows' states (encoder_cache.py); statistics: each clip whole, "
                             "crops and augmented copies as layer statistics (statistics_cache.py; stats head only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("EMOTIONNET_THREADS", "1")))
    config = HeadConfig(**json.loads(args.config))
    if args.combine and not args.rescore:
        return combine(Path(args.combine), args.json)
    settings = from_environment(model=False)  # $EMOTIONNET_WHISPER and $EMOTIONNET_CACHE, as the command line reads them
    tensors, _ = load_encoder_tensors(settings.encoder_weights)
    digest = tensors_digest(tensors)
    encoder = WhisperEncoder.from_ctranslate2(tensors)
    del tensors
    variants = tuple(args.variants.split(","))
    if args.cache == "statistics":
        cache = CachedStatistics(statistics_folder(digest, settings.cache_dir), variants, encoder.n_states, encoder.positions.shape[1],
                                 digest)
    else:
        cache = CachedStates(encoder_folder(digest, settings.cache_dir), variants, window_shape(encoder), digest)
    records = find_records([args.data]).records
    if args.combine:
        return combine(Path(args.combine), args.json, lambda folds: rescore_test(folds, cache, records, config.layers))

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = {"benchmark": "whisper-head", "split": "v3", "config": config.to_dict(), "variants": list(variants),
              "cache": args.cache, "encoder_digest": digest}
    folds = []
    for corpus in [c for c in args.corpora.split(",") if c]:
        log(f"LOCO fold without {corpus}")
        folds.append(run_fold(cache, records, corpus, config, variants, log))
        if args.folds_dir:
            Path(args.folds_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.folds_dir) / "config.json").write_text(json.dumps({**config.to_dict(), "variants": variants}))
            torch.save(folds[-1], Path(args.folds_dir) / f"fold-{corpus}.pt")
    if args.folds_dir:
        return 0
    if folds:
        report_loco(result, folds)
    if not args.no_in_domain:
        log("in-domain: every corpus")
        fold = run_fold(cache, records, None, config, variants, log)
        test, logits = fold.pop("_test")
        fold.pop("_head", None)
        scale = result.get("unseen_corpus_scale", 1.0)
        fold["test"] = figures(test, logits, fold["temperature"] * scale)
        result["in_domain"] = fold
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(format_markdown(result))
    return 0


def report_loco(result: dict, folds: list[dict]) -> None:
    """Choose the unseen-corpus scale on validation curves, then read each fold's test split once."""
    scale = choose_scale(folds) if len(folds) > 1 else 1.0
    result["unseen_corpus_scale"] = scale
    result["loco"] = {}
    for fold in folds:
        test, logits = fold.pop("_test")
        fold.pop("_head", None)
        fold["test"] = figures(test, logits, fold["temperature"] * scale)
        fold["test_at_validation_temperature"] = figures(test, logits, fold["temperature"])
        result["loco"][fold["held_out"]] = fold
    result["loco_mean_uar"] = float(np.mean([f["test"]["uar"] for f in folds]))
    result["loco_mean_val_uar"] = float(np.mean([f["held_out_val"]["uar"] for f in folds]))
    result["loco_mean_ece"] = float(np.mean([f["test"]["ece"] for f in folds]))
    result["loco_worst_collapse"] = float(np.max([f["test"]["collapse"] for f in folds]))


def combine(folder: Path, json_path: str | None, rescore=None) -> int:
    saved = [torch.load(p, weights_only=False) for p in sorted(folder.glob("fold-*.pt"))]
    if rescore:
        rescore(saved)
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
    result = {"benchmark": "whisper-head", "split": "v3", "config": config, "folds_dir": folder.name}
    report_loco(result, saved)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(format_markdown(result))
    return 0


def format_markdown(result: dict) -> str:
    lines = [f"# whisper-base head, split {result['split']} (each clip alone)", "",
             f"config: `{json.dumps(result['config'])}`", ""]
    if "loco" in result:
        lines += [f"LOCO mean test UAR **{result['loco_mean_uar']:.3f}** (held-out val {result['loco_mean_val_uar']:.3f});"
                  f" mean ECE {result['loco_mean_ece']:.3f}, worst collapse {result['loco_worst_collapse']:.3f};"
                  f" unseen-corpus scale x{result['unseen_corpus_scale']:.3f}", "",
                  "| held out | test UAR | collapse | ECE | ECE at val T | held-out val UAR | seen val UAR | epoch |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for corpus, f in result["loco"].items():
            lines.append(f"| {corpus} | {f['test']['uar']:.3f} | {f['test']['collapse']:.3f} | {f['test']['ece']:.3f} | "
                         f"{f['test_at_validation_temperature']['ece']:.3f} | {f['held_out_val']['uar']:.3f} | "
                         f"{f['seen_val_uar']:.3f} | {f['best_epoch']} |")
    if "in_domain" in result:
        t = result["in_domain"]["test"]
        lines += ["", f"In-domain test UAR {t['uar']:.3f}, ECE {t['ece']:.3f}, collapse {t['collapse']:.3f}", "",
                  "| " + " | ".join(t["per_corpus_uar"]) + " |", "|" + " --- |" * len(t["per_corpus_uar"]),
                  "| " + " | ".join(f"{v:.3f}" for v in t["per_corpus_uar"].values()) + " |"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
