"""Accuracy on split v1: EmotionNet against the classic peers and the seed design, in one run.

What it trains and scores (test split of ../shared/data, DESIGN.md protocol v1):

- peers: openSMILE eGeMAPSv02 + RBF SVM and ComParE_2016 + linear SVM, and the
  latter with features standardised per speaker (benchmarks/peer_methods.py, `run_peers`);
- seed_cnn: the seed design, a plain 4-block CNN 32-64-128-128 (conv + ReLU +
  max-pool, no batch norm), a linear head, no augmentation, batch 32, 18 epochs
  (DESIGN.md reference: 0.634 test UAR). The closest configuration of our `cnn`:
  it keeps the package's log-mel front end, mean+max pooling over time before
  the head and dropout 0.3 (see SEED_CNN below);
- cnn and crnn: EmotionNet's default recipe for each architecture;
- shipped (with --shipped): the model file as it is, evaluated, not trained; a
  speaker-normalised model twice, reading each clip against its speaker's test
  clips (as `emotionnet evaluate` does) and every clip alone;
- loco: leave-one-corpus-out, train on the other corpora's train (and val, for
  model selection) splits, test on the held-out corpus's test split, for the
  peers and for `crnn`, the shipped architecture (first seed only).

Each neural method is trained once per seed (default 0, 1, 2) and reported as
mean ± standard deviation (sample std, ddof=1) of test UAR, accuracy and macro-F1,
overall and per corpus. Trained model files are kept under
`$EMOTIONNET_CACHE/benchmarks/accuracy/` (or --cache DIR), named by method, seed
and a hash of the recipe and the clips, so a re-run skips finished trainings and
resumes an interrupted one from its checkpoint (--retrain ignores them).

    python -m benchmarks.accuracy                     # full run: ~3.7 h on 2 cores from nothing (13 trainings),
                                                      # minutes once the trained models are cached
    python -m benchmarks.accuracy --shipped --json docs/results/accuracy.json > docs/results/accuracy.md
    python -m benchmarks.accuracy --only cnn,crnn --seeds 3
    python -m benchmarks.accuracy --only loco --seeds 1              # EmotionNet's LOCO table only
    python -m benchmarks.accuracy --limit 1 --epochs 1 --steps-per-epoch 1 --seeds 1   # smoke run

It ends by saying plainly whether EmotionNet beats each peer by >= 5 UAR points
on every corpus and overall, and whether it beats the seed CNN.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks import common
from benchmarks import peer_methods as peers
from benchmarks.common import CORPORA, V1_SPLIT, comma_list, shown, train_or_reuse
from benchmarks.common import CORPUS_TITLES as TITLES
from emotionnet.corpora import Collection, Record, find_records, select, split_of
from emotionnet.digest import file_digest

NEURAL = ("seed_cnn", "cnn", "crnn")
ONLY_CHOICES = ("peers", *NEURAL, "loco")
MARGIN = 0.05  # DESIGN.md: beat each peer by >= 5 UAR points on every corpus (and overall)

SEED_CNN = {"arch": "cnn", "hparams": {"channels": [32, 64, 128, 128], "batch_norm": False}, "augment": False,
            "epochs": 18, "normalisation": "utterance"}  # the seed power-normalised each spectrogram on its own
LOCO_METHOD = "crnn"
REFERENCE_UAR = {  # DESIGN.md, "Reference figures on split v1" (measured 2026-11-27 on the 2-core machine)
    **peers.REFERENCE_UAR,
    "seed_cnn": {"overall": 0.634, "crema-d": 0.565, "ravdess": 0.552, "tess": 0.994, "savee": 0.239},
}
TITLE = {
    "egemaps_rbf_svm": "openSMILE eGeMAPSv02 + RBF SVM",
    "compare_linear_svm": "openSMILE ComParE_2016 + linear SVM",
    "compare_linear_svm_speaker": "openSMILE ComParE_2016 standardised per speaker + linear SVM",
    "seed_cnn": "seed CNN (plain, 32-64-128-128, no aug.)",
    "cnn": "EmotionNet cnn (default recipe)",
    "crnn": "EmotionNet crnn (default recipe)",
    "shipped": "EmotionNet shipped model file",
    "shipped_clip": "EmotionNet shipped model file, each clip alone",
}


def default_cache() -> Path:
    return common.user_cache_root() / "benchmarks" / "accuracy"


# --------------------------------------------------------------------------- training

def recipe_for(method: str, seed: int, epochs: int | None = None, steps_per_epoch: int | None = None):
    from emotionnet.features import FeatureConfig
    from emotionnet.training.recipe import Recipe

    if method == "seed_cnn":
        recipe = Recipe(arch=SEED_CNN["arch"], hparams=copy.deepcopy(SEED_CNN["hparams"]), augment=SEED_CNN["augment"],
                        features=FeatureConfig(normalisation=SEED_CNN["normalisation"]))
        recipe.fit.epochs = SEED_CNN["epochs"]
        recipe.fit.patience = SEED_CNN["epochs"]  # the reference ran all its epochs
    elif method in ("cnn", "crnn"):
        recipe = Recipe(arch=method)
    else:
        raise ValueError(f"unknown method {method!r}")
    recipe.fit.seed = seed
    if epochs is not None:
        recipe.fit.epochs = epochs
        if method == "seed_cnn":
            recipe.fit.patience = epochs
    if steps_per_epoch is not None:
        recipe.fit.steps_per_epoch = steps_per_epoch
    return recipe


def _figures(report: dict) -> dict:
    """overall and per-corpus accuracy/UAR/macro-F1/n of a report."""
    return {"overall": report["overall"], "per_corpus": report["per_corpus"]}


def aggregate(runs: list[dict]) -> dict:
    """Mean and spread (sample std, 0 for one run) of each figure over the runs' test results."""
    def stats(values: list[float]) -> dict:
        return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                "values": [float(v) for v in values], "n": len(values)}

    metrics = ("uar", "accuracy", "macro_f1")
    tests = [r["test"] for r in runs]
    result = {"overall": {m: stats([t["overall"][m] for t in tests]) for m in metrics}, "per_corpus": {}}
    for corpus in sorted({c for t in tests for c in t["per_corpus"]}):
        values = [t["per_corpus"][corpus] for t in tests if corpus in t["per_corpus"]]
        result["per_corpus"][corpus] = {m: stats([v[m] for v in values]) for m in metrics}
    return result


def run_neural(method: str, seeds: Sequence[int], collection: Collection, cache: Path, epochs, steps_per_epoch,
               retrain: bool, progress: bool) -> dict:
    runs = []
    for seed in seeds:
        recipe = recipe_for(method, seed, epochs, steps_per_epoch)
        began = time.perf_counter()
        path, meta, reused = train_or_reuse(method, seed, collection, recipe, cache, retrain, progress)
        training = meta["training"]
        runs.append({
            "seed": seed, "model_file": path.name, "sha256": file_digest(path, "sha256"), "reused": reused,
            "parameters": meta["model"]["parameters"], "epochs": training["epochs"],
            "best_epoch": training["best_epoch"], "train_seconds": training["wall_seconds"],
            "wall_seconds_this_run": round(time.perf_counter() - began, 1),
            "test": _figures(meta["metrics"]["test"]), "val": _figures(meta["metrics"]["val"]),
            **({"test_clip": _figures(meta["metrics"]["test_clip"])} if "test_clip" in meta["metrics"] else {}),
        })
    recipe = recipe_for(method, seeds[0], epochs, steps_per_epoch).to_dict()
    recipe["fit"].pop("seed")
    return {"title": TITLE[method], "recipe": recipe, "seeds": list(seeds), "runs": runs, "test": aggregate(runs)}


def run_shipped(model: Path, records: list[Record], collection: Collection, progress: bool) -> dict[str, dict]:
    """The model file evaluated as `emotionnet evaluate` does, and with every clip alone if that differs."""
    from emotionnet.evaluation.evaluate import evaluate_records
    from emotionnet.inference.recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer.from_file(model)
    contexts = {"shipped": "speaker"}
    if recognizer.features.normalisation == "speaker":
        contexts["shipped_clip"] = "clip"
    entries = {}
    for name, context in contexts.items():
        report = evaluate_records(recognizer, select(records, "test"), "test", dict(collection.skipped),
                                  collection.excluded, progress=progress, context=context,
                                  cache_dir=common.user_cache_dir())
        run = {"seed": None, "model_file": shown(model), "sha256": file_digest(model, "sha256"),
               "parameters": recognizer.metadata["model"].get("parameters"), "test": _figures(report)}
        entries[name] = {"title": TITLE[name], "runs": [run], "test": aggregate([run]), "report": report}
    return entries


def run_loco(records: list[Record], collection: Collection, corpora: Sequence[str], seed: int, cache: Path,
             epochs, steps_per_epoch, retrain: bool, progress: bool) -> dict:
    """Train LOCO_METHOD on the other corpora (train + val), test on the held-out corpus's test split."""
    from emotionnet.evaluation.evaluate import evaluate_records
    from emotionnet.evaluation.metrics import summary
    from emotionnet.inference.recognizer import EmotionRecognizer

    table = {}
    for held_out in corpora:
        train = [r for r in records if r.corpus != held_out and split_of(r) in ("train", "val")]
        test = [r for r in records if r.corpus == held_out and split_of(r) == "test"]
        if not train or not test:
            continue
        subset = Collection(records=train, skipped=collection.skipped, excluded=collection.excluded)
        recipe = recipe_for(LOCO_METHOD, seed, epochs, steps_per_epoch)
        path, meta, reused = train_or_reuse(f"loco-{held_out}-{LOCO_METHOD}", seed, subset, recipe, cache, retrain,
                                            progress)
        report = evaluate_records(EmotionRecognizer.from_file(path), test, "test", progress=progress,
                                  cache_dir=common.user_cache_dir())
        figures = report["per_corpus"].get(held_out) or summary([], [])
        table[held_out] = {**figures, "train_clips": meta["training"]["clips"]["train"], "model_file": path.name,
                           "reused": reused}
    return table


# --------------------------------------------------------------------------- the run

def run_accuracy(
    data: str = common.DEFAULT_DATA,
    only: Sequence[str] = ONLY_CHOICES,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    limit: int | None = None,
    shipped: Path | None = None,
    loco_corpora: Sequence[str] = CORPORA,
    cache: Path | None = None,
    retrain: bool = False,
    progress: bool = True,
) -> dict:
    began = time.perf_counter()
    cache = Path(cache) if cache else default_cache()
    data_root = common.resolve_data(data)
    collection = find_records([data_root], corpora=set(CORPORA))  # the v1 corpora: this is the v1 benchmark
    records = common.limited(collection.records, limit)
    subset = Collection(records=records, skipped=collection.skipped, excluded=collection.excluded,
                        duplicates=collection.duplicates)
    result: dict = {
        "benchmark": "accuracy",
        "split": V1_SPLIT,
        "machine": common.machine_info(),
        "data": {"root": data, "limit": limit, "clips": len(records),
                 "per_split": {s: common.count_per_corpus(select(records, s)) for s in ("train", "val", "test")},
                 "excluded": sorted(Path(p).name for p in collection.excluded),
                 "skipped": dict(collection.skipped)},
        "settings": {"only": list(only), "seeds": list(seeds), "epochs": epochs, "steps_per_epoch": steps_per_epoch,
                     "loco_corpora": list(loco_corpora), "std": "sample standard deviation over seeds (ddof=1)"},
        "reference_uar": REFERENCE_UAR,
        "methods": {},
        "loco": {},
    }
    if "peers" in only:  # with loco, the peers' leave-one-corpus-out table too
        if progress:
            print("accuracy: peers (openSMILE + SVM)", file=sys.stderr, flush=True)
        peer_result = peers.run_peers(data, limit=limit, loco="loco" in only, loco_corpora=loco_corpora,
                                      progress=progress)
        result["peers"] = {k: v for k, v in peer_result.items() if k not in ("methods", "loco")}
        for method, entry in peer_result["methods"].items():
            run = {"seed": None, "test": _figures(entry["test"])}
            result["methods"][method] = {"title": TITLE.get(method, entry["title"]), "description": entry["title"],
                                         "runs": [run], "test": aggregate([run])}
        result["loco"].update(peer_result["loco"])
    for method in NEURAL:
        if method in only:
            entry = run_neural(method, seeds, subset, cache, epochs, steps_per_epoch, retrain, progress)
            result["methods"][method] = entry
            if all("test_clip" in r for r in entry["runs"]):  # speaker-normalised: also every clip alone
                result["methods"][f"{method}_clip"] = {
                    "title": f"{entry['title']}, each clip alone", "runs": entry["runs"],
                    "test": aggregate([{"test": r["test_clip"]} for r in entry["runs"]])}
    if shipped is not None:
        if progress:
            print(f"accuracy: evaluating {shown(shipped)}", file=sys.stderr, flush=True)
        result["methods"].update(run_shipped(shipped, records, subset, progress))
    if "loco" in only:
        result["loco"][LOCO_METHOD] = run_loco(records, subset, loco_corpora, seeds[0], cache, epochs,
                                               steps_per_epoch, retrain, progress)
    result["verdicts"] = verdicts(result)
    result["wall_seconds"] = round(time.perf_counter() - began, 1)
    return result


def _uar(entry: dict, column: str) -> float | None:
    test = entry["test"]
    figures = test["overall"] if column == "overall" else test["per_corpus"].get(column)
    return figures["uar"]["mean"] if figures else None


def verdicts(result: dict) -> list[str]:
    """Plain sentences: does EmotionNet beat each peer by >= 5 points everywhere, and the seed CNN?"""
    methods = result["methods"]
    ours = [m for m in ("cnn", "cnn_clip", "crnn", "crnn_clip", "shipped", "shipped_clip") if m in methods]
    peer_names = [m for m in peers.METHODS if m in methods]
    columns = ["overall", *CORPORA]
    lines = []
    for mine in ours:
        for other in [*peer_names, *(["seed_cnn"] if "seed_cnn" in methods else [])]:
            diffs = {c: _uar(methods[mine], c) - _uar(methods[other], c) for c in columns
                     if _uar(methods[mine], c) is not None and _uar(methods[other], c) is not None}
            if not diffs:
                continue
            detail = ", ".join(f"{'overall' if c == 'overall' else TITLES[c]} {100 * d:+.1f}" for c, d in diffs.items())
            if other == "seed_cnn":
                overall = diffs.get("overall", float("nan"))
                everywhere = all(d > 0 for d in diffs.values())
                lines.append(f"{mine} vs the seed CNN: {'BEATS' if overall > 0 else 'does NOT beat'} it overall "
                             f"({100 * overall:+.1f} UAR points); higher on every corpus: "
                             f"{'yes' if everywhere else 'no'} ({detail})")
            else:
                short = [('overall' if c == 'overall' else TITLES[c]) for c, d in diffs.items() if d < MARGIN - 1e-9]
                missing = [TITLES[c] for c in CORPORA if c not in diffs]
                verdict = "YES" if not short and not missing else "NO"
                reason = f"; short of +5 on: {', '.join(short)}" if short else ""
                reason += f"; not measured on: {', '.join(missing)}" if missing else ""
                lines.append(f"{mine} beats {other} by >= 5 UAR points on every corpus and overall: {verdict} "
                             f"({detail}{reason})")
    return lines


# --------------------------------------------------------------------------- output

def _cell(stats: dict | None, with_std: bool) -> str:
    if not stats:
        return "-"
    return f"{stats['mean']:.3f} ± {stats['std']:.3f}" if with_std else f"{stats['mean']:.3f}"


def format_markdown(result: dict) -> str:
    data, m = result["data"], result["machine"]
    per_split = "; ".join(f"{s} {sum(c.values())} ({', '.join(f'{TITLES.get(k, k)} {v}' for k, v in c.items())})"
                          for s, c in data["per_split"].items())
    s = result["settings"]
    lines = [
        f"## Accuracy on split {result['split']} (test)",
        "",
        f"- data: {data['root']}" + (f", smoke subset: at most {data['limit']} clips per split/corpus/emotion"
                                     if data["limit"] else "") + f"; {per_split}",
        f"- left out: {len(data['excluded'])} CREMA-D clips with conflicting labels; out-of-set labels "
        f"{', '.join(f'{k} {v}' for k, v in sorted(data['skipped'].items())) or 'none'}; TESS is split by word",
        f"- seeds {', '.join(map(str, s['seeds']))} (mean ± sample std); epochs {s['epochs'] or 'per recipe'}"
        + (f", {s['steps_per_epoch']} steps/epoch" if s["steps_per_epoch"] else "")
        + f"; {m['cpu']}, {m['cores']} cores; {m['date']}; torch {m['versions']['torch']}",
        "",
        "Test UAR (mean ± std over seeds; peers are deterministic, one run), accuracy and macro-F1 overall:",
        "",
        "| method | overall | CREMA-D | RAVDESS | TESS | SAVEE | accuracy | macro-F1 | runs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | ---: |",
    ]
    for entry in result["methods"].values():
        test, runs = entry["test"], len(entry["runs"])
        std = runs > 1
        cells = [_cell(test["overall"]["uar"], std)]
        cells += [_cell(test["per_corpus"].get(c, {}).get("uar"), std) for c in CORPORA]
        cells += [_cell(test["overall"]["accuracy"], std), _cell(test["overall"]["macro_f1"], std)]
        lines.append(f"| {entry['title']} | " + " | ".join(cells) + f" | {runs} |")
    lines += ["", "Test accuracy / macro-F1 per corpus (mean over seeds):", "",
              "| method | CREMA-D | RAVDESS | TESS | SAVEE |", "| --- | --- | --- | --- | --- |"]
    for entry in result["methods"].values():
        per_corpus = entry["test"]["per_corpus"]
        cells = [f"{per_corpus[c]['accuracy']['mean']:.3f} / {per_corpus[c]['macro_f1']['mean']:.3f}"
                 if c in per_corpus else "-" for c in CORPORA]
        lines.append(f"| {entry['title']} | " + " | ".join(cells) + " |")
    ref = result["reference_uar"]
    lines += ["", "Reference test UAR (DESIGN.md, measured 2026-11-27 on the 2-core machine):", "",
              "| method | overall | CREMA-D | RAVDESS | TESS | SAVEE |", "| --- | --- | --- | --- | --- | --- |"]
    for name, figures in ref.items():
        lines.append(f"| {TITLE.get(name, name)} | {figures['overall']:.3f} | "
                     + " | ".join(f"{figures[c]:.3f}" for c in CORPORA) + " |")
    neural = {k: v for k, v in result["methods"].items() if k in NEURAL}  # not the *_clip rows: same runs
    if neural:
        lines += ["", "Trained models (cached; `reused` = not retrained in this run):", "",
                  "| method | seed | parameters | epochs (best) | training s | reused | file |",
                  "| --- | ---: | ---: | --- | ---: | --- | --- |"]
        for name, entry in neural.items():
            for r in entry["runs"]:
                lines.append(f"| {name} | {r['seed']} | {r['parameters']:,} | {r['epochs']} ({r['best_epoch']}) | "
                             f"{r['train_seconds']:.0f} | {'yes' if r['reused'] else 'no'} | {r['model_file']} |")
    if "shipped" in result["methods"]:
        run = result["methods"]["shipped"]["runs"][0]
        lines += ["", f"Shipped model `{run['model_file']}`, sha256 `{run['sha256']}`."]
    if result["loco"]:
        lines += ["", "Leave-one-corpus-out test UAR (train: the other corpora; test: the held-out corpus's test "
                      "split; neural: first seed):", "",
                  "| method | CREMA-D | RAVDESS | TESS | SAVEE |", "| --- | --- | --- | --- | --- |"]
        for name, table in result["loco"].items():
            cells = [f"{table[c]['uar']:.3f}" if c in table else "-" for c in CORPORA]
            lines.append(f"| {TITLE.get(name, name)} | " + " | ".join(cells) + " |")
    lines += ["", "### Verdicts", ""] + [f"- {v}" for v in result["verdicts"] or ["(nothing to compare)"]]
    runs = [r for e in neural.values() for r in e["runs"]] + list(result["loco"].get(LOCO_METHOD, {}).values())
    lines += ["", f"This run took {result['wall_seconds'] / 60:.1f} min and trained "
                  f"{sum(not r['reused'] for r in runs)} of its {len(runs)} neural models (the rest were cached)."]
    return "\n".join(lines)


def _seeds(text: str) -> list[int]:
    """`3` means seeds 0, 1, 2; `0,5,7` names them."""
    if "," in text:
        return comma_list(text, int)
    return list(range(int(text)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Test UAR on split v1: openSMILE peers, the seed CNN and EmotionNet (cnn, crnn), with LOCO.",
        epilog="example: python -m benchmarks.accuracy --shipped --json docs/results/accuracy.json",
    )
    parser.add_argument("--data", default=common.DEFAULT_DATA, help="corpus root (relative: from the repository root)")
    parser.add_argument("--only", default=",".join(ONLY_CHOICES),
                        help=f"comma-separated parts to run (default all: {','.join(ONLY_CHOICES)}; "
                             "peers with loco adds the peers' LOCO table)")
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="number of seeds (3: 0,1,2) or a list 0,1,2")
    parser.add_argument("--epochs", type=int, help="maximum epochs of every neural model (default: each recipe's)")
    parser.add_argument("--steps-per-epoch", type=int, help="batches per epoch (smoke runs)")
    parser.add_argument("--limit", type=int, help="at most N clips per split, corpus and emotion (smoke runs)")
    parser.add_argument("--shipped", action="store_true", help="also evaluate the shipped model file as it is")
    parser.add_argument("--model", metavar="FILE", help="the model file --shipped evaluates (default: the shipped one)")
    parser.add_argument("--loco-corpora", default=",".join(CORPORA), help="held-out corpora of the LOCO table")
    parser.add_argument("--cache", metavar="DIR", help="where trained model files are kept "
                        "(default $EMOTIONNET_CACHE/benchmarks/accuracy)")
    parser.add_argument("--retrain", action="store_true", help="train again even where a cached model file exists")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    args = parser.parse_args(argv)

    only = comma_list(args.only)
    unknown = set(only) - set(ONLY_CHOICES)
    loco_corpora = comma_list(args.loco_corpora)
    if unknown or set(loco_corpora) - set(CORPORA) or not args.seeds:
        print(f"accuracy: error: --only takes {','.join(ONLY_CHOICES)}; --loco-corpora takes {','.join(CORPORA)}; "
              "--seeds at least 1", file=sys.stderr)
        return 1
    if not common.resolve_data(args.data).is_dir():
        print(f"accuracy: error: {args.data}: no such folder (pass --data)", file=sys.stderr)
        return 1
    shipped = None
    if args.shipped or args.model:
        from emotionnet.inference.recognizer import default_model_path

        shipped = Path(args.model) if args.model else default_model_path()
        if not shipped.is_file():
            print(f"accuracy: error: model file {shipped} not found (pass --model FILE)", file=sys.stderr)
            return 1
    result = run_accuracy(args.data, only, args.seeds, args.epochs, args.steps_per_epoch, args.limit, shipped,
                          loco_corpora, Path(args.cache) if args.cache else None, args.retrain, not args.quiet)
    return common.finish(result, format_markdown(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
