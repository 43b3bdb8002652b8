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

`--combine DIR --context` reads saved folds again with a speaker's context (each clip's standardised
statistics less alpha x its speaker's mean of them, for a linear head a per-speaker logit offset),
the one-emotion trap (that mean over the speaker's clips of the clip's own emotion only) and a
class-prior (logit) adjustment, chooses by the rules written in docs/results/whisper-context.md on
held-out validation, then reads test once:

    python -m benchmarks.whisper_head --cache statistics --variants clean --combine runs/locoN --context \
        --json docs/results/whisper-context.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import clip_figures, labels_of
from emotionnet.corpora import Record, find_records, split_of
from emotionnet.environment import from_environment
from emotionnet.evaluation.metrics import expected_calibration_error
from emotionnet.labels import LABELS
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
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)  # how much of the speaker's mean is taken off (0: each clip alone)
PRIOR_TAUS = (0.0, 0.5, 1.0)  # class-prior adjustment: logits - tau * log(seen validation's mean answer)
TRAP_ALLOWANCE = 0.05  # the most the one-emotion trap may cost against alone (rule C)
CONTEXT_GAIN = 0.01  # the least context must gain over alone to be offered (rule C)


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
    parser.add_argument("--context", action="store_true",
                        help="with --combine: speaker context, the one-emotion trap and class-prior levers "
                             "(docs/results/whisper-context.md's rules; stats head folds only)")
    parser.add_argument("--model-context", metavar="MODEL",
                        help="a whisper stats head (name or file): split v3 validation, alone, with speaker context "
                             "and in the one-emotion trap at every alpha")
    parser.add_argument("--work", help="with --model-context: keep what is scored here (a stopped run goes on)")
    parser.add_argument("--variants", default="clean,aug1,aug2", help="cached variants to train on")
    parser.add_argument("--cache", choices=("frames", "statistics"), default="frames",
                        help="frames: 3 s windows' states (encoder_cache.py); statistics: each clip whole, "
                             "crops and augmented copies as layer statistics (statistics_cache.py; stats head only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("EMOTIONNET_THREADS", "1")))
    config = HeadConfig(**json.loads(args.config))
    if args.model_context:
        return model_context(args.model_context, find_records([args.data]).records, args.work, args.json)
    if args.combine and not (args.rescore or args.context):
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
    if args.combine and args.context:
        return combine_context(Path(args.combine), cache, records, args.json)
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


# --------------------------------------------------------------------------- speaker context (issue 27)

def speaker_offsets(head: StatsHead, cache, records: Sequence[Record], layers: int,
                    group: Callable[[Record], object]) -> list[torch.Tensor]:
    """Each record's logit offset `W m`, `m` the mean standardised statistics of the cached windows of
    every record sharing its `group` (its speaker; for the trap, its speaker and emotion)."""
    members = defaultdict(list)
    for i, record in enumerate(records):
        members[group(record)].append(i)
    offsets: list[torch.Tensor] = [torch.zeros(len(LABELS))] * len(records)
    with torch.inference_mode():
        for indices in members.values():
            rows = [row for i in indices for row in cache.windows(records[i], "clean")]
            z = (cache.statistics("clean", rows, layers + 1) - head.feature_mean) / head.feature_scale
            offset = head.classify.weight @ z.mean(dim=0)
            for i in indices:
                offsets[i] = offset
    return offsets


def shifted(logits: list[torch.Tensor], offsets: list[torch.Tensor] | None, alpha: float,
            prior: torch.Tensor | None, tau: float) -> list[torch.Tensor]:
    """Logits with alpha x the speaker offset and tau x the log class prior taken off."""
    out = logits if offsets is None or alpha == 0 else [x - alpha * o for x, o in zip(logits, offsets)]
    return out if prior is None or tau == 0 else [x - tau * prior.log() for x in out]


def context_fold(fold: dict, cache, records: Sequence[Record]) -> dict:
    """A saved fold's head read again: its held-out val and test clips' logits, speaker and trap
    offsets, and the class prior of its seen corpora's validation answers."""
    layers = fold["_layers"]
    head = StatsHead(layers + 1, 512, len(LABELS))
    head.load_state_dict(fold["_head"])
    head.eval()
    held_out = fold["held_out"]
    out = {"held_out": held_out, "temperature": fold["temperature"], "seen_val_ece_curve": fold["seen_val_ece_curve"]}
    seen_val = cached([r for r in records if split_of(r) == "val" and r.corpus != held_out], cache)
    seen_probs = clip_probabilities(clip_logits(head, cache, seen_val, layers), fold["temperature"])
    out["prior"] = torch.as_tensor(seen_probs.mean(axis=0), dtype=torch.float32)
    for split in ("val", "test"):
        part = cached([r for r in records if split_of(r) == split and r.corpus == held_out], cache)
        out[split] = {"records": part, "logits": clip_logits(head, cache, part, layers),
                      "speaker": speaker_offsets(head, cache, part, layers, lambda r: r.group),
                      "trap": speaker_offsets(head, cache, part, layers, lambda r: (r.group, r.emotion))}
    return out


def context_variant(folds: list[dict], split: str, context: str, alpha: float, tau: float,
                    scale: float | None = None) -> dict:
    """One variant's figures over the folds on `split`; on "val" its unseen-corpus scale is chosen."""
    def logits_of(fold: dict) -> list[torch.Tensor]:
        part = fold[split]
        return shifted(part["logits"], None if context == "none" else part[context], alpha, fold["prior"], tau)

    if scale is None:
        scale = choose_scale([{"seen_val_ece_curve": f["seen_val_ece_curve"],
                               "held_out_val_ece_curve": ece_curve(f["val"]["records"], logits_of(f),
                                                                   f["temperature"])} for f in folds])
    per_fold = {f["held_out"]: figures(f[split]["records"], logits_of(f), f["temperature"] * scale) for f in folds}
    return {"context": context, "alpha": alpha, "tau": tau, "scale": scale,
            "mean_uar": float(np.mean([x["uar"] for x in per_fold.values()])),
            "worst_collapse": float(np.max([x["collapse"] for x in per_fold.values()])),
            "mean_ece": float(np.mean([x["ece"] for x in per_fold.values()])),
            "per_fold": {k: {m: v[m] for m in ("uar", "collapse", "ece", "n")} for k, v in per_fold.items()}}


def choose_context(val: dict) -> dict:
    """Rules C and L of docs/results/whisper-context.md, on validation figures only."""
    alone = val["alone"]
    allowed = [a for a in ALPHAS[1:] if val[f"trap a{a}"]["mean_uar"] >= alone["mean_uar"] - TRAP_ALLOWANCE]
    best = None
    for a in allowed:  # ascending: a larger alpha must beat the best by more than 0.005
        if best is None or val[f"speaker a{a}"]["mean_uar"] > val[f"speaker a{best}"]["mean_uar"] + 0.005:
            best = a
    offered = best is not None and val[f"speaker a{best}"]["mean_uar"] >= alone["mean_uar"] + CONTEXT_GAIN
    adopted = [t for t in PRIOR_TAUS[1:]
               if val[f"prior t{t}"]["mean_uar"] >= alone["mean_uar"] - 0.005
               and val[f"prior t{t}"]["worst_collapse"] <= alone["worst_collapse"] - 0.03]
    tau = min(adopted, key=lambda t: val[f"prior t{t}"]["worst_collapse"]) if adopted else 0.0
    return {"alphas_within_trap_allowance": allowed, "best_alpha": best, "alpha": best if offered else 0.0,
            "context_offered": offered, "taus_adopted": adopted, "tau": tau}


def combine_context(folder: Path, cache, records: Sequence[Record], json_path: str | None) -> int:
    config = json.loads((folder / "config.json").read_text())
    saved = []
    for path in sorted(folder.glob("fold-*.pt")):
        fold = torch.load(path, weights_only=False)
        fold["_layers"] = config.get("layers", 6)
        saved.append(context_fold(fold, cache, records))
    variants = {"alone": ("none", 0.0, 0.0)}
    variants.update({f"{c} a{a}": (c, a, 0.0) for c in ("speaker", "trap") for a in ALPHAS[1:]})
    variants.update({f"prior t{t}": ("none", 0.0, t) for t in PRIOR_TAUS[1:]})
    val = {name: context_variant(saved, "val", *v) for name, v in variants.items()}
    choice = choose_context(val)  # made on validation; test is read after it, once
    if choice["tau"]:
        for c in ("speaker", "trap"):
            a = choice["alpha"] or choice["best_alpha"] or 0.25
            val[f"{c} a{a} + prior t{choice['tau']}"] = context_variant(saved, "val", c, a, choice["tau"])
    test = {name: context_variant(saved, "test", v["context"], v["alpha"], v["tau"], v["scale"])
            for name, v in val.items()}
    result = {"benchmark": "whisper-context", "split": "v3", "config": config, "folds_dir": folder.name,
              "folds": [f["held_out"] for f in saved],
              "clips": {s: {f["held_out"]: len(f[s]["records"]) for f in saved} for s in ("val", "test")},
              "choice": choice, "validation": val, "test": test}
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(format_context_markdown(result))
    return 0


def format_context_markdown(result: dict) -> str:
    c = result["choice"]
    lines = [f"LOCO over {len(result['folds'])} folds ({', '.join(result['folds'])}); each fold's held-out "
             f"corpus, validation (choice) and test (read once, after).", "",
             f"Rule C: alphas within the trap allowance {c['alphas_within_trap_allowance']}, best {c['best_alpha']}, "
             f"context offered: {c['context_offered']} (alpha {c['alpha']}). Rule L: taus adopted "
             f"{c['taus_adopted']} (tau {c['tau']}).", "",
             "| variant | val UAR | val worst collapse | val ECE | test UAR | test worst collapse | test ECE | scale |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, v in result["validation"].items():
        t = result["test"][name]
        lines.append(f"| {name} | {v['mean_uar']:.3f} | {v['worst_collapse']:.3f} | {v['mean_ece']:.3f} | "
                     f"{t['mean_uar']:.3f} | {t['worst_collapse']:.3f} | {t['mean_ece']:.3f} | x{v['scale']:.3f} |")
    corpora = result["folds"]
    lines += ["", "Per held-out corpus, test UAR (collapse):", "",
              "| variant | " + " | ".join(corpora) + " |", "| --- |" + " --- |" * len(corpora)]
    for name, t in result["test"].items():
        lines.append(f"| {name} | " + " | ".join(f"{t['per_fold'][k]['uar']:.3f} ({t['per_fold'][k]['collapse']:.2f})"
                                                for k in corpora) + " |")
    return "\n".join(lines)


def model_context(model: str, records: Sequence[Record], work: str | None, json_path: str | None,
                  split: str = "val") -> int:
    """A model file's stats head on `split`, each clip alone, with its speaker's context and in the trap.

    Each clip's windows are cut as `predict` cuts them and encoded once: the head's standardised
    statistics `z` of each window give its logits (`classify(z)`) and, summed per speaker, the
    context. A clip's answer is the mean of its windows' calibrated probabilities (every window:
    acted clips are speech throughout).
    """
    from emotionnet.cache import cached_log_mels
    from emotionnet.inference.recognizer import load_model
    from emotionnet.inference.windows import cut_windows

    recognizer = load_model(model, vad="energy", threads=1)
    network, windowing = recognizer.network, recognizer.windowing()
    if not getattr(network, "context_summary_shape", torch.Size([0])).numel():
        raise SystemExit(f"{model}: only a whisper stats head reads a speaker context")
    part = [r for r in records if split_of(r) == split]
    saved_path = Path(work) / "scored.pt" if work else None
    saved = torch.load(saved_path) if saved_path and saved_path.exists() else {}
    todo = [r for r in part if r.path not in saved]
    for start in range(0, len(todo), 100):
        chunk = todo[start:start + 100]
        mels, _ = cached_log_mels([r.path for r in chunk], recognizer.features, progress=False)
        for record, mel in zip(chunk, mels):
            if mel is None:
                continue
            windows, _ = cut_windows(torch.as_tensor(mel).float(), windowing.frames, windowing.hop_frames,
                                     recognizer.features, None, recognizer.spec.tiles_short_windows)
            with torch.inference_mode():
                z = torch.cat([network.context_summary(windows[i:i + 8]) for i in range(0, len(windows), 8)])
                saved[record.path] = (network.head.classify(z), z.sum(dim=0), len(z))
        if saved_path:
            saved_path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(saved, saved_path)
        print(f"{len(saved)} of {len(part)} clips scored", file=sys.stderr, flush=True)
    kept = [r for r in part if r.path in saved]
    head = network.head
    logits = [saved[r.path][0] for r in kept]

    def offsets(group: Callable[[Record], object]) -> list[torch.Tensor]:
        sums, counts = defaultdict(lambda: 0), defaultdict(int)
        for r in kept:
            sums[group(r)] = sums[group(r)] + saved[r.path][1]
            counts[group(r)] += saved[r.path][2]
        weight = head.classify.weight.detach()
        return [weight @ (sums[group(r)] / counts[group(r)]) for r in kept]

    by = {"speaker": offsets(lambda r: r.group), "trap": offsets(lambda r: (r.group, r.emotion))}
    temperature = recognizer.temperature
    result = {"benchmark": "whisper-context-model", "model": model, "split": f"v3 {split}", "clips": len(kept),
              "temperature": temperature, "window": windowing.seconds, "variants": {}}
    for context, alpha in [("none", 0.0), *[(c, a) for c in ("speaker", "trap") for a in ALPHAS[1:]]]:
        shifted_logits = logits if context == "none" else [x - alpha * o for x, o in zip(logits, by[context])]
        f = figures(kept, shifted_logits, temperature)
        pred = clip_probabilities(shifted_logits, temperature).argmax(axis=1)
        per_corpus_collapse = {}
        for corpus in sorted({r.corpus for r in kept}):
            idx = [i for i, r in enumerate(kept) if r.corpus == corpus]
            per_corpus_collapse[corpus] = float(np.bincount(pred[idx]).max() / len(idx))
        name = "alone" if context == "none" else f"{context} a{alpha}"
        result["variants"][name] = {"mean_corpus_uar": float(np.mean(list(f["per_corpus_uar"].values()))),
                                    "uar": f["uar"], "ece": f["ece"],
                                    "worst_corpus_collapse": max(per_corpus_collapse.values()),
                                    "per_corpus_uar": f["per_corpus_uar"], "per_corpus_collapse": per_corpus_collapse}
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(result, indent=1, default=float) + "\n")
    lines = [f"{model}, split {result['split']} ({len(kept)} clips, {windowing.seconds:g} s windows)", "",
             "| variant | mean per-corpus UAR | pooled UAR | ECE | worst corpus collapse |",
             "| --- | --- | --- | --- | --- |"]
    for name, v in result["variants"].items():
        lines.append(f"| {name} | {v['mean_corpus_uar']:.3f} | {v['uar']:.3f} | {v['ece']:.3f} | "
                     f"{v['worst_corpus_collapse']:.3f} |")
    print("\n".join(lines))
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
