"""The one loop that scores many inputs: decode, batch, retry a failed batch item alone, long files in blocks.

`EmotionRecognizer.predict_files`, `emotionnet batch` (`BatchPredictor`) and
the HTTP service all score many inputs through `score_inputs`:

    for result in score_inputs(scoring, [AudioInput("a.wav", "a.wav"), AudioInput("up", data)], windowing):
        result.to_dict()      # the `predict --json` object; result.to_row(): a batch row

- Each input is decoded in its turn; one that cannot be (an `AudioError`: the
  file's fault) or whose reading fails (an `OSError` of a remote store: the
  job's) becomes a `FileResult` with its error, in its place, and the rest go on.
- Decoded clips gather until about `batch_seconds` of audio, then their windows
  are scored in shared batches. Should a batch fail, each clip is scored alone,
  so one clip cannot fail the others; one that fails alone gets an error result.
- A file longer than `blocks.LONG_SECONDS` (its header says) is scored in
  bounded memory by `blocks.score_in_blocks`, never decoded whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotionnet.audio import AudioError, load_audio, prepare_array
from emotionnet.features import log_mel
from emotionnet.inference import blocks
from emotionnet.inference.results import FileResult
from emotionnet.inference.scoring import WindowScorer
from emotionnet.models.spec import Windowing

Source = str | Path | bytes | np.ndarray | Callable[[], bytes]


@dataclass(frozen=True)
class AudioInput:
    """One input: a path, file bytes, an array (with `sample_rate`), or a callable that returns the file's
    bytes when the loop reaches it (a remote file, read one at a time); `name` names it in results."""

    name: str
    source: Source
    sample_rate: int | None = None


def as_input(item: AudioInput | str | Path) -> AudioInput:
    return item if isinstance(item, AudioInput) else AudioInput(str(item), item)


def score_inputs(
    scoring: WindowScorer, inputs: Iterable[AudioInput | str | Path], windowing: Windowing, *,
    batch_seconds: float = 120.0, max_seconds: float | None = None, same_speaker: bool = False,
) -> Iterator[FileResult]:
    """A `FileResult` per input, in order; `windowing` is the caller's, from the one window rule.

    `same_speaker`: the inputs are one speaker's, so a speaker-normalised model reads each
    against all of them: every input is decoded before any is scored, none in blocks.
    """
    if same_speaker:
        batch_seconds = float("inf")
    pending: list[tuple[str, np.ndarray | None, FileResult | None]] = []
    seconds = 0.0
    rate = scoring.features.sample_rate
    for item in map(as_input, inputs):
        try:
            source = item.source() if callable(item.source) else item.source
        except AudioError as exc:
            pending.append((item.name, None, FileResult(item.name, error=str(exc), cause=exc)))
            continue
        except Exception as exc:  # a remote store that failed: not the file's fault
            pending.append((item.name, None, _failed(item.name, "cannot read", exc)))
            continue
        if not same_speaker and not isinstance(source, np.ndarray) and blocks.is_long(source, max_seconds):
            yield from _flush(scoring, pending, windowing, same_speaker)
            pending, seconds = [], 0.0
            yield _score_long(scoring, item.name, source, windowing, max_seconds)
            continue
        samples, failure = _decode(item.name, source, item.sample_rate, max_seconds)
        pending.append((item.name, samples, failure))
        seconds += 0 if samples is None else samples.size / rate
        if seconds >= batch_seconds:
            yield from _flush(scoring, pending, windowing, same_speaker)
            pending, seconds = [], 0.0
    yield from _flush(scoring, pending, windowing, same_speaker)


def _failed(name: str, what: str, exc: BaseException) -> FileResult:
    return FileResult(name, error=f"{name}: {what} ({type(exc).__name__}: {exc})", cause=exc)


def _decode(name: str, source, sample_rate: int | None,
            max_seconds: float | None) -> tuple[np.ndarray | None, FileResult | None]:
    try:
        if isinstance(source, np.ndarray):
            return prepare_array(source, sample_rate, max_seconds, name=name), None
        return load_audio(source, max_seconds=max_seconds, name=name), None
    except AudioError as exc:
        return None, FileResult(name, error=str(exc), cause=exc)
    except Exception as exc:  # a filesystem or decoder failure must not stop the others
        return None, _failed(name, "cannot decode", exc)


def _score_long(scoring: WindowScorer, name: str, source, windowing: Windowing,
                max_seconds: float | None) -> FileResult:
    try:
        return FileResult(name, blocks.score_in_blocks(scoring, source, windowing, max_seconds, name=name))
    except AudioError as exc:
        return FileResult(name, error=str(exc), cause=exc)
    except Exception as exc:
        return _failed(name, "scoring failed", exc)


def _flush(scoring: WindowScorer, pending: list, windowing: Windowing,
           same_speaker: bool) -> Iterator[FileResult]:
    """The results of the gathered inputs, in their order: decoded clips scored together (each alone
    if their batch fails), failures in their place."""
    loaded = [(name, samples) for name, samples, _ in pending if samples is not None]
    timelines: list = []
    if loaded:
        try:
            timelines = _timelines(scoring, [s for _, s in loaded], windowing, same_speaker)
        except Exception:  # one clip must not fail the clips it shares a batch with
            timelines = []
            for name, samples in loaded:
                try:
                    timelines.append(_timelines(scoring, [samples], windowing, same_speaker)[0])
                except Exception as exc:
                    timelines.append(_failed(name, "scoring failed", exc))
    scored = iter(timelines)
    for name, samples, failure in pending:
        if samples is None:
            yield failure
            continue
        timeline = next(scored)
        yield timeline if isinstance(timeline, FileResult) else FileResult(name, timeline)


def _timelines(scoring: WindowScorer, audios: list[np.ndarray], windowing: Windowing,
               same_speaker: bool) -> list:
    mels = [log_mel(samples, scoring.features) for samples in audios]
    rate = scoring.features.sample_rate
    speakers = ["same"] * len(mels) if same_speaker else None
    return scoring.timelines(mels, windowing, [s.size / rate for s in audios], speakers, audios=audios)
