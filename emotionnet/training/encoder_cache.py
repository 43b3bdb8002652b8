"""A disk cache of a frozen encoder's hidden states, so a head trains in minutes, not hours.

Each clip is cut into the model's windows exactly as inference cuts them (same
log-mel, same `whisper` normalisation, short clips tiled), every window goes
through the frozen encoder once, and all its layers' states are kept, averaged
over `CACHE_POOL` encoder frames (the head pools the same way, so training on
the cache and running the whole model give the same answer) and stored as
float16. Augmented copies of training clips ("aug1", "aug2", ...) are cached
beside the clean ones ("clean"). Keys hash the clip's bytes and the encoder's
tensors, so a moved corpus or other weights never hit a stale entry.

    python -m emotionnet.training.encoder_cache ../shared/data --variants clean,aug1,aug2 --shards 2

The command reads EMOTIONNET_WHISPER and EMOTIONNET_CACHE (emotionnet/environment.py) as the defaults
of --weights and --cache; the functions take them as arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emotionnet.audio import AudioError, load_audio
from emotionnet.cache import cache_root
from emotionnet.corpora import Record, find_records, split_of
from emotionnet.digest import file_digest
from emotionnet.features import FeatureConfig, log_mel
from emotionnet.inference.windows import cut_windows
from emotionnet.models.whisper.encoder import WhisperEncoder, encoder_frames
from emotionnet.models.whisper.frontend import WHISPER_FEATURES
from emotionnet.models.whisper.head import CACHE_POOL, pool_frames
from emotionnet.models.whisper.weights import load_encoder_tensors, tensors_digest
from emotionnet.training.wave_augment import WaveAugmentConfig, augment_wave

WINDOW_SECONDS = 3.0
HOP_SECONDS = 1.5
BATCH_WINDOWS = 8


def window_frames(features: FeatureConfig = WHISPER_FEATURES, seconds: float = WINDOW_SECONDS) -> int:
    return features.frames_of_samples(features.samples_for_seconds(seconds))


def window_shape(encoder: WhisperEncoder) -> tuple[int, int, int]:
    """(states, pooled frames, width) of one cached window."""
    frames = -(-encoder_frames(window_frames()) // CACHE_POOL)
    return encoder.n_states, frames, encoder.positions.shape[1]


def encoder_inputs(samples: np.ndarray, window_s: float = WINDOW_SECONDS, hop_s: float = HOP_SECONDS) -> torch.Tensor:
    """(windows, 80, frames) Whisper inputs of one clip, cut as inference cuts them."""
    mel = log_mel(samples, WHISPER_FEATURES)
    hop = max(1, round(hop_s * WHISPER_FEATURES.sample_rate / WHISPER_FEATURES.hop_length))
    windows, _ = cut_windows(mel, window_frames(seconds=window_s), hop, WHISPER_FEATURES)
    return windows


@torch.inference_mode()
def encode_windows(encoder: WhisperEncoder, windows: torch.Tensor) -> torch.Tensor:
    """(windows, 80, frames) -> (windows, layers + 1, pooled frames, width) float16 states.

    Always float32 products: the cache is shared by every run and must not depend on the CPU that filled it.
    """
    out = []
    for i in range(0, len(windows), BATCH_WINDOWS):
        states = torch.stack(encoder(windows[i:i + BATCH_WINDOWS], bfloat16_matmuls=False), dim=1)
        out.append(pool_frames(states, CACHE_POOL).half())
    return torch.cat(out)


@dataclass
class StateStore:
    """The cached rows of one variant: a memmap per shard (float16 states; the statistics cache
    stores float32 rows) and an index of clip keys."""

    folder: Path
    dtype: type = np.float16

    def shard_paths(self, shard: int) -> tuple[Path, Path]:
        return self.folder / f"states-{shard}.f16", self.folder / f"index-{shard}.jsonl"

    def load(self, window_shape: tuple[int, ...]) -> tuple[list[np.memmap], dict[str, tuple[int, int, int]]]:
        """Memmaps per shard and key -> (shard, first window, windows)."""
        arrays, index = [], {}
        for states_path in sorted(self.folder.glob("states-*.f16")):
            shard = int(states_path.stem.split("-")[1])
            index_path = self.shard_paths(shard)[1]
            count = 0
            for line in index_path.read_text().splitlines():
                entry = json.loads(line)
                index[entry["key"]] = (len(arrays), entry["start"], entry["windows"])
                count = max(count, entry["start"] + entry["windows"])
            arrays.append(np.memmap(states_path, dtype=self.dtype, mode="r", shape=(count, *window_shape))
                          if count else np.zeros((0, *window_shape), self.dtype))
        return arrays, index


def clip_key(path: str | Path, encoder_digest: str, variant: str) -> str:
    return f"{file_digest(path)}-{encoder_digest[:12]}-{variant}"


def _variant_audio(record: Record, variant: str, key_seed: str, cfg: WaveAugmentConfig) -> np.ndarray:
    samples = load_audio(record.path)
    if not variant.startswith("aug"):  # "clean", and the statistics cache's "crop"
        return samples
    rng = np.random.default_rng(int(key_seed[:16], 16))
    return augment_wave(samples, cfg, rng)


def fill(records: Sequence[Record], variant: str, store: StateStore, shard: int, encoder: WhisperEncoder,
         encoder_digest: str, cfg: WaveAugmentConfig | None = None,
         encode: Callable[[np.ndarray, str], np.ndarray] | None = None,
         row_shape: tuple[int, ...] | None = None) -> int:
    """Encode the records not yet in this shard; returns how many were added. Resumable.

    `encode(samples, key)` turns a clip into the rows stored for it (default: its windows' pooled
    states, `encode_windows`, of `window_shape`); every row has `row_shape` and the store's dtype.
    """
    cfg = cfg or WaveAugmentConfig()
    if encode is None:
        def encode(samples: np.ndarray, key: str) -> np.ndarray:
            return encode_windows(encoder, encoder_inputs(samples)).numpy()
    store.folder.mkdir(parents=True, exist_ok=True)
    states_path, index_path = store.shard_paths(shard)
    done, next_window = set(), 0
    for other in sorted(store.folder.glob("index-*.jsonl")):  # a clip another shard holds is done too
        for line in other.read_text().splitlines():
            entry = json.loads(line)
            done.add(entry["key"])
            if other == index_path:
                next_window = max(next_window, entry["start"] + entry["windows"])
    window_bytes = int(np.prod(row_shape or window_shape(encoder))) * np.dtype(store.dtype).itemsize
    if states_path.exists():  # drop the bytes of a window written after its clip's last index line
        with open(states_path, "r+b") as f:
            f.truncate(next_window * window_bytes)
    added, announced = 0, False
    with open(states_path, "ab") as states_file, open(index_path, "a") as index_file:
        for record in tqdm(records, desc=f"{variant} shard {shard}", mininterval=30, disable=None):
            key = clip_key(record.path, encoder_digest, variant)
            if key in done:
                continue
            if not announced:  # say where the gigabytes go (cache_dir, the command line's $EMOTIONNET_CACHE, moves them)
                print(f"encoder cache: adding clips to {store.folder}", flush=True)
                announced = True
            try:
                samples = _variant_audio(record, variant, key, cfg)
                states = np.ascontiguousarray(encode(samples, key), dtype=store.dtype)
            except (AudioError, ValueError) as exc:
                print(f"skipped {record.path}: {exc}", flush=True)
                continue
            states_file.write(states.tobytes())
            states_file.flush()
            index_file.write(json.dumps({"key": key, "start": next_window, "windows": len(states)}) + "\n")
            index_file.flush()
            next_window += len(states)
            done.add(key)
            added += 1
    return added


def encoder_folder(encoder_digest: str, cache_dir: str | Path | None = None) -> Path:
    """The states of the encoder with this digest, in the cache folder (`emotionnet.cache.cache_root`)."""
    return cache_root(cache_dir) / f"whisper-{encoder_digest[:12]}-w{WINDOW_SECONDS:g}-p{CACHE_POOL}"


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """--weights and --cache, as both cache-filling commands take them (defaults from the environment)."""
    settings = command_settings()
    parser.add_argument("--weights", default=settings.encoder_weights,
                        help="a Whisper base the user has (default: $EMOTIONNET_WHISPER, else the installed weight "
                             "packages)")
    parser.add_argument("--cache", default=settings.cache_dir,
                        help="the cache folder (default: $EMOTIONNET_CACHE, else ~/.cache/emotionnet)")


def command_settings():
    """The environment's settings for a cache-filling command (its option defaults); a bad value exits
    with one line."""
    from emotionnet.environment import EnvironmentSettingError, from_environment

    try:
        return from_environment(model=False)
    except EnvironmentSettingError as exc:
        raise SystemExit(f"emotionnet: error: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--variants", default="clean,aug1,aug2", help="clean and/or augN, comma-separated")
    parser.add_argument("--shards", type=int, default=1, help="processes (one thread each)")
    parser.add_argument("--shard", type=int, default=None, help=argparse.SUPPRESS)
    add_source_options(parser)
    args = parser.parse_args(argv)
    if args.shard is None and args.shards > 1:
        import subprocess

        given = [*(["--weights", args.weights] if args.weights else []), *(["--cache", args.cache] if args.cache else [])]
        jobs = [subprocess.Popen([sys.executable, "-m", "emotionnet.training.encoder_cache", *args.folders,
                                  "--variants", args.variants, "--shards", str(args.shards), "--shard", str(i), *given])
                for i in range(args.shards)]
        raise SystemExit(max(job.wait() for job in jobs))
    torch.set_num_threads(1)
    tensors, _ = load_encoder_tensors(args.weights)
    digest = tensors_digest(tensors)
    encoder = WhisperEncoder.from_ctranslate2(tensors)
    records = find_records(args.folders).records
    shard = args.shard or 0
    for variant in args.variants.split(","):
        chosen = records if variant == "clean" else [r for r in records if split_of(r) == "train"]
        mine = chosen[shard::args.shards]
        added = fill(mine, variant, StateStore(encoder_folder(digest, args.cache) / variant), shard, encoder, digest)
        print(f"{variant} shard {shard}: {added} clips added", flush=True)


if __name__ == "__main__":
    main()
