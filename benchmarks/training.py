"""Cost of the default training recipe on this machine: wall time and peak memory, cache cold and warm.

Runs `python -m emotionnet train ../shared/data` (the default recipe: `cnn`,
augmentation, early stopping) as a fresh process twice:

- cold: with an empty, temporary feature cache (EMOTIONNET_CACHE), so every clip
  is decoded and turned into log-mel features first;
- warm: the same cache again, now full: what a re-run, or a second recipe, costs.

For each it reports the wall time, the training loop's own time (from the model
file's metadata; the rest is start-up, features and evaluation), epochs run,
peak memory and the resulting test UAR. Peak memory is given twice: ru_maxrss
(wait4 rusage: the largest single process, the trainer or a feature worker) and
the peak summed PSS of the whole process tree, sampled every 0.5 s.

    python benchmarks/training.py                                   # full run (two trainings)
    python benchmarks/training.py --json docs/results/training.json
    python benchmarks/training.py --limit 2 --epochs 1 --steps-per-epoch 2   # smoke run, seconds

`--limit N` trains on a stratified subset (at most N clips per split, corpus and
emotion, as in benchmarks/peers.py): a temporary folder of symbolic links in the
corpora's layout, read by the trainer exactly as the full folder. The DESIGN.md target (< 30 min on 2 CPU cores with
features cached) is about the warm run of the full recipe.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `emotionnet` importable from the checkout
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.output import write_json  # noqa: E402
from benchmarks.peers import DEFAULT_DATA, limited, resolve_data  # noqa: E402
from benchmarks.speed import machine_info, run_measured  # noqa: E402

TARGET_WARM_MINUTES = 30.0
PHASES = ("cold", "warm")


def link_subset(data_root: Path, limit: int, folder: Path) -> int:
    """Symbolic links to a stratified subset, in the corpora's own layout; returns the clip count.

    The trainer then reads the subset exactly as it reads the full corpus folder
    (same parsers, same v1 split), and the feature cache, keyed by content, is shared.
    """
    from emotionnet.corpora import find_records

    records = limited(find_records([data_root]).records, limit)
    for r in records:
        link = folder / Path(r.path).resolve().relative_to(data_root.resolve())
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(r.path).resolve())
    return len(records)


def cache_size(cache: Path) -> dict:
    files = list((cache / "features").rglob("*.npy")) if (cache / "features").is_dir() else []
    return {"files": len(files), "mb": round(sum(f.stat().st_size for f in files) / 1e6, 1)}


def run_phase(name: str, source: list[str], options: list[str], cache: Path, workdir: Path) -> dict:
    from emotionnet.models.file import read_model_file

    out = workdir / f"{name}.safetensors"
    command = [sys.executable, "-m", "emotionnet", "train", *source, "--out", str(out), "--quiet", *options]
    log = workdir / f"{name}.log"
    before = cache_size(cache)
    measured = run_measured(command, env={**os.environ, "EMOTIONNET_CACHE": str(cache)}, log=log, sample_every=0.5)
    if measured["rc"] != 0:
        raise RuntimeError(f"training ({name}) exited with {measured['rc']}:\n{log.read_text(errors='replace')[-3000:]}")
    _, meta = read_model_file(out)
    training = meta["training"]
    fit_s = float(training["wall_seconds"])
    return {
        "phase": name,
        "cache_before": before,
        "cache_after": cache_size(cache),
        "wall_s": round(measured["wall_s"], 1),
        "fit_s": fit_s,
        "other_s": round(measured["wall_s"] - fit_s, 1),
        "epochs": training["epochs"],
        "best_epoch": training["best_epoch"],
        "seconds_per_epoch": round(fit_s / max(1, training["epochs"]), 1),
        "clips": training["clips"],
        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
        "peak_tree_mb": round(measured["peak_tree_mb"], 1),
        "cpu_s": round(measured["user_s"] + measured["sys_s"], 1),
        "test_uar": meta["metrics"].get("test", {}).get("overall", {}).get("uar"),
        "val_uar": meta["metrics"].get("val", {}).get("overall", {}).get("uar"),
        "parameters": meta["model"]["parameters"],
    }


def run_training(
    data: str = DEFAULT_DATA,
    limit: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    arch: str = "cnn",
    phases: Sequence[str] = PHASES,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    data_root = resolve_data(data)
    options = ["--arch", arch]
    if epochs is not None:
        options += ["--epochs", str(epochs)]
    if steps_per_epoch is not None:
        options += ["--steps-per-epoch", str(steps_per_epoch)]
    shown_command = f"python -m emotionnet train {data if not limit else 'SUBSET'} --out OUT --quiet " \
                    + " ".join(options)
    result = {
        "benchmark": "training",
        "machine": machine_info(),
        "data": {"root": data, "limit": limit},
        "command": shown_command,
        "recipe": "default (emotionnet.training.recipe.Recipe)" + (f", arch {arch}" if arch != "cnn" else ""),
        "phases": [],
        "target_warm_minutes": TARGET_WARM_MINUTES,
    }
    with tempfile.TemporaryDirectory(prefix="emotionnet-training-") as tmp:
        workdir = Path(tmp)
        cache_dir = Path(cache) if cache else workdir / "cache"
        cache_dir.mkdir(parents=True, exist_ok=True)
        if "cold" in phases and cache_size(cache_dir)["files"]:
            raise ValueError(f"{cache_dir} already holds features: a cold run needs an empty cache")
        if limit:
            subset = workdir / "subset"
            result["data"]["clips"] = link_subset(data_root, limit, subset)
            source = [str(subset)]
        else:
            source = [str(data_root)]
        for phase in PHASES:
            if phase not in phases:
                continue
            if progress:
                print(f"training: {phase} feature cache ...", file=sys.stderr, flush=True)
            row = run_phase(phase, source, options, cache_dir, workdir)
            result["phases"].append(row)
            if progress:
                print(f"training: {phase}: {row['wall_s']:.0f} s wall, {row['epochs']} epochs", file=sys.stderr)
    warm = [p for p in result["phases"] if p["phase"] == "warm"]
    if warm and not limit and epochs is None and steps_per_epoch is None:
        minutes = warm[0]["wall_s"] / 60
        result["verdict"] = (f"default recipe, features cached: {minutes:.1f} min "
                             f"({'meets' if minutes < TARGET_WARM_MINUTES else 'MISSES'} the target "
                             f"< {TARGET_WARM_MINUTES:g} min on 2 CPU cores)")
    else:
        result["verdict"] = "not a full run (--limit, --epochs or --steps-per-epoch): no verdict against the target"
    return result


def format_markdown(result: dict) -> str:
    m = result["machine"]
    data = result["data"]
    lines = [
        "## Training cost",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}; date {m['date']}; torch {m['versions']['torch']}",
        f"- command: `{result['command']}`; recipe: {result['recipe']}",
        f"- data: {data['root']}" + (f", stratified subset of {data['limit']} per split/corpus/emotion "
                                     f"({data.get('clips')} clips)" if data["limit"] else ""),
        "",
        "| feature cache | wall s | training loop s | other s | epochs (best) | s/epoch | train/val/test clips | "
        "cached features | peak RSS MB | peak tree PSS MB | test UAR |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for p in result["phases"]:
        clips = "/".join(str(p["clips"].get(k, 0)) for k in ("train", "val", "test"))
        cached = f"{p['cache_before']['files']} -> {p['cache_after']['files']} ({p['cache_after']['mb']:.0f} MB)"
        uar = f"{p['test_uar']:.3f}" if p["test_uar"] is not None else "-"
        lines.append(f"| {p['phase']} | {p['wall_s']:.0f} | {p['fit_s']:.0f} | {p['other_s']:.0f} | "
                     f"{p['epochs']} ({p['best_epoch']}) | {p['seconds_per_epoch']:.1f} | {clips} | {cached} | "
                     f"{p['peak_rss_mb']:.0f} | {p['peak_tree_mb']:.0f} | {uar} |")
    lines += ["", "\"other\" is start-up, feature extraction (cold) or cache reads (warm), calibration and evaluation.",
              "Peak RSS: the largest single process (ru_maxrss); tree PSS: all processes together, sampled.",
              "", f"- {result['verdict']}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Wall time and peak memory of the default training recipe, feature cache cold and warm.",
        epilog="example: python benchmarks/training.py --json docs/results/training.json > docs/results/training.md",
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help="corpus root (relative: from the repository root)")
    parser.add_argument("--limit", type=int, help="at most N clips per split, corpus and emotion (smoke runs)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the recipe's)")
    parser.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: one pass)")
    parser.add_argument("--arch", choices=("cnn", "crnn"), default="cnn", help="architecture (default cnn, the default recipe)")
    parser.add_argument("--phases", default="cold,warm", help="comma-separated: cold, warm (default both)")
    parser.add_argument("--cache", metavar="DIR", help="feature cache to use (default: a fresh temporary folder)")
    parser.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    args = parser.parse_args(argv)

    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if not phases or set(phases) - set(PHASES):
        print(f"training: error: --phases takes {', '.join(PHASES)}", file=sys.stderr)
        return 1
    if not resolve_data(args.data).is_dir():
        print(f"training: error: {args.data}: no such folder (pass --data)", file=sys.stderr)
        return 1
    try:
        result = run_training(args.data, args.limit, args.epochs, args.steps_per_epoch, args.arch, phases, args.cache)
    except (ValueError, RuntimeError) as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return 1
    print(format_markdown(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
