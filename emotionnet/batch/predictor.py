"""The engine-independent core of a batch job: a picklable predictor, files or arrays in, rows out.

    predictor = BatchPredictor()                     # cheap to pickle: the model loads on first use
    rows = predictor.predict_paths(["a.wav", "b.flac"])
    # [{"path": "a.wav", "duration": 3.1, "speech": True, "emotion": "sad", "confidence": 0.8,
    #   "p_angry": ..., ..., "p_sad": ..., "error": None}, ...]

Every input gives exactly one row; a file that cannot be read gives a row
whose `error` says why and whose other fields are null; its `error_kind` says
whose fault: "audio" (the file's: a re-run keeps the row) or "job" (a reading
or scoring failure: a re-run tries the file again). A file without speech
(silence, noise, music) has `speech` false and `emotion` and `confidence` null;
its `p_*` columns then hold the model's guess, as `"guess"` does in `predict --json`
(null for digital silence, which the model is not asked about). Each engine (a local
process pool, Ray actors) holds one predictor per worker.
"""

from __future__ import annotations

import numpy as np

from emotionnet.audio import AudioError
from emotionnet.labels import LABELS


def columns(labels: tuple[str, ...] = LABELS) -> list[str]:
    """The row's columns for a model answering `labels` (`recognizer.labels`): a `p_<label>` each."""
    return ["path", "duration", "speech", "emotion", "confidence", *(f"p_{label}" for label in labels), "error",
            "error_kind"]


COLUMNS = columns()  # every shipped model's


def arrow_schema(labels: tuple[str, ...] = LABELS):
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("duration", pa.float64()), ("speech", pa.bool_()),
                      ("emotion", pa.string()),
                      ("confidence", pa.float64()), *[(f"p_{label}", pa.float64()) for label in labels],
                      ("error", pa.string()), ("error_kind", pa.string())])


class BatchPredictor:
    """One model per process, loaded once; `threads` torch threads (1: one core per worker).

    A model that cannot be loaded raises (the job stops with one message): it is never a row per file.
    """

    def __init__(self, model: str | None = None, max_seconds: float | None = None, threads: int = 1,
                 load_options: dict | None = None):
        self.model, self.max_seconds, self.threads = model, max_seconds, threads
        self.load_options = dict(load_options or {})  # load_model's vad, compute_type, encoder_weights
        self._recognizer = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_recognizer": None}  # workers load their own copy

    # The only calls into the inference API from the batch package.
    def recognizer(self):
        if self._recognizer is None:
            import torch

            from emotionnet import load_model

            torch.set_num_threads(self.threads)
            self._recognizer = load_model(self.model, **self.load_options)
        return self._recognizer

    def predict_paths(self, paths: list[str]) -> list[dict]:
        """One row per path, in order; bad files get error rows. Remote files (URIs) are read one at a time."""
        from emotionnet.batch.inputs import is_uri
        from emotionnet.inference.many import AudioInput

        return self._rows(AudioInput(p, RemoteFile(p)) if is_uri(p) else AudioInput(p, p) for p in paths)

    def predict_arrays(self, items: list[tuple[str, np.ndarray, int]]) -> list[dict]:
        """Rows for `(name, samples, sample_rate)` items already in memory."""
        from emotionnet.inference.many import AudioInput

        return self._rows(AudioInput(name, samples, rate) for name, samples, rate in items)

    def _rows(self, inputs) -> list[dict]:
        results = self.recognizer().predict_files(inputs, max_seconds=self.max_seconds)
        names = columns(self.recognizer().labels)
        return [dict(zip(names, map(result.to_row().get, names))) for result in results]

    def __call__(self, batch):
        """Ray Data's `map_batches`: a pyarrow table with a `path` column -> a table of rows."""
        import pyarrow as pa

        rows = self.predict_paths([str(p) for p in batch.column("path").to_pylist()])
        return pa.Table.from_pylist(rows, schema=self.schema())

    def schema(self):
        """The columns of the rows: a probability per label of the model (a subclass that adds columns says so here)."""
        return arrow_schema(self.recognizer().labels)


class RemoteFile:
    """The bytes of a file on s3://, gs://, file:// (pyarrow's filesystems), read when scoring reaches it."""

    def __init__(self, uri: str):
        self.uri = uri

    def __call__(self) -> bytes:
        from emotionnet.batch.inputs import read_bytes

        try:
            return read_bytes(self.uri)
        except FileNotFoundError:
            raise AudioError(f"{self.uri}: file not found") from None
