"""A disk cache of the linear head's input, each clip's layer statistics, at the lengths it is scored at.

The linear ("stats") head reads only each encoder state's mean and standard
deviation over a window (`layer_statistics`), so this cache keeps those
(7 states x 2 x 512 float32 per row, 28 KB) instead of frame states: a few
hundred megabytes for every corpus where the frame cache (encoder_cache.py)
takes 17 GB. Every row is one stretch of audio encoded alone, over its real
frames only (no tiling, no padding), exactly as `WhisperEmotionNet` scores a
window at inference:

    clean   every clip whole (up to the encoder's 30 s)
    crop    one crop of each training clip, 1-10 s long (at most the clip), at a place and
            length drawn from the clip's key (clips under 1.5 s get none)
    augN    the whole training clip, waveform-augmented (as the frame cache's augN)

so a head fitted on them is standardised over windows of varied length, not the
3 s windows' alone. Rows live in the frame cache's `StateStore` shards (float32),
and `CachedStates` reads them as one "window" per row.

    python -m emotionnet.training.statistics_cache ../shared/data --variants clean,crop,aug1
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from emotionnet.cache import cache_root
from emotionnet.corpora import Record, find_records, split_of
from emotionnet.features import log_mel, model_input
from emotionnet.models.whisper.encoder import FRAMES_PER_SECOND, MAX_MEL_FRAMES, WhisperEncoder
from emotionnet.models.whisper.frontend import WHISPER_FEATURES
from emotionnet.models.whisper.head import CACHE_POOL, window_statistics
from emotionnet.models.whisper.weights import load_encoder_tensors, tensors_digest
from emotionnet.training.encoder_cache import StateStore, add_source_options, fill

SHORTEST_CROP_S = 1.0
LONGEST_CROP_S = 10.0
CROPPED_FROM_S = 1.5  # a clip shorter than this has no crop: it would be nearly the clip again


def statistics_folder(encoder_digest: str, cache_dir: str | Path | None = None) -> Path:
    """The statistics of the encoder with this digest, in the cache folder (`emotionnet.cache.cache_root`)."""
    return cache_root(cache_dir) / f"whisper-stats-{encoder_digest[:12]}-p{CACHE_POOL}"


def row_width(encoder: WhisperEncoder) -> int:
    return encoder.n_states * 2 * encoder.positions.shape[1]


def stretch(samples: np.ndarray, variant: str, key: str) -> torch.Tensor | None:
    """The un-normalised log-mel stretch of a clip that `variant` caches (None: this clip has none)."""
    mel = log_mel(samples, WHISPER_FEATURES)
    frames = mel.shape[-1]
    if variant != "crop":
        start = max(0, (frames - MAX_MEL_FRAMES) // 2)  # the middle 30 s of a longer clip
        return mel[:, start:start + MAX_MEL_FRAMES]
    if frames < CROPPED_FROM_S * FRAMES_PER_SECOND:
        return None
    rng = np.random.default_rng(int(key[:16], 16))
    length = int(rng.integers(int(SHORTEST_CROP_S * FRAMES_PER_SECOND),
                              min(frames, int(LONGEST_CROP_S * FRAMES_PER_SECOND)) + 1))
    start = int(rng.integers(0, frames - length + 1))
    return mel[:, start:start + length]


@torch.inference_mode()
def encode_statistics(encoder: WhisperEncoder, samples: np.ndarray, variant: str, key: str) -> np.ndarray:
    """(rows, states * 2 * width) float32: the statistics of the stretch `variant` takes (0 or 1 rows)."""
    mel = stretch(samples, variant, key)
    if mel is None:
        return np.zeros((0, row_width(encoder)), np.float32)
    window = model_input(mel.float(), WHISPER_FEATURES, mel.shape[-1])[None]
    states = torch.stack(encoder(window, bfloat16_matmuls=False), dim=1)
    return window_statistics(states).numpy()


def fill_statistics(records, variant: str, shard: int, encoder: WhisperEncoder, digest: str,
                    cache_dir: str | Path | None = None) -> int:
    store = StateStore(statistics_folder(digest, cache_dir) / variant, np.float32)
    return fill(records, variant, store, shard, encoder, digest,
                encode=lambda samples, key: encode_statistics(encoder, samples, variant, key),
                row_shape=(row_width(encoder),))


def at_most_per_cell(records: Sequence[Record], per_cell: int) -> list[Record]:
    """At most `per_cell` records of each (corpus, emotion, split), the same draw on every run
    (ordered by a hash of the file name), in the records' order."""
    cells = defaultdict(list)
    for record in records:
        cells[record.corpus, record.emotion, split_of(record)].append(record)
    kept = {r.path for cell in cells.values()
            for r in sorted(cell, key=lambda r: hashlib.sha1(Path(r.path).name.encode()).hexdigest())[:per_cell]}
    return [r for r in records if r.path in kept]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--variants", default="clean,crop,aug1", help="clean, crop and/or augN, comma-separated")
    parser.add_argument("--shards", type=int, default=1, help="this process's share: every shards-th clip")
    parser.add_argument("--shard", type=int, default=0)
    parser.add_argument("--splits", default="train,val,test",
                        help="the clean variant's splits (the others take training clips only)")
    parser.add_argument("--per-cell", type=int, default=None,
                        help="at most this many clips per corpus, emotion and split (a fixed draw; default all)")
    add_source_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tensors, _ = load_encoder_tensors(args.weights)
    digest = tensors_digest(tensors)
    encoder = WhisperEncoder.from_ctranslate2(tensors)
    del tensors
    records = find_records(args.folders).records
    for variant in args.variants.split(","):
        splits = args.splits.split(",") if variant == "clean" else ["train"]
        chosen = [r for r in records if split_of(r) in splits]
        if args.per_cell:
            chosen = at_most_per_cell(chosen, args.per_cell)
        added = fill_statistics(chosen[args.shard::args.shards], variant, args.shard, encoder, digest, args.cache)
        print(f"{variant} shard {args.shard}: {added} clips added", flush=True)


if __name__ == "__main__":
    main()
