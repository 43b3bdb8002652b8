"""Does whisper-base make the fast CRNN better on corpora neither heard? Distillation and fusion, LOCO.

Per held-out corpus (split v3, eight folds), everything trains on the other
seven corpora only:

- the teacher: the whisper-base recipe's head (`train_whisper_model`, from the
  encoder cache; minutes);
- the plain CRNN: the default recipe, on a budget (`--epochs` x `--steps`), the
  same models `benchmarks.generalisation --only loco` trains with those flags;
- the distilled CRNN: the same recipe with the fold's teacher (`Recipe.teacher`).

Each model's calibrated probabilities on the held-out corpus's validation and
test clips are saved per fold. `--combine` then judges on validation only:
distilled against plain, and fusion (each clip's log-probabilities averaged,
the teacher's weighted by w) with w chosen on the held-out validation mean; then
it reads the test splits once.

    python -m benchmarks.distillation --corpora crema-d,nemo,tess,turev --folds-dir runs/distil &
    python -m benchmarks.distillation --corpora ravdess,savee,ased,banglaser --folds-dir runs/distil
    python -m benchmarks.distillation --combine runs/distil --json docs/results/distillation.json \
        > docs/results/distillation.md

Trained models are kept under $EMOTIONNET_CACHE/benchmarks/ (a re-run reuses them); a fold saved in the
folds folder with the same settings (budget, seed, teacher head) is skipped.
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

from benchmarks.common import (
    ALL_CORPORA,
    DEFAULT_DATA,
    clip_figures,
    labels_of,
    model_name,
    resolve_data,
    train_or_reuse,
    user_cache_dir,
    user_cache_root,
)
from emotionnet.corpora import Collection, Record, find_records, split_of
from emotionnet.training.head_training import HeadConfig

FUSION_WEIGHTS = (0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0)  # the teacher's weight; 0 is the CRNN alone
MODELS = ("plain", "distilled", "teacher")


def cache_folder() -> Path:
    return user_cache_root() / "benchmarks"


def fused(crnn: np.ndarray, teacher: np.ndarray, w: float) -> np.ndarray:
    """Clip probabilities from the two models' log-probabilities, averaged with the teacher's weight w."""
    logits = (1 - w) * np.log(np.clip(crnn, 1e-12, 1)) + w * np.log(np.clip(teacher, 1e-12, 1))
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def teacher_file(held_out: str, train: list[Record], head: HeadConfig) -> Path:
    """The fold's whisper-base head, trained once and kept (named by its configuration and clips)."""
    from emotionnet.training.whisper_recipe import WhisperRecipe, train_whisper_model

    recipe = WhisperRecipe(head)
    out = cache_folder() / "distillation" / model_name(f"teacher-{held_out}", head.seed, recipe, train)
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        train_whisper_model(Collection(records=train), out, recipe, progress=False, cache_dir=user_cache_dir())
    return out


def run_fold(records: list[Record], held_out: str, epochs: int, steps: int, seed: int, head: HeadConfig) -> dict:
    from emotionnet.training.distillation import teacher_probabilities
    from emotionnet.training.recipe import Recipe

    train = [r for r in records if r.corpus != held_out and split_of(r) in ("train", "val")]
    subset = Collection(records=train)
    started = time.time()
    teacher = teacher_file(held_out, train, head)
    files = {"teacher": teacher}
    for name, taught in (("plain", None), ("distilled", str(teacher))):
        recipe = Recipe(teacher=taught)
        recipe.fit.seed, recipe.fit.epochs, recipe.fit.steps_per_epoch = seed, epochs, steps
        label = f"loco-{held_out}" + ("-distilled" if taught else "")
        files[name], meta, _ = train_or_reuse(label, seed, subset, recipe, cache_folder() / "generalisation")
    fold = {"held_out": held_out, "files": {k: v.name for k, v in files.items()}}
    for split in ("val", "test"):
        part = [r for r in records if r.corpus == held_out and split_of(r) == split]
        fold[split] = {"labels": labels_of(part).tolist(),
                       **{name: teacher_probabilities(files[name], part, progress=False, cache_dir=user_cache_dir()).tolist()
                          for name in MODELS}}
    fold["seconds"] = round(time.time() - started, 1)
    return fold


def combine(folder: Path) -> dict:
    """Choices on held-out validation clips; the test splits read once, after them."""
    folds = {p.stem.removeprefix("fold-"): json.loads(p.read_text()) for p in sorted(folder.glob("fold-*.json"))}

    def mean_val_uar(probs_of) -> float:
        return float(np.mean([clip_figures(np.array(f["val"]["labels"]), probs_of(f["val"]))["uar"]
                              for f in folds.values()]))

    fusion_val = {base: {str(w): mean_val_uar(lambda s, b=base, w=w: fused(np.array(s[b]), np.array(s["teacher"]), w))
                         for w in FUSION_WEIGHTS} for base in ("plain", "distilled")}
    chosen_w = {base: float(max(curve, key=curve.get)) for base, curve in fusion_val.items()}
    candidates = {name: (lambda s, n=name: np.array(s[n])) for name in MODELS}
    for base, w in chosen_w.items():
        candidates[f"fused-{base}"] = lambda s, b=base, w=w: fused(np.array(s[b]), np.array(s["teacher"]), w)
    result = {"benchmark": "distillation", "split": "v3", "folds": list(folds), "fusion_val_uar": fusion_val,
              "fusion_weight": chosen_w, "models": {}}
    for name, probs_of in candidates.items():
        per = {c: {"val_uar": clip_figures(np.array(f["val"]["labels"]), probs_of(f["val"]))["uar"],
                   "test": clip_figures(np.array(f["test"]["labels"]), probs_of(f["test"]))} for c, f in folds.items()}
        result["models"][name] = {
            "per_corpus": per, "mean_val_uar": float(np.mean([p["val_uar"] for p in per.values()])),
            "mean_test_uar": float(np.mean([p["test"]["uar"] for p in per.values()])),
            "mean_test_ece": float(np.mean([p["test"]["ece"] for p in per.values()])),
            "worst_test_collapse": float(np.max([p["test"]["collapse"] for p in per.values()]))}
    return result


def format_markdown(result: dict) -> str:
    corpora = result["folds"]
    lines = ["# Distillation and fusion of whisper-base into the CRNN: LOCO, split v3, each clip alone", "",
             "Fusion weights (the teacher's), chosen on the held-out validation mean: "
             + ", ".join(f"{b} {w:g}" for b, w in result["fusion_weight"].items()), "",
             "| model | held-out val UAR | test UAR | test ECE | worst collapse | " + " | ".join(corpora) + " |",
             "|---" * (5 + len(corpora)) + "|"]
    for name, m in result["models"].items():
        lines.append(f"| {name} | {m['mean_val_uar']:.3f} | {m['mean_test_uar']:.3f} | {m['mean_test_ece']:.3f} | "
                     f"{m['worst_test_collapse']:.3f} | "
                     + " | ".join(f"{m['per_corpus'][c]['test']['uar']:.3f}" for c in corpora) + " |")
    lines += ["", "Fusion, held-out validation UAR by the teacher's weight:", "",
              "| CRNN | " + " | ".join(result["fusion_val_uar"]["plain"]) + " |",
              "|---" * (1 + len(FUSION_WEIGHTS)) + "|"]
    for base, curve in result["fusion_val_uar"].items():
        lines.append(f"| {base} | " + " | ".join(f"{v:.3f}" for v in curve.values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--corpora", default=",".join(ALL_CORPORA), help="LOCO folds to run")
    parser.add_argument("--epochs", type=int, default=12, help="CRNN epochs (budget)")
    parser.add_argument("--steps", type=int, default=250, help="CRNN steps per epoch (budget)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-config", default="{}", help="the teachers' HeadConfig fields as JSON")
    parser.add_argument("--folds-dir", default="runs/distillation", help="each fold's probabilities are saved here")
    parser.add_argument("--combine", help="report the folds saved in this folder")
    parser.add_argument("--json", help="write the combined result here")
    args = parser.parse_args(argv)
    if args.combine:
        result = combine(Path(args.combine))
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(format_markdown(result))
        return 0
    torch.set_num_threads(int(os.environ.get("EMOTIONNET_THREADS", "1")))
    records = find_records([resolve_data(args.data)]).records
    out = Path(args.folds_dir)
    out.mkdir(parents=True, exist_ok=True)
    head = HeadConfig(**json.loads(args.head_config))
    settings = {"epochs": args.epochs, "steps": args.steps, "seed": args.seed, "head": head.to_dict()}
    for corpus in [c for c in args.corpora.split(",") if c]:
        path = out / f"fold-{corpus}.json"
        if path.is_file() and json.loads(path.read_text()).get("settings") == settings:
            # Two processes can share a folds folder: the later one skips what the other has saved.
            print(f"distillation: fold without {corpus} is in {path} already (same settings), skipped",
                  file=sys.stderr, flush=True)
            continue
        print(f"distillation: fold without {corpus}", file=sys.stderr, flush=True)
        fold = run_fold(records, corpus, args.epochs, args.steps, args.seed, head)
        path.write_text(json.dumps({**fold, "settings": settings}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
