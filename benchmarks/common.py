"""What the benchmark scripts share, so that none imports another.

- where things are: the repository, the corpora (`--data`), paths as reports show them;
- the data: the corpora's ids and titles, at most N clips per group (smoke runs), counts;
- the machine: CPU, cores, load, versions (`machine_info`);
- measured runs: a command as a fresh process, its wall time and peak memory (`run_measured`);
- generated speech: a speech-like test signal (also the tests' `voiced`);
- the tail of every `main()`: the table printed, the full result written as JSON (`finish`).
"""

from __future__ import annotations

import datetime
import hashlib
import http.client
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emotionnet.corpora import Collection, Record, split_of
from emotionnet.labels import LABEL_INDEX

REPO_ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA = "../shared/data"  # relative to the repository root
SAMPLE_RATE = 16_000
CORPORA = ("crema-d", "ravdess", "tess", "savee")  # split v1, the benchmarks' in-domain protocol
V1_SPLIT = "v1"  # v2 keeps v1's lists for these four corpora, so their benchmarks are v1's
ALL_CORPORA = (*CORPORA, "nemo", "ased", "turev", "banglaser")  # split v3 (v2 is the first seven)
CORPUS_TITLES = {"crema-d": "CREMA-D", "ravdess": "RAVDESS", "tess": "TESS", "savee": "SAVEE",
                 "nemo": "nEMO", "ased": "ASED", "turev": "TurEV-DB", "banglaser": "BanglaSER"}


# --------------------------------------------------------------------------- where things are

def user_cache_dir() -> str | None:
    """$EMOTIONNET_CACHE, read and checked as the command line reads it (emotionnet/environment.py), for the
    library's caches (`cache_dir=`); None: their default, ~/.cache/emotionnet. The library reads no environment."""
    from emotionnet.environment import from_environment

    return from_environment(model=False).cache_dir


def user_cache_root() -> Path:
    """The cache folder the command line would use (`emotionnet.cache.cache_root` of `user_cache_dir()`)."""
    from emotionnet.cache import cache_root

    return cache_root(user_cache_dir())


def comma_list(text: str, cast=str) -> list:
    """`a, b,c` -> ["a", "b", "c"] (each through `cast`); empty items are dropped."""
    return [cast(x.strip()) for x in text.split(",") if x.strip()]


def resolve_data(data: str | os.PathLike | None) -> Path:
    """A relative data path is taken relative to the repository root."""
    path = Path(data if data is not None else DEFAULT_DATA).expanduser()
    return path if path.is_absolute() else REPO_ROOT / path


def shown(path: str | os.PathLike) -> str:
    """A path for reports: relative to the repository when inside it, else its name only."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return path.name


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """The machine and versions a result was measured on, with the load average at the start."""
    import torch

    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("onnxruntime", "opensmile"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": cpu_model(), "cores": cores, "usable_cores": usable,
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": versions,
    }


# --------------------------------------------------------------------------- the data

def limited(records: Sequence[Record], limit: int | None, seed: int = 0) -> list[Record]:
    """At most `limit` records per (split, corpus, emotion), chosen by a seeded shuffle."""
    if not limit:
        return list(records)
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        groups[(split_of(r), r.corpus, r.emotion)].append(r)
    rng = random.Random(seed)
    chosen: list[Record] = []
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda r: r.path)
        chosen.extend(rng.sample(group, min(limit, len(group))))
    return chosen


def count_per_corpus(records: Sequence[Record]) -> dict[str, int]:
    """Records per corpus, sorted by corpus id."""
    counts: dict[str, int] = defaultdict(int)
    for r in records:
        counts[r.corpus] += 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------- measured runs

def tree_memory_mb(root: int) -> float:
    """Memory of a process and all its descendants now: summed PSS (VmRSS where PSS is unreadable)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    total_kb, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        for name, key in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
            try:
                lines = Path(f"/proc/{pid}/{name}").read_text().splitlines()
            except OSError:
                continue
            found = [int(line.split()[1]) for line in lines if line.startswith(key)]
            if found:
                total_kb += found[0]
                break
    return total_kb / 1024


# The child is started by a small process of its own: a child forked straight from this large
# benchmark process would count the parent's pages, shared before exec, in its ru_maxrss.
_PEAK_RSS_WRAPPER = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(command: Sequence[str], env: dict | None = None, log: Path | None = None,
                 sample_every: float | None = None) -> dict:
    """Run a command as a fresh process: its wall time, exit status and peak RSS (wait4 rusage).

    The RSS is the largest of the process and its waited-for descendants (Linux ru_maxrss, in KiB).
    With `sample_every` seconds, the summed memory of the whole process tree is also sampled
    (`peak_tree_mb`: PSS, so shared library pages are not counted once per worker).
    """
    import threading

    out = open(log, "wb") if log else subprocess.DEVNULL
    peak_tree = [0.0]
    stop = threading.Event()
    try:
        rss_file = tempfile.NamedTemporaryFile(suffix=".rss", delete=False).name
        t0 = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-c", _PEAK_RSS_WRAPPER, rss_file, *command],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
        sampler = None
        if sample_every and Path("/proc").is_dir():
            def sample() -> None:
                while not stop.wait(sample_every):
                    peak_tree[0] = max(peak_tree[0], tree_memory_mb(process.pid))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - t0
        stop.set()
        if sampler:
            sampler.join()
    finally:
        if log:
            out.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    peak_kib = int(Path(rss_file).read_text() or 0) if Path(rss_file).stat().st_size else usage.ru_maxrss
    Path(rss_file).unlink()
    result = {"wall_s": wall, "rc": process.returncode, "peak_rss_mb": peak_kib / 1024,
              "user_s": usage.ru_utime, "sys_s": usage.ru_stime}
    if sample_every:
        result["peak_tree_mb"] = peak_tree[0]
    return result


# --------------------------------------------------------------------------- the service in a process

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The real service in its own process (and its workers'), stopped on exit."""

    def __init__(self, model: str | None, workers: int = 1, threads: int = 1, queue: int = 64,
                 options: Sequence[str] = (), preexec_fn=None):
        """`options`: more `serve` arguments; `preexec_fn`: run in the child before it starts (limits)."""
        self.port = free_port()
        command = [sys.executable, "-m", "emotionnet", "serve", "--port", str(self.port), "--workers", str(workers),
                   "--threads", str(threads), "--queue", str(queue), *options] + (["--model", model] if model else [])
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=preexec_fn)
        deadline = time.monotonic() + 120
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)

    def ready(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        except OSError:
            return False

    def processes(self):
        import psutil

        parent = psutil.Process(self.process.pid)
        return [parent, *parent.children(recursive=True)]

    def rss_mb(self) -> float:
        return sum(p.memory_info().rss for p in self.processes()) / 2**20

    def cpu_seconds(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.processes())

    def stop(self, grace: float = 30.0) -> None:
        """SIGINT (the graceful stop); SIGKILL to all its processes after `grace` seconds."""
        import signal

        processes = self.processes()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            for process in processes:
                try:
                    process.kill()
                except Exception:  # gone already
                    pass
            self.process.wait(10)


# --------------------------------------------------------------------------- generated video

# (container format, video codec, audio codec) for each container the video tests and benchmarks write
VIDEO_FORMATS = {
    "mp4": ("mp4", "libx264", "aac"),
    "mkv": ("matroska", "libx264", "libopus"),
    "webm": ("webm", "libvpx", "libopus"),
    "mov": ("mov", "mpeg4", "pcm_s16le"),
    "avi": ("avi", "mpeg4", "libmp3lame"),
    "flv": ("flv", "flv", "libmp3lame"),
}


def write_video(path: str | Path, seconds: float, *, fps: int = 25, size: tuple[int, int] = (64, 48),
                colour_at=None, image_at=None, audio=None, audio_rate: int = 48_000, audio_start: float = 0.0,
                video: bool = True, threads: int = 1, options: dict | None = None) -> Path:
    """A video made with PyAV: frames of one colour each (`colour_at(t)` -> (r, g, b), default grey)
    or whole pictures (`image_at(t)` -> (height, width, 3) uint8), and an audio track (`audio`:
    (samples,) float32 at `audio_rate`, stereo on file, starting at `audio_start` s; None: no audio
    track). The container and codecs follow the suffix (`VIDEO_FORMATS`); `options` go to the video
    encoder (e.g. {"preset": "veryfast"}); `video=False` writes the audio alone."""
    import av

    path = Path(path)
    form, video_codec, audio_codec = VIDEO_FORMATS[path.suffix.lstrip(".")]
    with av.open(str(path), "w", format=form) as container:
        picture = None
        if video:
            picture = container.add_stream(video_codec, rate=fps)
            picture.width, picture.height = size
            picture.pix_fmt = "yuv420p"
            picture.thread_count = threads
            picture.options = dict(options or {})
        sound = container.add_stream(audio_codec, rate=audio_rate, layout="stereo") if audio is not None else None
        if sound is not None:
            samples = np.ascontiguousarray(np.stack([audio, audio]).astype(np.float32))
            codec_format = sound.codec_context.format.name  # what the encoder takes (fltp, s16, ...)
            frame_size = sound.codec_context.frame_size or 1024
            start = int(round(audio_start * audio_rate))
            for offset in range(0, samples.shape[1], frame_size):
                chunk = samples[:, offset:offset + frame_size]
                frame = av.AudioFrame.from_ndarray(chunk if chunk.shape[1] else samples[:, :0], format="fltp",
                                                   layout="stereo")
                frame.sample_rate, frame.pts = audio_rate, start + offset
                if codec_format != "fltp":
                    frame = av.AudioResampler(format=codec_format, layout="stereo", rate=audio_rate).resample(frame)
                for piece in frame if isinstance(frame, list) else [frame]:
                    container.mux(sound.encode(piece))
            container.mux(sound.encode(None))
        if picture is not None:
            for i in range(int(round(seconds * fps))):
                if image_at is not None:
                    image = image_at(i / fps)
                else:
                    image = np.empty((size[1], size[0], 3), np.uint8)
                    image[:] = colour_at(i / fps) if colour_at else (128, 128, 128)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts = i
                container.mux(picture.encode(frame))
            container.mux(picture.encode(None))
    return path


# --------------------------------------------------------------------------- the tail of main()

def percentiles(values: list[float]) -> dict:
    """Count, median, 95th percentile and maximum of latencies in milliseconds."""
    if not values:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    array = np.array(values)
    return {"n": len(values), "median_ms": round(float(np.median(array)), 2),
            "p95_ms": round(float(np.percentile(array, 95)), 2), "max_ms": round(float(array.max()), 2)}


def write_json(path: str | Path | None, result: dict) -> None:
    """Write `result` to `path` (folders made as needed); nothing when `path` is None."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=1) + "\n")


def finish(result: dict, text: str, json_path: str | Path | None, md_path: str | Path | None = None) -> int:
    """Print a benchmark's table, write its full result as JSON and the text as Markdown (when asked): exit 0."""
    print(text)
    write_json(json_path, result)
    if md_path:
        Path(md_path).write_text(text + "\n")
    return 0


# --------------------------------------------------------------------------- trained models

def clips_key(records: Sequence[Record]) -> str:
    """A hash of which clips are in which split (by corpus and file name, never by absolute path)."""
    lines = sorted(f"{r.corpus}|{Path(r.path).name}|{split_of(r)}|{r.emotion}" for r in records)
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def model_name(name: str, seed: int, recipe, records: Sequence[Record]) -> str:
    # Keyed on what shapes the weights: the temperature scale is applied after training, and the
    # benchmarks that read a cached file's calibration start from its validation temperature.
    weights = {k: v for k, v in recipe.to_dict().items() if k != "unseen_corpus_temperature_scale"}
    key = hashlib.sha1(json.dumps({"recipe": weights, "clips": clips_key(records)},
                                  sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-seed{seed}-{key}.safetensors"


def train_or_reuse(name: str, seed: int, collection: Collection, recipe, cache: Path, retrain: bool = False,
                   progress: bool = True) -> tuple[Path, dict, bool]:
    """(model file, its metadata, whether it was reused) for one training.

    Trained files are kept in `cache` under a name hashing the recipe and the clips, so a
    re-run reuses a finished training and resumes an interrupted one from its checkpoint.
    """
    from emotionnet.models.file import ModelFileError, read_model_file
    from emotionnet.training.recipe import train_model

    out = cache / model_name(name, seed, recipe, collection.records)
    if out.is_file() and not retrain:
        try:
            return out, read_model_file(out)[1], True
        except ModelFileError:
            pass  # a broken file: train again
    if retrain:
        out.with_name(out.name + ".ckpt").unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)

    def show(epoch: int, m: dict) -> None:
        if progress:
            print(f"{name}: seed {seed} epoch {epoch:3d}  loss {m['loss']:.3f}  val UAR {m['uar']:.3f}  "
                  f"{m['seconds']:.0f} s", file=sys.stderr, flush=True)

    if progress:
        print(f"training {name} seed {seed} ({len(collection.records)} clips) -> {out.name}",
              file=sys.stderr, flush=True)
    meta = train_model(collection, out, recipe, callbacks=[show], progress=False, cache_dir=user_cache_dir())
    return out, meta, False


def labels_of(records: Sequence[Record]) -> np.ndarray:
    """Each record's class index."""
    return np.array([LABEL_INDEX[r.emotion] for r in records])


def clip_figures(y: np.ndarray, probs: np.ndarray) -> dict:
    """UAR, accuracy, macro-F1, collapse, ECE and Brier of clip probabilities."""
    from emotionnet.evaluation.metrics import brier_score, collapse, expected_calibration_error, summary

    pred = probs.argmax(axis=1)
    return {**summary(y, pred), "collapse": collapse(pred),
            "ece": expected_calibration_error(y, probs), "brier": brier_score(y, probs)}


CANVAS = (480, 640)  # height, width of the picture a face is put on (benchmarks/face*.py)


def on_canvas(face: np.ndarray, upscale: int, at: tuple[float, float] = (0.5, 0.5)) -> tuple[np.ndarray, tuple]:
    """The 48x48 face upscaled onto a grey 640x480 canvas with its centre at `at` (fractions of the canvas);
    returns the canvas and FER's square (x, y, side) on it."""
    from PIL import Image

    side = face.shape[0] * upscale
    big = np.asarray(Image.fromarray(face).resize((side, side), Image.BICUBIC))
    canvas = np.full(CANVAS, 128, dtype=np.uint8)
    x = int(round(at[0] * CANVAS[1] - side / 2))
    y = int(round(at[1] * CANVAS[0] - side / 2))
    canvas[y:y + side, x:x + side] = big
    return canvas, (float(x), float(y), float(side))
