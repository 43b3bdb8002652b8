"""Disk cache of log-mel features, keyed by file content and feature settings.

Decoding Opus and computing the STFT is most of a training epoch's input cost;
caching the un-normalised log-mel makes a second run skip both. Keys hash the
bytes, not the path, so a moved or renamed corpus still hits the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from emotionnet.audio import AudioError, load_audio
from emotionnet.digest import file_digest
from emotionnet.features import FeatureConfig, log_mel


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The one cache folder: `cache_dir`, else ~/.cache/emotionnet. The library reads no environment:
    the command line passes $EMOTIONNET_CACHE here (emotionnet/environment.py)."""
    return Path(cache_dir) if cache_dir else Path.home() / ".cache" / "emotionnet"


def _config_key(config: FeatureConfig) -> str:
    # Normalisation is applied after the cache, so it is not part of the key.
    settings = {k: v for k, v in config.to_dict().items() if k != "normalisation"}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def _compute(job: tuple[str, str, FeatureConfig]) -> tuple[str, str | None]:
    path, target, config = job
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        features = log_mel(load_audio(path), config).numpy().astype(np.float16)
    except AudioError as exc:
        return path, str(exc)
    finally:
        torch.set_num_threads(threads)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    tmp = f"{target}.{os.getpid()}.tmp.npy"
    np.save(tmp, features)
    os.replace(tmp, target)
    return path, None


def cached_log_mels(
    paths: list[str],
    config: FeatureConfig,
    workers: int | None = None,
    progress: bool = True,
    cache_dir: str | Path | None = None,
) -> tuple[list[np.ndarray | None], dict[str, str]]:
    """Un-normalised log-mel (float16, n_mels x frames) per path; None where it failed.

    Kept under `cache_root(cache_dir)`. Returns the features and a map of failed path -> error message.
    """
    folder = cache_root(cache_dir) / "features" / _config_key(config)
    targets = []
    for path in paths:
        digest = file_digest(path) if Path(path).is_file() else "missing"
        targets.append(str(folder / digest[:2] / f"{digest}.npy"))
    jobs = [(p, t, config) for p, t in zip(paths, targets) if not os.path.exists(t)]
    errors: dict[str, str] = {}
    if jobs:
        workers = workers or min(2, os.cpu_count() or 1)
        with ProcessPoolExecutor(workers) as pool:
            done = pool.map(_compute, jobs, chunksize=16)
            for path, error in tqdm(done, total=len(jobs), desc="features", unit="clip", disable=not progress):
                if error:
                    errors[path] = error
    features = [None if p in errors else _load_or_rebuild(p, t, config, errors) for p, t in zip(paths, targets)]
    return features, errors


def _load_or_rebuild(path: str, target: str, config: FeatureConfig, errors: dict[str, str]) -> np.ndarray | None:
    """A cached feature file; one that is damaged (a crash mid-write, a full disk) is computed again."""
    try:
        return _read(target)
    except (OSError, ValueError, EOFError) as exc:
        print(f"emotionnet: warning: rebuilding the damaged cached features {target} of {path} ({exc})",
              file=sys.stderr)
    with contextlib.suppress(OSError):
        os.remove(target)
    _, error = _compute((path, target, config))
    if error:
        errors[path] = error
        return None
    try:
        return _read(target)
    except (OSError, ValueError, EOFError) as exc:
        errors[path] = f"{path}: cannot cache its features in {target} ({exc})"
        return None


def _read(target: str) -> np.ndarray:
    features = np.load(target, allow_pickle=False)
    if features.ndim != 2 or features.dtype != np.float16:
        raise ValueError(f"expected a 2-D float16 array, found {features.dtype} {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("it holds non-finite values")
    return features
