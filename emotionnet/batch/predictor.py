"""The engine-independent core of a batch job: a picklable predictor, files or arrays in, rows out.

    predictor = BatchPredictor()                     # cheap to pickle: the model loads on first use
    rows = predictor.predict_paths(["a.wav", "b.flac"])
    # [{"path": "a.wav", "duration": 3.1, "speech": True, "emotion": "sad", "confidence": 0.8,
    #   "p_angry": ..., ..., "p_sad": ..., "error": None}, ...]

Every input gives exactly one row; a file that cannot be read gives a row
whose `error` says why and whose other fields are null. A file without speech
(silence, noise, music) has `speech` false and `emotion` and `confidence` null;
its `p_*` columns then hold the model's guess, as `"guess"` does in `predict --json`
(null for digital silence, which the model is not asked about). Each engine (a local
process pool, Ray actors) holds one predictor per worker.
"""

from __future__ import annotations

import numpy as np

from emotionnet.audio import AudioError
from emotionnet.labels import LABELS

PROBABILITY_COLUMNS = [f"p_{label}" for label in LABELS]
COLUMNS = ["path", "duration", "speech", "emotion", "confidence", *PROBABILITY_COLUMNS, "error"]


def arrow_schema():
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("duration", pa.float64()), ("speech", pa.bool_()),
                      ("emotion", pa.string()),
                      ("confidence", pa.float64()), *[(c, pa.float64()) for c in PROBABILITY_COLUMNS],
                      ("error", pa.string())])


def error_row(path: str, message: str) -> dict:
    return {**dict.fromkeys(COLUMNS), "path": path, "error": message}


class BatchPredictor:
    """One model per process, loaded lazily; `threads` torch threads (1: one core per worker)."""

    def __init__(self, model: str | None = None, max_seconds: float | None = None, threads: int = 1):
        self.model, self.max_seconds, self.threads = model, max_seconds, threads
        self._recognizer = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_recognizer": None}  # workers load their own copy

    # The only calls into the inference API from the batch package.
    def recognizer(self):
        if self._recognizer is None:
            import torch

            from emotionnet import load_model

            torch.set_num_threads(self.threads)
            self._recognizer = load_model(self.model)
        return self._recognizer

    def decode(self, path: str) -> np.ndarray:
        from emotionnet.audio import load_audio
        from emotionnet.batch.inputs import is_uri, read_bytes

        if is_uri(path):
            try:
                data = read_bytes(path)
            except (OSError, ValueError) as exc:
                raise AudioError(f"{path}: cannot read ({exc})") from None
            return load_audio(data, max_seconds=self.max_seconds, name=path)
        return load_audio(path, max_seconds=self.max_seconds)

    def score(self, audios: list[np.ndarray]) -> list:
        return self.recognizer().predict_arrays(audios)

    def predict_paths(self, paths: list[str]) -> list[dict]:
        """One row per path, in order; bad files get error rows."""
        decoded: list[tuple[str, np.ndarray | None, str | None]] = []
        for path in paths:
            try:
                decoded.append((path, self.decode(path), None))
            except AudioError as exc:
                decoded.append((path, None, str(exc)))
            except Exception as exc:  # a filesystem or decoder failure must not stop the job
                decoded.append((path, None, f"{path}: {type(exc).__name__}: {exc}"))
        return self._rows(decoded)

    def predict_arrays(self, items: list[tuple[str, np.ndarray, int]]) -> list[dict]:
        """Rows for `(name, samples, sample_rate)` items already in memory."""
        from emotionnet.audio import prepare_array

        decoded = []
        for name, samples, rate in items:
            try:
                decoded.append((name, prepare_array(samples, rate, self.max_seconds, name=name), None))
            except AudioError as exc:
                decoded.append((name, None, str(exc)))
        return self._rows(decoded)

    def _rows(self, decoded: list[tuple[str, np.ndarray | None, str | None]]) -> list[dict]:
        good = [(i, audio) for i, (_, audio, _) in enumerate(decoded) if audio is not None]
        try:
            timelines = dict(zip([i for i, _ in good], self.score([audio for _, audio in good]))) if good else {}
        except Exception:  # score one by one, so one bad clip does not take its batch with it
            timelines = {}
            for i, audio in good:
                try:
                    timelines[i] = self.score([audio])[0]
                except Exception as exc:
                    decoded[i] = (decoded[i][0], None, f"{decoded[i][0]}: scoring failed ({exc})")
        rows = []
        for i, (path, _, error) in enumerate(decoded):
            rows.append(error_row(path, error) if i not in timelines else timeline_row(path, timelines[i]))
        return rows

    def __call__(self, batch):
        """Ray Data's `map_batches`: a pyarrow table with a `path` column -> a table of rows."""
        import pyarrow as pa

        rows = self.predict_paths([str(p) for p in batch.column("path").to_pylist()])
        return pa.Table.from_pylist(rows, schema=self.schema())

    def schema(self):
        """The columns of the rows (a subclass that adds columns says so here)."""
        return arrow_schema()


def timeline_row(path: str, timeline) -> dict:
    p = timeline.prediction
    answer = p.most_likely  # the p_* columns: the answer, or without speech the guess (None: digital silence)
    return {"path": path, "duration": float(timeline.duration), "speech": bool(p.speech),
            "emotion": p.emotion, "confidence": p.confidence,
            **{f"p_{label}": float(answer.probabilities[label]) if answer else None for label in LABELS},
            "error": None}
