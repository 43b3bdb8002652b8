"""EmotionRecognizer: the public way to load a model once and call it on audio.

    recognizer = load_model()                      # $EMOTIONNET_MODEL, else the model shipped in the package
    recognizer = load_model("model.onnx")          # a model name, a .safetensors file or an exported .onnx file
    recognizer.predict("clip.wav").emotion         # 'angry'
    recognizer.predict_timeline(array, 48000)      # windows over a long recording
    for result in recognizer.predict_files(paths): # many files in shared batches
        print(result.path, result.timeline or result.error)
    recognizer.predict_arrays([a, b])              # decoded 16 kHz clips, scored in shared batches
    recognizer.predict_log_mels(mels)              # un-normalised log-mels, as the feature cache holds them

A speaker-normalised model (the shipped one) hears a clip best against the same
speaker's other audio: pass `context=recognizer.speaker_context([...])` to
`predict`/`predict_timeline`, or `same_speaker=True` to `predict_files`.
The recognizer is the only way into a model: the scoring under it (windows,
energy gate, calibration: `inference/scoring.py`) is private to `inference/`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from emotionnet.audio import AudioSource, to_audio
from emotionnet.features import BandStats, FeatureConfig, band_stats, log_mel
from emotionnet.inference import blocks
from emotionnet.inference.many import AudioInput, score_inputs
from emotionnet.inference.results import FileResult, Prediction, ScoredWindows, Timeline
from emotionnet.inference.scoring import WindowScorer
from emotionnet.labels import LABELS
from emotionnet.models.file import ModelFileError, load_model_file
from emotionnet.models.spec import MAX_WINDOW, ModelSpec, Windowing

MODEL_ENV = "EMOTIONNET_MODEL"  # the model (name or file) used when none is named (the CLI and the app honour it)
BACKENDS = ("torch", "onnx")
DEFAULT_MODEL = "default"


class UnknownModelError(ModelFileError):
    """A model name that is not in `MODELS` (and not a file)."""


def default_model_path() -> Path:
    """The model shipped inside the package."""
    return Path(str(resources.files("emotionnet") / "assets" / "model.safetensors"))


def whisper_base_model_path() -> Path:
    """The `whisper-base` head shipped inside the package (its encoder comes from the weight packages)."""
    return Path(str(resources.files("emotionnet") / "assets" / "whisper-base.safetensors"))


def resolve_model_path(path: str | Path | None = None) -> Path:
    """`path`, else $EMOTIONNET_MODEL, else the shipped model; a model name is its shipped file."""
    chosen = path or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    named = {DEFAULT_MODEL: default_model_path, "whisper-base": whisper_base_model_path}
    return named[chosen]() if chosen in named else Path(chosen)


class EmotionRecognizer:
    """A trained model with its feature settings, window and calibration."""

    def __init__(self, model_file: str | Path | None = None, backend: str = "torch"):
        """A .safetensors model file (default: $EMOTIONNET_MODEL, else the shipped model); see also `load_model`."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
        self.model_file: Path | None = resolve_model_path(model_file)
        model, spec, self.metadata = load_model_file(self.model_file)
        self.backend = backend
        if backend == "onnx":
            from emotionnet.inference.onnx_backend import onnx_scorer

            self._scoring = WindowScorer(onnx_scorer(self.model_file, model, self.metadata, spec), spec)
        else:
            self._scoring = WindowScorer(model, spec)

    @classmethod
    def from_model(cls, model: torch.nn.Module, metadata: dict | ModelSpec,
                   spec: ModelSpec | None = None) -> EmotionRecognizer:
        """Wrap a model in memory (during training, say) with its would-be file metadata or its spec.

        `spec`, when the caller has parsed `metadata` already, saves parsing it again.
        """
        recognizer = cls.__new__(cls)
        recognizer.model_file = None
        if isinstance(metadata, ModelSpec):
            spec, metadata = metadata, metadata.to_metadata()
        recognizer.metadata = metadata
        recognizer.backend = "torch"
        recognizer._scoring = WindowScorer(model, spec or ModelSpec.from_metadata(metadata))
        return recognizer

    @property
    def spec(self) -> ModelSpec:
        return self._scoring.spec

    @property
    def network(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """What turns (windows, n_mels, frames) model inputs into logits: the torch module, or the
        onnxruntime scorer of the onnx backend (`emotionnet export` writes it out)."""
        return self._scoring.network

    @property
    def features(self) -> FeatureConfig:
        return self.spec.features

    @property
    def window(self) -> float:
        return self.spec.window

    @property
    def hop(self) -> float:
        return self.spec.hop

    @property
    def temperature(self) -> float:
        return self.spec.temperature

    @property
    def labels(self) -> tuple[str, ...]:
        return LABELS

    def predict(
        self, audio: AudioSource, sample_rate: int | None = None, context: BandStats | None = None
    ) -> Prediction:
        """The emotion of one clip (a path, file bytes, or an array with its sample rate)."""
        return self.predict_timeline(audio, sample_rate, context=context).prediction

    def predict_timeline(
        self, audio: AudioSource, sample_rate: int | None = None, *,
        window: float | None = None, hop: float | None = None, max_seconds: float | None = None,
        context: BandStats | None = None,
    ) -> Timeline:
        """Emotion per window over time, plus the overall answer.

        `context` (from `speaker_context`) reads the clip against its speaker's voice.
        """
        windowing = self.windowing(window, hop)
        if isinstance(audio, (str, Path, bytes)) and blocks.is_long(audio):  # bounded memory (issue 13)
            return blocks.score_in_blocks(self._scoring, audio, windowing, max_seconds, context=context)
        samples = to_audio(audio, sample_rate, max_seconds=max_seconds)
        mel = log_mel(samples, self.features)
        contexts = [context if self.features.normalisation == "speaker" else None]
        return self._scoring.timelines([mel], windowing, [self._seconds(samples)], contexts=contexts,
                                       audios=[samples])[0]

    def predict_arrays(self, audios: Sequence[np.ndarray], *, window: float | None = None,
                       hop: float | None = None) -> list[Timeline]:
        """A `Timeline` per decoded clip (16 kHz mono float32, as `emotionnet.audio.load_audio` gives),
        every clip its own context, all their windows scored in shared batches."""
        windowing = self.windowing(window, hop)
        mels = [log_mel(audio, self.features) for audio in audios]
        return self._scoring.timelines(mels, windowing, [self._seconds(audio) for audio in audios],
                                       audios=list(audios))

    def predict_log_mels(
        self, log_mels: Sequence[torch.Tensor], durations: Sequence[float] | None = None, *,
        window: float | None = None, hop: float | None = None,
        speakers: Sequence[str | None] | None = None, contexts: Sequence[BandStats | None] | None = None,
    ) -> list[Timeline]:
        """A `Timeline` per un-normalised log-mel (as `emotionnet.features.log_mel` and the feature cache give).

        `durations` (seconds, default: from the frame count); `speakers` (one key per log-mel,
        or None) marks clips of one speaker, which a `speaker`-normalised model then reads
        against each other; `contexts` gives each clip's statistics directly instead.
        """
        return self._scoring.timelines(list(log_mels), self.windowing(window, hop), durations, speakers, contexts)

    def score_log_mels(
        self, log_mels: Sequence[torch.Tensor], *, window: float | None = None, hop: float | None = None,
        speakers: Sequence[str | None] | None = None, contexts: Sequence[BandStats | None] | None = None,
    ) -> list[ScoredWindows]:
        """The raw material of `predict_log_mels` (same arguments): per log-mel, its windows' logits
        (before the temperature) and speech flags, for a caller that calibrates or averages them
        itself (`ScoredWindows.clip_probabilities(temperature)`)."""
        windowing = self.windowing(window, hop)
        if contexts is None:
            contexts = self._scoring.speaker_stats(log_mels, speakers)
        return self._scoring.score_windows(list(log_mels), windowing, contexts)

    def speaker_context(self, sources: Iterable[AudioSource], sample_rate: int | None = None) -> BandStats:
        """The statistics of one speaker's audio (files, bytes or arrays at `sample_rate`), for `context=`."""
        mels = [log_mel(to_audio(source, sample_rate), self.features) for source in sources]
        if not mels:
            raise ValueError("a speaker context needs at least one clip of the speaker")
        return band_stats(mels)

    def predict_files(
        self, paths: Iterable[str | Path | AudioInput], *, window: float | None = None, hop: float | None = None,
        batch_seconds: float = 120.0, max_seconds: float | None = None, same_speaker: bool = False,
    ) -> Iterator[FileResult]:
        """A `FileResult` per input, in order: its timeline, or the error of an input that could not be read.

        Inputs are paths, or `AudioInput`s (file bytes, arrays, remote readers, each with a name).
        Files are scored together in batches of about `batch_seconds` of audio, a failed batch
        item alone, a long file in blocks (`emotionnet.inference.many`: the loop the service and
        `emotionnet batch` use too). `same_speaker` says the files are one speaker's: a
        speaker-normalised model then reads each against all of them, so every file is loaded
        before any is scored. Window and hop are checked here, before any file is read.
        """
        return score_inputs(self._scoring, paths, self.windowing(window, hop), batch_seconds=batch_seconds,
                            max_seconds=max_seconds, same_speaker=same_speaker)

    def _seconds(self, samples: np.ndarray) -> float:
        return samples.size / self.features.sample_rate

    def windowing(self, window: float | None = None, hop: float | None = None,
                  longest: float | None = None) -> Windowing:
        """The one window rule (`ModelSpec.windowing`) for this model and backend, on every path in:
        the scoring below takes its frame counts and has no defaults of its own. `longest` caps the
        window (a live stream holds at most the model's own)."""
        windowing = self.spec.windowing(window, hop, MAX_WINDOW if longest is None else longest)
        if self.backend == "onnx" and windowing.frames != self.spec.frames(self.window):
            raise ValueError(f"window {windowing.seconds:g} s with the onnx backend: the ONNX network takes the "
                             f"model's own {self.window:g} s window (use the torch backend for another window)")
        return windowing



def _load_onnx_file(path: Path, backend: str | None) -> EmotionRecognizer:
    """A recognizer run entirely from an exported .onnx file (its metadata holds the model's description)."""
    if backend == "torch":
        raise ValueError(f"{path} is an ONNX file: it runs with the onnx backend (or pass the .safetensors file)")
    from emotionnet.inference.onnx_backend import read_onnx_file

    scorer, spec, metadata = read_onnx_file(path)
    recognizer = EmotionRecognizer.from_model(scorer, metadata, spec)
    recognizer.model_file, recognizer.backend = path, "onnx"
    return recognizer


def _load_whisper_base(backend: str) -> EmotionRecognizer:
    from emotionnet.extras import MissingExtraError
    from emotionnet.models.whisper.weights import weights_available

    if backend != "torch":
        from emotionnet.inference.onnx_backend import OnnxBackendError

        raise OnnxBackendError("whisper-base runs on the torch backend only (its encoder is not exported to ONNX)")
    if not weights_available():
        raise MissingExtraError("the whisper-base model", "the Whisper-base weights", "whisper")
    return EmotionRecognizer(whisper_base_model_path(), backend=backend)


# Model names -> how to load them (given the backend, "torch" or "onnx"). A new model
# family is one entry here.
MODELS: dict[str, Callable[[str], EmotionRecognizer]] = {
    DEFAULT_MODEL: lambda backend: EmotionRecognizer(default_model_path(), backend=backend),
    "whisper-base": _load_whisper_base,
}


def load_model(name_or_path: str | Path | None = None, backend: str | None = None) -> EmotionRecognizer:
    """A model by name (see `MODELS`: "default" is the shipped one), a .safetensors model file, or an
    .onnx file written by `emotionnet export` (run with onnxruntime).

    None: $EMOTIONNET_MODEL (a name or a file), else the shipped model. `backend` runs a
    .safetensors model's network with torch (the default) or onnxruntime.
    """
    chosen = name_or_path or os.environ.get(MODEL_ENV) or DEFAULT_MODEL
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
    if isinstance(chosen, str) and chosen in MODELS:
        return MODELS[chosen](backend or "torch")
    path = Path(chosen)
    if path.suffix.lower() == ".onnx":
        return _load_onnx_file(path, backend)
    if isinstance(chosen, str) and not path.suffix and len(path.parts) == 1 and not path.exists():
        raise UnknownModelError(f"unknown model {chosen!r}: the model names are {', '.join(MODELS)}; "
                                "or give a .safetensors or .onnx file")
    return EmotionRecognizer(path, backend=backend or "torch")
