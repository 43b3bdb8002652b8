"""EmotionRecognizer: the public way to load a model once and call it on audio.

    recognizer = load_model()                      # the model shipped in the package (available_models())
    recognizer = load_model("model.onnx")          # a model name, a .safetensors file or an exported .onnx file
    recognizer.predict("clip.wav").emotion         # 'angry'
    recognizer.predict_timeline(array, 48000)      # windows over a long recording
    for result in recognizer.predict_files(paths): # many files in shared batches
        print(result.path, result.timeline or result.error)
    recognizer.predict_arrays([a, b])              # decoded 16 kHz clips, scored in shared batches
    recognizer.log_mel_scorer().timelines(mels)    # un-normalised log-mels, as the feature cache holds them

A model that reads a speaker's context (`reads_context`: a speaker-normalised CRNN, or
whisper-base with a `context_alpha`) hears a clip against the same speaker's other
audio: pass `context=recognizer.speaker_context([...])` to `predict`/`predict_timeline`,
or `same_speaker=True` to `predict_files`. Without one every clip is its own context.
The recognizer is the only way into a model: the scoring under it (windows,
energy gate, calibration: `inference/scoring.py`) is private to `inference/`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from emotionnet.audio import AudioSource, to_audio
from emotionnet.features import FeatureConfig, log_mel
from emotionnet.inference import blocks
from emotionnet.inference.many import AudioInput, score_inputs
from emotionnet.inference.results import FileResult, Prediction, Timeline
from emotionnet.inference.scoring import LogMelScorer, SpeakerContext, WindowScorer
from emotionnet.models.family import AUDIO, LoadOptions
from emotionnet.models.file import ModelFileError, load_model_file, read_model_spec
from emotionnet.models.names import DEFAULT_MODEL, available_models, is_model_name, model_path
from emotionnet.models.registry import family_of
from emotionnet.models.spec import MAX_WINDOW, ModelSpec, Windowing

BACKENDS = ("torch", "onnx")


class UnknownModelError(ModelFileError):
    """A model name that is not in `available_models()` (and not a file)."""


def default_model_path() -> Path:
    """The model shipped inside the package that `load_model()` uses."""
    return model_path(DEFAULT_MODEL)


def resolve_model_path(path: str | Path | None = None) -> Path:
    """`path`, else the shipped model; a model name is its shipped file."""
    chosen = path or DEFAULT_MODEL
    return model_path(chosen) if is_model_name(chosen) else Path(chosen)


class EmotionRecognizer:
    """A trained model with its feature settings, window and calibration.

    Built from what it needs: a network (a torch module, or the onnxruntime scorer of the onnx
    backend) and the spec that says how it hears. `load_model` is the usual way in;
    `from_file`, `from_onnx` and `from_model` build one from a file or a model in memory.
    """

    modality = AUDIO  # what `predict` takes (a face model's recognizer takes images)

    def __init__(self, network: Callable[[torch.Tensor], torch.Tensor], spec: ModelSpec, *,
                 backend: str = "torch", vad: str = "auto", model_file: str | Path | None = None,
                 metadata: dict | None = None):
        """`vad`: the speech detector ("auto": silero-vad where installed, "silero", "energy");
        `model_file` and `metadata`: the file it came from and that file's whole JSON, if any."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
        self._scoring = WindowScorer(network, spec, vad_detector(vad))
        self.backend = backend
        self.model_file: Path | None = None if model_file is None else Path(model_file)
        self.metadata: dict = spec.to_metadata() if metadata is None else metadata

    @classmethod
    def from_file(cls, model_file: str | Path | None = None, backend: str = "torch", *, vad: str = "auto",
                  compute_type: str = "auto", encoder_weights: str | Path | None = None,
                  cache_dir: str | Path | None = None) -> EmotionRecognizer:
        """A .safetensors model file (default: the shipped model); see `load_model` for the options."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
        vad_detector(vad)  # a bad choice is refused before the model is read
        path = resolve_model_path(model_file)
        if backend == "onnx":
            cls._refuse_onnx(path)
        model, spec, metadata = load_model_file(path, LoadOptions(encoder_weights=encoder_weights,
                                                                  compute_type=compute_type))
        if backend == "onnx":
            from emotionnet.inference.onnx_backend import onnx_scorer

            model = onnx_scorer(path, model, metadata, spec, cache_dir)
        return cls(model, spec, backend=backend, vad=vad, model_file=path, metadata=metadata)

    @classmethod
    def from_onnx(cls, path: str | Path, *, vad: str = "auto") -> EmotionRecognizer:
        """A recognizer run entirely from an exported .onnx file (its metadata holds the model's description)."""
        from emotionnet.inference.onnx_backend import read_onnx_file

        scorer, spec, metadata = read_onnx_file(Path(path))
        return cls(scorer, spec, backend="onnx", vad=vad, model_file=path, metadata=metadata)

    @staticmethod
    def _refuse_onnx(path: Path) -> None:
        """A family that is not exported to ONNX says so before anything heavy is loaded."""
        from emotionnet.inference.onnx_backend import check_exportable
        from emotionnet.models.file import read_model_spec

        check_exportable(read_model_spec(path))

    @classmethod
    def from_model(cls, model: torch.nn.Module, metadata: dict | ModelSpec,
                   spec: ModelSpec | None = None, *, vad: str = "auto") -> EmotionRecognizer:
        """Wrap a model in memory (during training, say) with its would-be file metadata or its spec.

        `spec`, when the caller has parsed `metadata` already, saves parsing it again.
        """
        if isinstance(metadata, ModelSpec):
            spec, metadata = metadata, metadata.to_metadata()
        return cls(model, spec or ModelSpec.from_metadata(metadata), vad=vad, metadata=metadata)

    @property
    def spec(self) -> ModelSpec:
        return self._scoring.spec

    @property
    def vad(self) -> str:
        """The speech detector that judges this recognizer's audio: "silero" or "energy"."""
        return self._scoring.detector

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
    def reads_context(self) -> bool:
        """Whether a speaker's context (`speaker_context`, `same_speaker`) changes this model's answers."""
        return self._scoring.reads_context

    @property
    def labels(self) -> tuple[str, ...]:
        """The emotions this model answers with (its file's; the six of `emotionnet.LABELS` for every shipped one)."""
        return self.spec.answer_labels

    def predict(
        self, audio: AudioSource, sample_rate: int | None = None, context: SpeakerContext | None = None
    ) -> Prediction:
        """The emotion of one clip (a path, file bytes, or an array with its sample rate)."""
        return self.predict_timeline(audio, sample_rate, context=context).prediction

    def predict_timeline(
        self, audio: AudioSource, sample_rate: int | None = None, *,
        window: float | None = None, hop: float | None = None, max_seconds: float | None = None,
        context: SpeakerContext | None = None,
    ) -> Timeline:
        """Emotion per window over time, plus the overall answer.

        `context` (from `speaker_context`) reads the clip against its speaker's voice.
        """
        windowing = self.windowing(window, hop)
        context = self._scoring.usable_context(context)
        if isinstance(audio, (str, Path, bytes)) and blocks.is_long(audio):  # bounded memory (issue 13)
            return blocks.score_in_blocks(self._scoring, audio, windowing, max_seconds, context=context)
        samples = to_audio(audio, sample_rate, max_seconds=max_seconds)
        mel = log_mel(samples, self.features)
        contexts = [context]
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

    def log_mel_scorer(self, window: float | None = None, hop: float | None = None) -> LogMelScorer:
        """The scorer of un-normalised log-mels (as `emotionnet.features.log_mel` and the feature cache
        give them) at this window and hop, checked here by the one window rule: the one way in for
        evaluation, training and the live engine (`scores` for window logits, `timelines` for answers)."""
        return LogMelScorer(self._scoring, self.windowing(window, hop))

    def speaker_context(self, sources: Iterable[AudioSource], sample_rate: int | None = None, *,
                        window: float | None = None, hop: float | None = None) -> SpeakerContext:
        """One speaker's context from their audio (files, bytes or arrays at `sample_rate`), for `context=`:
        the statistics of their speech, or (whisper-base) the mean of the head's statistics over their
        windows, cut as `predict` cuts them (`window`, `hop`: the model's unless given)."""
        mels = [log_mel(to_audio(source, sample_rate), self.features) for source in sources]
        if not mels:
            raise ValueError("a speaker context needs at least one clip of the speaker")
        return self._scoring.context_of(mels, self.windowing(window, hop))

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



def vad_detector(choice: str) -> str:
    """The speech detector a `vad=` choice means (auto: silero-vad where installed); ValueError naming the choices."""
    from emotionnet import vad

    return vad.detector_name(choice)


def load_model(name_or_path: str | Path | None = None, backend: str | None = None, *, vad: str = "auto",
               compute_type: str = "auto", threads: int | None = None,
               encoder_weights: str | Path | None = None, cache_dir: str | Path | None = None) -> EmotionRecognizer:
    """A model by name (`available_models()`; None: "whisper-base", the default; "fast": the CRNN), a
    .safetensors model file, or an .onnx file written by `emotionnet export` (run with onnxruntime).

    backend: "torch" (the default) or "onnx" runs a .safetensors model's network.
    vad: the speech detector: "auto" (silero-vad where installed), "silero" or "energy".
    compute_type: "auto", "float32" or "bfloat16" for a pretrained encoder's matrix products
      (the whisper family's; "auto": bfloat16 where the CPU has it natively).
    threads: torch's threads for this process (None: leave them as they are).
    encoder_weights: where a pretrained encoder's weights are (None: the installed weight packages).
    cache_dir: the cache folder, where `backend="onnx"` keeps its export (None: ~/.cache/emotionnet).
    The environment is read by the command line and the service, never here.
    A model whose family reads no audio is answered by that family's recognizer: `load_model("face")`
    gives a FaceRecognizer, whose `predict` takes images.
    """
    chosen = name_or_path or DEFAULT_MODEL
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose torch or onnx")
    detector = vad_detector(vad)
    if threads is not None:
        if not (isinstance(threads, int) and threads >= 1):
            raise ValueError(f"threads must be a whole number of at least 1, got {threads!r}")
        torch.set_num_threads(threads)
    options = {"vad": detector, "compute_type": compute_type, "encoder_weights": encoder_weights,
               "cache_dir": cache_dir}
    if is_model_name(chosen):
        path = model_path(chosen)
    else:
        path = Path(chosen)
        if path.suffix.lower() == ".onnx":
            if backend == "torch":
                raise ValueError(f"{path} is an ONNX file: it runs with the onnx backend (or pass the .safetensors file)")
            return EmotionRecognizer.from_onnx(path, vad=detector)
        if isinstance(chosen, str) and not path.suffix and len(path.parts) == 1 and not path.exists():
            raise UnknownModelError(f"unknown model {chosen!r}: the model names are "
                                    f"{', '.join(available_models())}; or give a .safetensors or .onnx file")
    family = family_of(read_model_spec(path)) if path.is_file() else None
    if family is not None and family.recognizer is not None:  # a model that reads no audio (the face model)
        if backend == "onnx":
            raise ValueError(f"{path.name}: a {family.name} model runs on the torch backend only "
                             f"({family.onnx_refusal})")
        load_options = LoadOptions(encoder_weights=encoder_weights, compute_type=compute_type)
        return family.recognizer(load_model_file(path, load_options), path, load_options, threads or 1)
    return EmotionRecognizer.from_file(path, backend=backend or "torch", **options)
