"""The engine-independent core of a batch job: a picklable predictor, files or arrays in, rows out.

    predictor = BatchPredictor()                     # cheap to pickle: the model loads on first use
    rows = predictor.predict_paths(["a.wav", "b.flac"])
    # [{"path": "a.wav", "duration": 3.1, "speech": True, "emotion": "sad", "confidence": 0.8,
    #   "p_angry": ..., ..., "p_sad": ..., "error": None}, ...]

Every input gives exactly one row; a file that cannot be read gives a row
whose `error` says why and whose other fields are null; its `error_kind` says
whose fault: the file's ("audio", "image" or "video", its kind: a re-run keeps
the row) or "job" (a reading or scoring failure: a re-run tries the file again).

Each file is told by its content (`media`: audio, image or video; a remote file
by its name's extension, then its content). An image row has `face` (a face
found), `n_faces`, and the largest face's `emotion`, `confidence` and `p_*`;
`duration` and `speech` are null. A video row's `emotion`, `confidence` and
`p_*` are the fused answer for the whole file, beside `voice_emotion`,
`voice_confidence`, `face_emotion` and `face_confidence` (null where that side
has no answer), `speech` (the voice heard speech) and `face` (a frame held a
face). Columns a kind does not have are null. The face model (`face_model`)
is loaded once per worker, at its first image or video. A file without speech
(silence, noise, music) has `speech` false and `emotion` and `confidence` null;
its `p_*` columns then hold the model's guess, as `"guess"` does in `predict --json`
(null for digital silence, which the model is not asked about). Each engine (a local
process pool, Ray actors) holds one predictor per worker.
"""

from __future__ import annotations

import numpy as np

from emotionnet.audio import AudioError
from emotionnet.errors import ImageError
from emotionnet.labels import LABELS
from emotionnet.models.family import AUDIO
from emotionnet.models.names import FACE_MODEL

# The columns of image and video rows (null in audio rows), after the p_* columns.
MEDIA_COLUMNS = ("media", "face", "n_faces", "voice_emotion", "voice_confidence", "face_emotion", "face_confidence")


def columns(labels: tuple[str, ...] = LABELS) -> list[str]:
    """The row's columns for a model answering `labels` (`recognizer.labels`): a `p_<label>` each."""
    return ["path", "duration", "speech", "emotion", "confidence", *(f"p_{label}" for label in labels),
            *MEDIA_COLUMNS, "error", "error_kind"]


COLUMNS = columns()  # every shipped model's


def arrow_schema(labels: tuple[str, ...] = LABELS):
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("duration", pa.float64()), ("speech", pa.bool_()),
                      ("emotion", pa.string()),
                      ("confidence", pa.float64()), *[(f"p_{label}", pa.float64()) for label in labels],
                      ("media", pa.string()), ("face", pa.bool_()), ("n_faces", pa.int64()),
                      ("voice_emotion", pa.string()), ("voice_confidence", pa.float64()),
                      ("face_emotion", pa.string()), ("face_confidence", pa.float64()),
                      ("error", pa.string()), ("error_kind", pa.string())])


class BatchPredictor:
    """One model per process, loaded once; `threads` torch threads (1: one core per worker).

    A model that cannot be loaded raises (the job stops with one message): it is never a row per file.
    """

    def __init__(self, model: str | None = None, max_seconds: float | None = None, threads: int = 1,
                 load_options: dict | None = None, face_model: str = FACE_MODEL):
        self.model, self.max_seconds, self.threads = model, max_seconds, threads
        self.load_options = dict(load_options or {})  # load_model's vad, compute_type, encoder_weights
        self.face_model = face_model
        self._recognizer = None
        self._faces = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_recognizer": None, "_faces": None}  # workers load their own copy

    # The only calls into the inference API from the batch package.
    def recognizer(self):
        if self._recognizer is None:
            import torch

            from emotionnet import load_model

            torch.set_num_threads(self.threads)
            self._recognizer = load_model(self.model, **self.load_options)
        return self._recognizer

    def faces(self):
        """The face model, loaded at the first image or video; a voice model given as one is refused."""
        if self._faces is None:
            import torch

            from emotionnet import load_model

            torch.set_num_threads(self.threads)
            faces = load_model(self.face_model)
            if faces.modality == AUDIO:
                raise ValueError(f"the face model {self.face_model!r} reads audio, not faces")
            self._faces = faces
        return self._faces

    def predict_paths(self, paths: list[str]) -> list[dict]:
        """One row per path, in order; bad files get error rows. Remote files (URIs) are read one at a time."""
        from emotionnet.batch.inputs import is_uri
        from emotionnet.inference.many import AudioInput

        sources = [_MediaSource(p) for p in paths]
        audio = iter(self._rows(AudioInput(s.path, s.remote or RemoteFile(s.path)) if is_uri(s.path)
                                else AudioInput(s.path, s.path) for s in sources if s.kind == "audio"))
        names = columns(self.recognizer().labels)
        rows = []
        for source in sources:
            if source.kind == "audio":
                row = next(audio)
            elif source.kind == "image":
                row = self._image_row(source)
            else:
                row = self._video_row(source)
            rows.append({name: row.get(name) for name in names} | {"media": source.kind})
        return rows

    def predict_arrays(self, items: list[tuple[str, np.ndarray, int]]) -> list[dict]:
        """Rows for `(name, samples, sample_rate)` items already in memory."""
        from emotionnet.inference.many import AudioInput

        return self._rows(AudioInput(name, samples, rate) for name, samples, rate in items)

    def _rows(self, inputs) -> list[dict]:
        results = self.recognizer().predict_files(inputs, max_seconds=self.max_seconds)
        names = columns(self.recognizer().labels)
        return [dict(zip(names, map(result.to_row().get, names))) for result in results]

    def _image_row(self, source: _MediaSource) -> dict:
        faces = self.faces()  # a face model that cannot load stops the job: it is never a row per file
        try:
            prediction = faces.predict(source.data(), name=source.path)
        except ImageError as exc:  # the file's own fault: kept on a re-run
            return {"path": source.path, "error": str(exc), "error_kind": "image"}
        except Exception as exc:  # a remote read or the model failed: tried again on a re-run
            return {"path": source.path, "error": f"{source.path}: {type(exc).__name__}: {exc}", "error_kind": "job"}
        return {"path": source.path, "face": prediction.face, "n_faces": len(prediction.faces),
                **_answer_columns(prediction.emotion, prediction.confidence, prediction.probabilities)}

    def _video_row(self, source: _MediaSource) -> dict:
        from emotionnet.inference.video_timeline import predict_video
        from emotionnet.video import open_video

        voice, faces = self.recognizer(), self.faces()  # as for images: loading failures stop the job
        try:
            data = source.data()
            seconds = open_video(data, name=source.path).duration
            if self.max_seconds is not None and seconds is not None and seconds > self.max_seconds:
                raise AudioError(f"{source.path}: too long ({seconds:.1f} s; the limit is {self.max_seconds:g} s)")
            video = predict_video(voice, data, faces.score_frames, name=source.path).to_dict()
        except AudioError as exc:  # VideoError: damaged, no track, or over the limit: the file's own fault
            return {"path": source.path, "error": str(exc), "error_kind": "video"}
        except Exception as exc:
            return {"path": source.path, "error": f"{source.path}: {type(exc).__name__}: {exc}", "error_kind": "job"}
        voice, face = video["voice"], video["face"]
        return {"path": source.path, "duration": video["duration"], "speech": voice["speech"], "face": face["face"],
                "voice_emotion": voice["emotion"], "voice_confidence": voice["confidence"],
                "face_emotion": face["emotion"], "face_confidence": face["confidence"],
                **_answer_columns(video["emotion"], video["confidence"], video["probabilities"])}

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


class _MediaSource:
    """One input told by its content: a local file by its first bytes; a remote one named like an image or
    video is read here (its bytes kept for the face model), any other remote file is left to the audio loop."""

    def __init__(self, path: str):
        from emotionnet.batch.inputs import is_uri
        from emotionnet.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, media_kind

        self.path, self.remote = path, None
        if not is_uri(path):
            self.kind = media_kind(path)
            return
        self.kind = "audio"
        suffix = "." + path.split("?")[0].rsplit(".", 1)[-1].lower()
        if suffix in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS:
            try:
                content = RemoteFile(path)()
            except Exception:  # missing or a failed read: the audio loop reads it again and names why
                return
            self.kind = media_kind(content)
            self.remote = lambda: content  # read once, whichever loop scores it

    def data(self) -> str | bytes:
        return self.path if self.remote is None else self.remote()


def _answer_columns(emotion: str | None, confidence: float | None, probabilities: dict | None) -> dict:
    return {"emotion": emotion, "confidence": confidence,
            **{f"p_{label}": p for label, p in (probabilities or {}).items()}}
