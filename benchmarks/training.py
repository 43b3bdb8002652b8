"""Cost of the default training recipe on this machine: wall time and peak memory, cache cold and warm.

Three fresh processes, each measured for wall time and peak memory:

- features, cold: every clip decoded and turned into log-mel features, into an
  empty temporary cache (EMOTIONNET_CACHE), as the first `emotionnet train` does;
- features, warm: the same again, now only reading the cache, as every later
  training (a re-run, another seed or recipe) does;
- training: `python -m emotionnet train ../shared/data` (the default recipe)
  on the warm cache, with the training loop's own time, epochs, and the
  resulting validation and test UAR from the model file's metadata.

A cold training costs the warm one plus the difference between the two feature
phases, so the recipe is trained once, not twice (about 20 minutes, not 40).
Peak memory is given twice: ru_maxrss (wait4 rusage: the largest single
process, the trainer or a feature worker) and the peak summed PSS of the whole
process tree, sampled every 0.5 s.

    python -m benchmarks.training                                   # full run (one training)
    python -m benchmarks.training --json docs/results/training.json
    python -m benchmarks.training --limit 2 --epochs 1 --steps-per-epoch 2   # smoke run, seconds

`--limit N` uses a stratified subset (at most N clips per split, corpus and
emotion, as in benchmarks/peers.py): a temporary folder of symbolic links in the
corpora's layout, read by the trainer exactly as the full folder. The DESIGN.md
target (< 30 min on 2 CPU cores with features cached) is about the training phase
of a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import DEFAULT_DATA, REPO_ROOT, finish, limited, machine_info, resolve_data, run_measured

TARGET_WARM_MINUTES = 30.0
FEATURE_PHASES = ("cold", "warm")

# Run in a fresh process: fills (cold) or reads (warm) the feature cache for every
# clip under the folder, with the default recipe's feature settings, as training does.
_FILL_CACHE = """
import json, sys
from emotionnet.corpora import find_records
from emotionnet.cache import cached_log_mels
from emotionnet.environment import from_environment
from emotionnet.training.recipe import Recipe
records = find_records([sys.argv[1]]).records
cache_dir = from_environment(model=False).cache_dir  # $EMOTIONNET_CACHE, as `emotionnet train` reads it
_, errors = cached_log_mels([r.path for r in records], Recipe().features, progress=False, cache_dir=cache_dir)
print(json.dumps({"clips": len(records), "errors": len(errors)}))
"""


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


def _env(cache: Path) -> dict:
    return {**os.environ, "EMOTIONNET_CACHE": str(cache),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def _memory(measured: dict) -> dict:
    return {"wall_s": round(measured["wall_s"], 1), "peak_rss_mb": round(measured["peak_rss_mb"], 1),
            "peak_tree_mb": round(measured["peak_tree_mb"], 1),
            "cpu_s": round(measured["user_s"] + measured["sys_s"], 1)}


def _checked(measured: dict, what: str, log: Path) -> dict:
    if measured["rc"] != 0:
        raise RuntimeError(f"{what} exited with {measured['rc']}:\n{log.read_text(errors='replace')[-3000:]}")
    return measured


def run_features(name: str, source: str, cache: Path, workdir: Path) -> dict:
    log = workdir / f"features-{name}.log"
    before = cache_size(cache)
    measured = _checked(run_measured([sys.executable, "-c", _FILL_CACHE, source], env=_env(cache), log=log,
                                     sample_every=0.5), f"feature extraction ({name})", log)
    counts = json.loads([line for line in log.read_text().splitlines() if line.startswith("{")][-1])
    return {"phase": f"features, {name}", **counts, "cache_before": before, "cache_after": cache_size(cache),
            **_memory(measured)}


def run_train(source: str, options: list[str], cache: Path, workdir: Path) -> dict:
    from emotionnet.models.file import read_model_file

    out = workdir / "model.safetensors"
    log = workdir / "train.log"
    command = [sys.executable, "-m", "emotionnet", "train", source, "--out", str(out), "--quiet", *options]
    measured = _checked(run_measured(command, env=_env(cache), log=log, sample_every=0.5), "training", log)
    _, meta = read_model_file(out)
    training = meta["training"]
    fit_s = float(training["wall_seconds"])
    metrics = meta["metrics"]
    return {
        "phase": "training, warm cache",
        **_memory(measured),
        "fit_s": fit_s,
        "other_s": round(measured["wall_s"] - fit_s, 1),
        "epochs": training["epochs"],
        "best_epoch": training["best_epoch"],
        "seconds_per_epoch": round(fit_s / max(1, training["epochs"]), 1),
        "clips": training["clips"],
        "arch": meta["model"]["arch"],
        "parameters": meta["model"]["parameters"],
        "val_uar": metrics.get("val", {}).get("overall", {}).get("uar"),
        "test_uar": metrics.get("test", {}).get("overall", {}).get("uar"),
        "test_uar_clip": metrics.get("test_clip", {}).get("overall", {}).get("uar"),
    }


def run_training(
    data: str = DEFAULT_DATA,
    limit: int | None = None,
    epochs: int | None = None,
    steps_per_epoch: int | None = None,
    arch: str | None = None,
    progress: bool = True,
) -> dict:
    data_root = resolve_data(data)
    options = ["--arch", arch] if arch else []
    if epochs is not None:
        options += ["--epochs", str(epochs)]
    if steps_per_epoch is not None:
        options += ["--steps-per-epoch", str(steps_per_epoch)]
    shown_command = " ".join(["python -m emotionnet train", data if not limit else "SUBSET", "--out OUT --quiet",
                              *options])
    result = {
        "benchmark": "training",
        "machine": machine_info(),
        "data": {"root": data, "limit": limit},
        "command": shown_command,
        "recipe": "default (emotionnet.training.recipe.Recipe)" + (f", arch {arch}" if arch else ""),
        "features": [],
        "target_warm_minutes": TARGET_WARM_MINUTES,
    }
    with tempfile.TemporaryDirectory(prefix="emotionnet-training-") as tmp:
        workdir = Path(tmp)
        cache = workdir / "cache"
        cache.mkdir()
        if limit:
            source = workdir / "subset"
            result["data"]["clips"] = link_subset(data_root, limit, source)
        else:
            source = data_root
        for name in FEATURE_PHASES:
            if progress:
                print(f"training: features, {name} cache ...", file=sys.stderr, flush=True)
            result["features"].append(run_features(name, str(source), cache, workdir))
        if progress:
            print("training: the recipe, warm cache ...", file=sys.stderr, flush=True)
        result["training"] = row = run_train(str(source), options, cache, workdir)
    cold, warm = result["features"]
    result["cold_training_s"] = round(row["wall_s"] + cold["wall_s"] - warm["wall_s"], 1)
    if not limit and epochs is None and steps_per_epoch is None:
        minutes = row["wall_s"] / 60
        result["verdict"] = (f"default recipe, features cached: {minutes:.1f} min "
                             f"({'meets' if minutes < TARGET_WARM_MINUTES else 'MISSES'} the target "
                             f"< {TARGET_WARM_MINUTES:g} min on 2 CPU cores)")
    else:
        result["verdict"] = "not a full run (--limit, --epochs or --steps-per-epoch): no verdict against the target"
    return result


def format_markdown(result: dict) -> str:
    m = result["machine"]
    data = result["data"]
    t = result["training"]
    lines = [
        "## Training cost",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores; load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}; date {m['date']}; torch {m['versions']['torch']}",
        f"- command: `{result['command']}`; recipe: {result['recipe']}",
        f"- data: {data['root']}" + (f", stratified subset of {data['limit']} per split/corpus/emotion "
                                     f"({data.get('clips')} clips)" if data["limit"] else ""),
        "",
        "| phase | wall s | CPU s | peak RSS MB | peak tree PSS MB | cached features |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in result["features"]:
        cached = f"{p['cache_before']['files']} -> {p['cache_after']['files']} ({p['cache_after']['mb']:.0f} MB)"
        lines.append(f"| {p['phase']} ({p['clips']} clips, {p['errors']} unreadable) | {p['wall_s']:.0f} | "
                     f"{p['cpu_s']:.0f} | {p['peak_rss_mb']:.0f} | {p['peak_tree_mb']:.0f} | {cached} |")
    lines.append(f"| {t['phase']} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | {t['peak_rss_mb']:.0f} | "
                 f"{t['peak_tree_mb']:.0f} | - |")

    def uar(key: str) -> str:
        return f"{t[key]:.3f}" if t[key] is not None else "-"

    clips = "/".join(str(t["clips"].get(k, 0)) for k in ("train", "val", "test"))
    lines += [
        "",
        f"- training: {t['arch']} ({t['parameters']:,} parameters), {t['epochs']} epochs (best {t['best_epoch']}), "
        f"training loop {t['fit_s']:.0f} s ({t['seconds_per_epoch']:.1f} s/epoch), other {t['other_s']:.0f} s "
        f"(start-up, cache reads, calibration, evaluation); train/val/test clips {clips}",
        f"- UAR: validation {uar('val_uar')}, test {uar('test_uar')} (each clip alone: {uar('test_uar_clip')})",
        f"- the same training from a cold cache: about {result['cold_training_s']:.0f} s "
        "(warm training + cold features - warm features)",
        "- peak RSS: the largest single process (ru_maxrss); tree PSS: all processes together, sampled every 0.5 s",
        f"- {result['verdict']}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Wall time and peak memory of the default training recipe, feature cache cold and warm.",
        epilog="example: python -m benchmarks.training --json docs/results/training.json > docs/results/training.md",
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help="corpus root (relative: from the repository root)")
    parser.add_argument("--limit", type=int, help="at most N clips per split, corpus and emotion (smoke runs)")
    parser.add_argument("--epochs", type=int, help="maximum epochs (default: the recipe's)")
    parser.add_argument("--steps-per-epoch", type=int, help="batches per epoch (default: one pass)")
    parser.add_argument("--arch", choices=("cnn", "crnn"), help="architecture (default: the recipe's)")
    parser.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    args = parser.parse_args(argv)

    if not resolve_data(args.data).is_dir():
        print(f"training: error: {args.data}: no such folder (pass --data)", file=sys.stderr)
        return 1
    try:
        result = run_training(args.data, args.limit, args.epochs, args.steps_per_epoch, args.arch)
    except RuntimeError as exc:
        print(f"training: error: {exc}", file=sys.stderr)
        return 1
    return finish(result, format_markdown(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
