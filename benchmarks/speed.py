"""Speed of EmotionNet on this machine: real-time factors, cold start, model size, GPU training.

What it measures (DESIGN.md, "Targets"):

- the model file: parameters, size in bytes, SHA-256;
- real-time factor (processing wall time / audio seconds; lower is better) on 1 and
  2 CPU threads (torch.set_num_threads; onnxruntime intra-op threads follow it),
  PyTorch and ONNX backends side by side, for
  (a) short clips of about 3 s, one `predict` call each (decode + features + model,
      each timed), plus the same clips through `predict_files` (batched), and
  (b) one 10-minute recording (WAV, made by concatenating clips with short
      pauses) through `predict_timeline` with the model's default window and hop;
- cold start of `python -m emotionnet predict <3 s clip>` as a fresh process
  (one untimed run first, then the median of 3) and its peak RSS (wait4 rusage);
- openSMILE eGeMAPSv02 and ComParE_2016 functionals on the same clips and
  recording: the classic peers' cost before any classifier (skipped without opensmile);
- where a CUDA GPU is present: training throughput (clips/s) and peak GPU memory
  of the default architectures, with and without mixed precision (synthetic batches).

    python -m benchmarks.speed                                   # shipped model, full run
    python -m benchmarks.speed --model runs/r2.safetensors --json docs/results/speed.json
    python -m benchmarks.speed --model m.safetensors --clips 3 --long-seconds 20 --repeat 1   # smoke run
    python -m benchmarks.speed --model whisper-base --backends torch --threads 1 --no-opensmile --json docs/results/speed-whisper-base.json

Clips are real ones from ../shared/data (2.5-3.5 s long, spread over the corpora)
when it is present, else generated speech-like audio. Numbers taken while other
work runs on the machine are meaningless: the load average at the start is printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile
import torch

from benchmarks import common
from benchmarks.common import SAMPLE_RATE, comma_list, shown
from emotionnet.audio import load_audio
from emotionnet.digest import file_digest
from emotionnet.evaluation.signals import speech_like
from emotionnet.features import log_mel
from emotionnet.inference.recognizer import EmotionRecognizer, resolve_model_path
from emotionnet.models import count_parameters

# DESIGN.md's targets per family: the whisper family (`whisper-base`) runs a 20 M-parameter encoder.
TARGETS = {"rtf_one_thread": 0.005, "cold_wall_s": 2.0, "cold_rss_mb": 500.0, "model_mb": 5.0}
FAMILY_TARGETS = {"whisper": {**TARGETS, "rtf_one_thread": 0.03, "cold_wall_s": 2.5, "cold_rss_mb": 1000.0}}
OPENSMILE_SETS = ("eGeMAPSv02", "ComParE_2016")


# --------------------------------------------------------------------------- the model

def model_info(path: Path) -> dict:
    recognizer = EmotionRecognizer.from_file(path)
    meta = recognizer.metadata
    size = path.stat().st_size
    return {
        "file": shown(path), "bytes": size, "mb": round(size / 1e6, 3), "sha256": file_digest(path, "sha256"),
        "arch": meta["model"]["arch"], "hparams": meta["model"].get("hparams", {}),
        "parameters": count_parameters(recognizer.network),
        "window_s": recognizer.window, "hop_s": recognizer.hop,
    }


# --------------------------------------------------------------------------- audio to time

def pick_clips(data_root: Path, n: int, seed: int = 0, low: float = 2.5, high: float = 3.5) -> list[Path]:
    """Up to `n` real clips between `low` and `high` seconds, taken in turn from each corpus."""
    from emotionnet.corpora import find_records

    by_corpus: dict[str, list[str]] = {}
    for record in find_records([data_root]).records:
        by_corpus.setdefault(record.corpus, []).append(record.path)
    rng = random.Random(seed)
    pools = []
    for corpus in sorted(by_corpus):
        paths = sorted(by_corpus[corpus])
        rng.shuffle(paths)
        pools.append(iter(paths))
    chosen: list[Path] = []
    tries = 0
    while pools and len(chosen) < n and tries < 40 * n:
        for pool in list(pools):
            path = next(pool, None)
            tries += 1
            if path is None:
                pools.remove(pool)
                continue
            try:
                seconds = soundfile.info(path).duration
            except RuntimeError:
                continue
            if low <= seconds <= high:
                chosen.append(Path(path))
                if len(chosen) == n:
                    break
    return chosen


def generated_clips(folder: Path, n: int, seconds: float = 3.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"generated_{i:03d}.wav"
        soundfile.write(str(path), speech_like(seconds, 100 + 7 * (i % 20), seed=i, random_phase=True), SAMPLE_RATE)
        paths.append(path)
    return paths


def long_recording(sources: list[np.ndarray], seconds: float, path: Path, seed: int = 0) -> Path:
    """`seconds` of 16 kHz WAV: the clips in turn, separated by 0.2-1.0 s of faint noise."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE)
    parts, length, i = [], 0, 0
    while length < total:
        clip = sources[i % len(sources)]
        gap = (0.001 * rng.standard_normal(int(rng.uniform(0.2, 1.0) * SAMPLE_RATE))).astype(np.float32)
        parts += [clip, gap]
        length += clip.size + gap.size
        i += 1
    soundfile.write(str(path), np.concatenate(parts)[:total], SAMPLE_RATE, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- timing

def _stages(recognizer: EmotionRecognizer, path: Path) -> tuple[float, float, float, float]:
    """(decode, features, model, audio seconds) of one file: the path predict_timeline takes."""
    t0 = time.perf_counter()
    samples = load_audio(path)
    t1 = time.perf_counter()
    mel = log_mel(samples, recognizer.features)
    t2 = time.perf_counter()
    recognizer.log_mel_scorer().timelines([mel], [samples.size / SAMPLE_RATE])
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, samples.size / SAMPLE_RATE


def _row(decode: float, features: float, model: float, audio: float, **extra) -> dict:
    total = decode + features + model
    return {**extra, "audio_s": round(audio, 3), "decode_s": round(decode, 5), "features_s": round(features, 5),
            "model_s": round(model, 5), "total_s": round(total, 5), "rtf": total / audio,
            "rtf_decode": decode / audio, "rtf_features": features / audio, "rtf_model": model / audio}


def time_files(recognizer: EmotionRecognizer, paths: Sequence[Path], repeat: int) -> dict:
    """Each file in its own call; per stage, the median over `repeat` passes of the summed times."""
    for path in paths[:3]:  # warm-up: allocations, kernels picked, file pages cached
        _stages(recognizer, path)
    passes = []
    for _ in range(repeat):
        passes.append(np.sum([_stages(recognizer, p) for p in paths], axis=0))
    decode, features, model, audio = (statistics.median(p[k] for p in passes) for k in range(4))
    return _row(decode, features, model, audio, files=len(paths), repeat=repeat)


def time_batched(recognizer: EmotionRecognizer, paths: Sequence[Path], audio: float, repeat: int) -> dict:
    """All files through predict_files (windows scored in shared batches): the analyst's path."""
    walls = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for result in recognizer.predict_files(paths):
            if not result.ok:
                raise RuntimeError(result.error)
        walls.append(time.perf_counter() - t0)
    wall = statistics.median(walls)
    return {"files": len(paths), "repeat": repeat, "audio_s": round(audio, 3), "total_s": round(wall, 5),
            "rtf": wall / audio}


def neural_timings(model: Path, backend: str, threads: int, clips: list[Path], long_path: Path,
                   repeat: int) -> list[dict]:
    torch.set_num_threads(threads)  # set before the recognizer: its onnxruntime session copies it
    recognizer = EmotionRecognizer.from_file(model, backend=backend)
    base = {"backend": backend, "threads": threads}
    rows = []
    clip_row = time_files(recognizer, clips, repeat)
    rows.append({**base, "workload": "clips", **clip_row})
    rows.append({**base, "workload": "clips, batched", **time_batched(recognizer, clips, clip_row["audio_s"], repeat)})
    rows.append({**base, "workload": "long recording", **time_files(recognizer, [long_path], repeat)})
    return rows


def opensmile_timings(clips: list[Path], long_path: Path, repeat: int) -> list[dict]:
    """openSMILE functionals (one vector per file) on the decoded audio; openSMILE is single-threaded."""
    import opensmile

    rows = []
    for name in OPENSMILE_SETS:
        smile = opensmile.Smile(feature_set=opensmile.FeatureSet[name], feature_level=opensmile.FeatureLevel.Functionals)
        smile.process_signal(load_audio(clips[0]), SAMPLE_RATE)  # warm-up
        for workload, paths in (("clips", clips), ("long recording", [long_path])):
            passes = []
            for _ in range(repeat):
                decode = extract = audio = 0.0
                for path in paths:
                    t0 = time.perf_counter()
                    samples = load_audio(path)
                    t1 = time.perf_counter()
                    smile.process_signal(samples, SAMPLE_RATE)
                    t2 = time.perf_counter()
                    decode, extract, audio = decode + t1 - t0, extract + t2 - t1, audio + samples.size / SAMPLE_RATE
                passes.append((decode, extract, audio))
            decode, extract, audio = (statistics.median(p[k] for p in passes) for k in range(3))
            rows.append({"feature_set": name, "workload": workload, "files": len(paths), "repeat": repeat,
                         "audio_s": round(audio, 3), "decode_s": round(decode, 5), "extract_s": round(extract, 5),
                         "rtf_extract": extract / audio, "rtf": (decode + extract) / audio})
    return rows


def cold_start(model: Path, clip: Path, runs: int, workdir: Path) -> dict:
    command = [sys.executable, "-m", "emotionnet", "predict", str(clip), "--model", str(model)]
    log = workdir / "cold.log"
    results = []
    for i in range(runs + 1):  # the first run only warms the page cache and the .pyc files
        result = common.run_measured(command, log=log)
        if result["rc"] != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"'emotionnet predict' exited with {result['rc']}:\n{tail}")
        if i:
            results.append(result)
    walls = [r["wall_s"] for r in results]
    return {"command": f"python -m emotionnet predict CLIP{clip.suffix} --model MODEL (torch backend, default threads)",
            "clip": shown(clip), "runs": runs, "median_wall_s": statistics.median(walls),
            "min_wall_s": min(walls), "max_wall_s": max(walls),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results), "walls_s": walls}


def training_throughput(arch: str, hparams: dict, device: str, mixed_precision: bool, batch_size: int = 32,
                        steps: int = 50, warmup: int = 5, seconds: float = 3.0) -> dict:
    """Training steps per second on synthetic (batch, 64, frames) inputs, as the trainer runs them."""
    import torch.nn.functional as F

    from emotionnet.features import FeatureConfig
    from emotionnet.models import build_model

    config = FeatureConfig()
    frames = config.frames_of_samples(config.samples_for_seconds(seconds))
    dev = torch.device(device)
    model = build_model(arch, **{**hparams, "n_mels": config.n_mels}).to(dev, memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(batch_size, config.n_mels, frames, device=dev, generator=generator)
    y = torch.randint(0, 6, (batch_size,), device=dev, generator=generator)
    dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(dev.type, enabled=mixed_precision and dtype == torch.float16)

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype, enabled=mixed_precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    for _ in range(warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
    return {"arch": arch, "device": device, "mixed_precision": mixed_precision, "batch_size": batch_size,
            "steps": steps, "clips_per_s": steps * batch_size / wall, "peak_gpu_mb": peak}


def gpu_training(batch_sizes: Sequence[int], steps: int) -> dict:
    if not torch.cuda.is_available():
        return {"skipped": "no CUDA GPU (torch.cuda.is_available() is False)"}
    from emotionnet.models.registry import FAMILIES

    rows = []
    for arch, family in FAMILIES.items():
        if family.recipe != "log-mel":  # a family on a pretrained encoder trains its head on cached states
            continue
        hparams = {k: v for k, v in family.default_hparams().items() if k not in ("n_mels", "n_classes")}
        for batch_size in batch_sizes:
            for mixed in (False, True):
                rows.append(training_throughput(arch, hparams, "cuda", mixed, batch_size, steps))
    return {"device": torch.cuda.get_device_name(0), "inputs": "synthetic 3 s log-mel batches (no data loading)",
            "rows": rows}


# --------------------------------------------------------------------------- the run

def run_speed(
    model: Path,
    data: str | None = common.DEFAULT_DATA,
    clips: int = 50,
    long_seconds: float = 600.0,
    threads: Sequence[int] = (1, 2),
    backends: Sequence[str] = ("torch", "onnx"),
    repeat: int = 3,
    cold_runs: int = 3,
    opensmile: bool = True,
    gpu_batch_sizes: Sequence[int] = (32, 256),
    gpu_steps: int = 50,
    generated: bool = False,
    progress: bool = True,
) -> dict:
    model = Path(model)

    def say(text: str) -> None:
        if progress:
            print(f"speed: {text}", file=sys.stderr, flush=True)

    info = model_info(model)
    result: dict = {"benchmark": "speed", "machine": common.machine_info(), "model": info,
                    "targets": FAMILY_TARGETS.get(info["arch"], TARGETS)}
    initial_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="emotionnet-speed-") as tmp:
        workdir = Path(tmp)
        data_root = common.resolve_data(data) if data else None
        chosen = [] if generated or data_root is None or not data_root.is_dir() else pick_clips(data_root, clips)
        if len(chosen) >= min(clips, 1):
            source = f"{len(chosen)} real clips of 2.5-3.5 s from {data}, spread over the corpora (Opus)"
        else:
            chosen = generated_clips(workdir / "clips", clips)
            source = f"{len(chosen)} generated speech-like 3 s clips (WAV, 16 kHz)"
        say(f"clips: {source}")
        decoded = [load_audio(p) for p in chosen]
        long_path = long_recording(decoded, long_seconds, workdir / "long.wav")
        result["inputs"] = {
            "clips": source, "clip_seconds_mean": round(float(np.mean([d.size for d in decoded])) / SAMPLE_RATE, 3),
            "long_recording": f"{long_seconds:g} s WAV (PCM 16-bit, 16 kHz) of the clips in turn with 0.2-1.0 s pauses",
        }

        result["rtf"] = []
        for threads_n in threads:
            for backend in backends:
                say(f"{backend}, {threads_n} thread(s)")
                result["rtf"].extend(neural_timings(model, backend, threads_n, chosen, long_path, repeat))
        torch.set_num_threads(initial_threads)

        if opensmile:
            try:
                import opensmile as _  # noqa: F401
            except ImportError:
                result["opensmile"] = {"skipped": "opensmile is not installed (pip install -e .[bench])"}
            else:
                say("openSMILE functionals")
                result["opensmile"] = {"rows": opensmile_timings(chosen, long_path, repeat)}
        else:
            result["opensmile"] = {"skipped": "not requested (--no-opensmile)"}

        if cold_runs:
            say(f"cold start, {cold_runs} run(s) after one untimed")
            result["cold_start"] = cold_start(model, chosen[0], cold_runs, workdir)
        else:
            result["cold_start"] = {"skipped": "not requested (--cold-runs 0)"}

    say("GPU training throughput")
    result["gpu_training"] = gpu_training(gpu_batch_sizes, gpu_steps)
    result["verdicts"] = verdicts(result)
    return result


def verdicts(result: dict) -> list[str]:
    targets = result["targets"]
    lines = []
    one = [r for r in result["rtf"] if r["threads"] == 1 and r["workload"] in ("clips", "long recording")]
    for r in one:
        ok = r["rtf"] <= targets["rtf_one_thread"]
        lines.append(f"RTF {r['backend']}, 1 thread, {r['workload']}: {r['rtf']:.5f} "
                     f"({'meets' if ok else 'MISSES'} the target <= {targets['rtf_one_thread']})")
    cold = result.get("cold_start", {})
    if "median_wall_s" in cold:
        ok = cold["median_wall_s"] < targets["cold_wall_s"]
        lines.append(f"cold predict: median {cold['median_wall_s']:.2f} s ({'meets' if ok else 'MISSES'} < "
                     f"{targets['cold_wall_s']:g} s)")
        ok = cold["peak_rss_mb"] < targets["cold_rss_mb"]
        lines.append(f"cold predict: peak RSS {cold['peak_rss_mb']:.0f} MB ({'meets' if ok else 'MISSES'} < "
                     f"{targets['cold_rss_mb']:g} MB)")
    ok = result["model"]["mb"] <= targets["model_mb"]
    lines.append(f"model file: {result['model']['mb']:.2f} MB ({'meets' if ok else 'MISSES'} <= {targets['model_mb']:g} MB)")
    return lines


def format_markdown(result: dict) -> str:
    m, model = result["machine"], result["model"]
    v = m["versions"]
    lines = [
        "## Speed",
        "",
        f"- machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable); load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}; {m['platform']}",
        f"- date {m['date']}; python {v['python']}, torch {v['torch']}, onnxruntime {v['onnxruntime']}, "
        f"opensmile {v['opensmile']}",
        f"- model `{model['file']}`: {model['arch']}, {model['parameters']:,} parameters, {model['bytes']:,} bytes "
        f"({model['mb']:.2f} MB), sha256 `{model['sha256']}`; window {model['window_s']:g} s, hop {model['hop_s']:g} s",
        f"- inputs: {result['inputs']['clips']} (mean {result['inputs']['clip_seconds_mean']:.2f} s); "
        f"long recording: {result['inputs']['long_recording']}",
        "",
        "Real-time factor = processing wall time / audio time (lower is better). Clips: one call per clip, "
        "median of the passes; decode + features + model are timed separately.",
        "",
        "| workload | backend | threads | audio s | decode s | features s | model s | total s | RTF | RTF decode | RTF features | RTF model |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted(result["rtf"], key=lambda r: (r["workload"], r["threads"], r["backend"])):
        if "decode_s" in r:
            lines.append(f"| {r['workload']} | {r['backend']} | {r['threads']} | {r['audio_s']:.1f} | {r['decode_s']:.3f} | "
                         f"{r['features_s']:.3f} | {r['model_s']:.3f} | {r['total_s']:.3f} | {r['rtf']:.5f} | "
                         f"{r['rtf_decode']:.5f} | {r['rtf_features']:.5f} | {r['rtf_model']:.5f} |")
        else:
            lines.append(f"| {r['workload']} (predict_files) | {r['backend']} | {r['threads']} | {r['audio_s']:.1f} | "
                         f"| | | {r['total_s']:.3f} | {r['rtf']:.5f} | | | |")
    lines += ["", "### openSMILE functionals (the classic peers' feature cost, one thread)", ""]
    smile = result["opensmile"]
    if "skipped" in smile:
        lines.append(f"skipped: {smile['skipped']}")
    else:
        lines += ["| feature set | workload | audio s | decode s | extraction s | RTF extraction | RTF with decode |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in smile["rows"]:
            lines.append(f"| {r['feature_set']} | {r['workload']} | {r['audio_s']:.1f} | {r['decode_s']:.3f} | "
                         f"{r['extract_s']:.3f} | {r['rtf_extract']:.5f} | {r['rtf']:.5f} |")
        lines.append("")
        lines.append("Functionals of the whole file (one vector): a floor; a timeline of windows would cost more.")
    lines += ["", "### Cold start", ""]
    cold = result["cold_start"]
    if "skipped" in cold:
        lines.append(f"skipped: {cold['skipped']}")
    else:
        lines += [f"`{cold['command']}`, one untimed run, then {cold['runs']} timed fresh processes:", "",
                  "| median wall s | min | max | peak RSS MB |", "| ---: | ---: | ---: | ---: |",
                  f"| {cold['median_wall_s']:.2f} | {cold['min_wall_s']:.2f} | {cold['max_wall_s']:.2f} | "
                  f"{cold['peak_rss_mb']:.0f} |"]
    lines += ["", "### GPU training throughput", ""]
    gpu = result["gpu_training"]
    if "skipped" in gpu:
        lines.append(f"skipped: {gpu['skipped']}")
    else:
        lines += [f"{gpu['device']}; {gpu['inputs']}", "",
                  "| arch | batch | mixed precision | clips/s | peak GPU MB |", "| --- | ---: | --- | ---: | ---: |"]
        for r in gpu["rows"]:
            lines.append(f"| {r['arch']} | {r['batch_size']} | {'fp16' if r['mixed_precision'] else 'fp32'} | "
                         f"{r['clips_per_s']:.0f} | {r['peak_gpu_mb']:.0f} |")
    lines += ["", "### Against the targets (DESIGN.md)", ""] + [f"- {line}" for line in result["verdicts"]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Speed of EmotionNet: real-time factors, cold start, model size; openSMILE for comparison.",
        epilog="example: python -m benchmarks.speed --json docs/results/speed.json > docs/results/speed.md",
    )
    parser.add_argument("--model", metavar="NAME|FILE", help="a model name (whisper-base, fast) or file (default: the default model, whisper-base)")
    parser.add_argument("--data", default=common.DEFAULT_DATA, help="corpus root for real clips (relative: from the repository root)")
    parser.add_argument("--generated", action="store_true", help="use generated clips even when the corpora are present")
    parser.add_argument("--clips", type=int, default=50, help="number of ~3 s clips (default 50)")
    parser.add_argument("--long-seconds", type=float, default=600.0, help="length of the long recording (default 600)")
    parser.add_argument("--threads", type=lambda text: comma_list(text, int), default=[1, 2], help="CPU thread counts, comma-separated (default 1,2)")
    parser.add_argument("--backends", default="torch,onnx", help="comma-separated: torch, onnx (default both)")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per measurement; the median is kept")
    parser.add_argument("--cold-runs", type=int, default=3, help="timed cold starts (0: skip)")
    parser.add_argument("--no-opensmile", action="store_true", help="skip the openSMILE timings")
    parser.add_argument("--gpu-steps", type=int, default=50, help="timed training steps per GPU configuration")
    parser.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    args = parser.parse_args(argv)

    model = resolve_model_path(args.model)
    if not model.is_file():
        print(f"speed: error: model file {model} not found (pass --model FILE)", file=sys.stderr)
        return 1
    if args.clips < 1 or args.long_seconds < 5 or args.repeat < 1:
        print("speed: error: --clips and --repeat must be at least 1, --long-seconds at least 5", file=sys.stderr)
        return 1
    backends = comma_list(args.backends)
    result = run_speed(model, args.data, args.clips, args.long_seconds, args.threads, backends, args.repeat,
                       args.cold_runs, not args.no_opensmile, gpu_steps=args.gpu_steps, generated=args.generated)
    return common.finish(result, format_markdown(result), args.json)


if __name__ == "__main__":
    sys.exit(main())
