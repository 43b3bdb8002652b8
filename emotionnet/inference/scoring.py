"""Scoring: a network and its spec turn un-normalised log-mels into window logits and timelines.

This is the engine under the public recognizer. Evaluation (which reads cached
features), training (validation and calibration of a model in memory) and the
live stream reach it through one public door, `LogMelScorer`
(`EmotionRecognizer.log_mel_scorer`). Long audio is cut into windows (a `Windowing`,
made by the one window rule at the entry point: nothing here re-defaults);
windows the speech detector judges to be non-speech get no emotion; a clip's
answer is the mean of its speech windows' calibrated probabilities.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from emotionnet import vad
from emotionnet.features import BandStats, FeatureConfig, band_stats
from emotionnet.inference.results import Prediction, ScoredWindows, Segment, Timeline
from emotionnet.inference.windows import cut_windows, window_logits, window_starts
from emotionnet.models.spec import ModelSpec, Windowing

Network = Callable[[torch.Tensor], torch.Tensor]  # (windows, mels, frames) -> logits


@dataclass(frozen=True)
class HeadContext:
    """A speaker's context for a network that reads one itself (its `reads_context` is true: the
    whisper stats head with a `context_alpha`): the mean of its `context_summary` over the speaker's
    windows, which `context_offset` turns into what comes off each window's logits."""

    mean: torch.Tensor
    windows: int


SpeakerContext = BandStats | HeadContext  # what `context=` takes: band statistics, or a head's context


class WindowScorer:
    """A network (torch module or ONNX session) with the spec that says how it hears, and the speech
    detector that judges its windows' audio (`vad.detector_name`: "silero" or "energy")."""

    def __init__(self, network: Network, spec: ModelSpec, detector: str = "energy"):
        self.network = network
        self.spec = spec
        self.detector = detector

    @property
    def features(self) -> FeatureConfig:
        return self.spec.features

    @property
    def reads_context(self) -> bool:
        """Whether a speaker's context changes this model's answers: a `speaker`-normalised front end
        (band statistics), or a network that reads a context itself (`HeadContext`)."""
        return self.features.normalisation == "speaker" or self._network_reads_context

    @property
    def _network_reads_context(self) -> bool:
        return bool(getattr(self.network, "reads_context", False))

    def speaker_stats(
        self, mels: Sequence[torch.Tensor], speakers: Sequence[str | None] | None, windowing: Windowing | None = None,
    ) -> list[SpeakerContext | None]:
        """Each clip's context: what `context_of` makes of all its speaker's clips.

        None (a clip without a speaker key, or a model no context changes) leaves the clip to be
        its own context. `windowing` (how the clips will be scored) is needed by a network that
        reads a context itself: its context is the mean over the speaker's windows.
        """
        return self._speaker_contexts(mels, speakers, windowing)[0]

    def _speaker_contexts(
        self, mels: Sequence[torch.Tensor], speakers: Sequence[str | None] | None, windowing: Windowing | None,
    ) -> tuple[list[SpeakerContext | None], list[torch.Tensor] | None]:
        """`speaker_stats`, and for a network that reads a context itself each clip's window summaries
        too, from which `score_windows` takes the logits: every window is encoded once."""
        if speakers is None or not self.reads_context:
            return [None] * len(mels), None
        if not self._network_reads_context:
            groups: dict[str, list] = defaultdict(list)
            for mel, speaker in zip(mels, speakers):
                if speaker is not None:
                    groups[speaker].append(mel)
            pooled = {speaker: band_stats(group) for speaker, group in groups.items()}
            return [None if speaker is None else pooled[speaker] for speaker in speakers], None
        summaries = [self._window_summaries(mel, windowing) for mel in mels]
        groups = defaultdict(list)
        for summary, speaker in zip(summaries, speakers):
            if speaker is not None:
                groups[speaker].append(summary)
        pooled = {speaker: self._head_context(group) for speaker, group in groups.items()}
        return [None if speaker is None else pooled[speaker] for speaker in speakers], summaries

    def context_of(self, mels: Sequence[torch.Tensor], windowing: Windowing | None = None) -> SpeakerContext:
        """One speaker's context from the un-normalised log-mels of their audio: the mean of the
        network's `context_summary` over their windows (cut by `windowing`) for a network that
        reads one itself, else the pooled band statistics of the speech."""
        if not self._network_reads_context:
            return band_stats(mels)
        return self._head_context([self._window_summaries(mel, windowing) for mel in mels])

    def _window_summaries(self, mel: torch.Tensor, windowing: Windowing | None) -> torch.Tensor:
        """(windows, summary) the network's `context_summary` of a log-mel's windows, cut as scoring cuts them."""
        if windowing is None:
            raise ValueError("a speaker context for this model needs the windowing its clips are scored with")
        windows, _ = cut_windows(torch.as_tensor(mel).float(), windowing.frames, windowing.hop_frames,
                                 self.features, None, self.spec.tiles_short_windows)
        with torch.inference_mode():
            return torch.cat([self.network.context_summary(windows[i:i + 8]) for i in range(0, len(windows), 8)])

    @staticmethod
    def _head_context(summaries: Sequence[torch.Tensor]) -> HeadContext:
        windows = torch.cat(list(summaries))
        return HeadContext(windows.mean(dim=0), len(windows))

    def usable_context(self, context: SpeakerContext | None) -> SpeakerContext | None:
        """`context` if it changes this model's answers, None if it does not; ValueError (one line) for a
        head's context given to a model whose network does not read it, or one of another width."""
        if isinstance(context, HeadContext):
            if not self._network_reads_context:
                raise ValueError("this speaker context is a whisper head's and this model reads none of that kind; "
                                 "make the context with this model's speaker_context")
            if context.mean.shape != self.network.context_summary_shape:
                raise ValueError(f"this speaker context holds {tuple(context.mean.shape)} statistics; this model "
                                 f"reads {tuple(self.network.context_summary_shape)}: make it with this model's "
                                 f"speaker_context")
            return context
        if context is not None and self.features.normalisation == "speaker":
            return context
        return None

    def with_context(self, logits: torch.Tensor, context: SpeakerContext | None) -> torch.Tensor:
        """Window logits (of `logits`) read against a `HeadContext`; any other context already was, in the windows."""
        if not isinstance(context, HeadContext):
            return logits
        with torch.inference_mode():
            offset = self.network.context_offset(context.mean)
        return logits - (offset if self.spec.answer_index is None else offset[self.spec.answer_index])

    def logits(self, windows: torch.Tensor) -> torch.Tensor:
        """(windows, classes answered) logits of model inputs: outputs the model does not answer
        with (`ModelSpec.answers`) are left out before any softmax."""
        logits = window_logits(self.network, windows)
        return logits if self.spec.answer_index is None else logits[:, self.spec.answer_index]

    def score_windows(
        self, mels: list[torch.Tensor], windowing: Windowing,
        contexts: Sequence[SpeakerContext | None] | None = None,
        masks: Sequence[torch.Tensor | None] | None = None,
        summaries: Sequence[torch.Tensor] | None = None,
    ) -> list[ScoredWindows]:
        """Raw window logits of many log-mels, scored in shared batches, with speech flags.

        `windowing` comes from the one window rule (`ModelSpec.windowing`, applied by the
        recognizer or the live engine). `contexts` hold each log-mel's speaker statistics (see
        `speaker_stats`); `masks` each one's speech frames by the scorer's detector
        (`vad.detector_frames`; None: the energy gate on the log-mel); `summaries` each one's
        windows' `context_summary`, already worked out for their context (`_speaker_contexts`),
        which the network's `summary_logits` then reads instead of encoding the windows again.
        """
        frames = windowing.frames
        contexts = [self.usable_context(c) for c in contexts or [None] * len(mels)]
        inputs, scored = [], []
        for mel, context, mask in zip(mels, contexts, masks or [None] * len(mels)):
            mel = torch.as_tensor(mel).float()
            stats = context if isinstance(context, BandStats) else None
            windows, starts = cut_windows(mel, frames, windowing.hop_frames, self.features, stats,
                                          self.spec.tiles_short_windows)
            speech_mask = vad.speech_frames(vad.frame_levels(mel)) if mask is None else mask
            speech = [vad.is_speech(speech_mask[s:s + frames]) for s in starts]
            inputs.append(windows)
            scored.append(ScoredWindows(mel.shape[-1], starts, speech, torch.empty(0), speech_mask))
        if summaries is None:
            logits = self.logits(torch.cat(inputs))
        else:
            with torch.inference_mode():
                logits = self.network.summary_logits(torch.cat(list(summaries)))
            logits = logits if self.spec.answer_index is None else logits[:, self.spec.answer_index]
        for item, part, context in zip(scored, torch.split(logits, [len(w) for w in inputs]), contexts):
            item.logits = self.with_context(part, context)
        return scored

    def timelines(
        self, mels: list[torch.Tensor], windowing: Windowing, durations: list[float] | None = None,
        speakers: Sequence[str | None] | None = None, contexts: Sequence[SpeakerContext | None] | None = None,
        audios: Sequence | None = None,
    ) -> list[Timeline]:
        """Timelines from un-normalised log-mels (as the feature cache holds them).

        `speakers` (one key per log-mel, or None) marks clips of one speaker, which a
        `speaker`-normalised model then reads against each other; `contexts` gives the
        statistics directly instead. `audios` (the 16 kHz samples of each log-mel) let the
        scorer's detector judge speech; without them, the energy gate does.
        """
        step = self.spec.frame_seconds
        summaries = None
        if contexts is None:
            contexts, summaries = self._speaker_contexts(mels, speakers, windowing)
        durations = list(durations) if durations else [mel.shape[-1] * step for mel in mels]
        # Digital silence (every sample zero) holds nothing to hear: it is never shown to the model.
        heard = [i for i in range(len(mels)) if not audios or np.any(audios[i])]
        masks = ([vad.detector_frames(audios[i], mels[i].shape[-1], self.detector, self.features) for i in heard]
                 if audios else None)
        scored = self.score_windows([mels[i] for i in heard], windowing, [contexts[i] for i in heard], masks,
                                    None if summaries is None else [summaries[i] for i in heard]) if heard else []
        answers = dict(zip(heard, scored))
        return [self.timeline(answers[i], durations[i], windowing) if i in answers
                else self.silent_timeline(mel.shape[-1], durations[i], windowing) for i, mel in enumerate(mels)]

    def silent_timeline(self, n_frames: int, duration: float, windowing: Windowing) -> Timeline:
        """The timeline of digital silence: its windows, none holding speech, and no guess."""
        starts = window_starts(n_frames, windowing.frames, windowing.hop_frames)
        segments = [Segment(*self._span(s, duration, windowing), False, None) for s in starts]
        return Timeline(duration, Prediction.no_speech(), segments, False, [])

    def _span(self, start: int, duration: float, windowing: Windowing) -> tuple[float, float]:
        """A window's (start, end) in seconds, in whole milliseconds: 0.41, not 0.41000000000000003."""
        seconds = start * self.spec.frame_seconds
        return round(seconds, 3), round(min(duration, seconds + windowing.seconds), 3)

    def timeline(self, scored: ScoredWindows, duration: float, windowing: Windowing) -> Timeline:
        """The timeline of one clip's scored windows."""
        temperature, labels = self.spec.temperature, self.spec.answer_labels
        probs = scored.window_probabilities(temperature)
        segments = [Segment(*self._span(s, duration, windowing), sp,
                            Prediction.from_probabilities(p, labels=labels) if sp else None)
                    for s, sp, p in zip(scored.starts, scored.speech, probs)]
        speech = vad.has_speech(scored.speech)
        overall = Prediction.from_probabilities(scored.clip_probabilities(temperature), speech, labels)
        runs = None if scored.speech_frames is None else vad.speech_runs(scored.speech_frames, self.spec.frame_seconds)
        return Timeline(duration, overall, segments, speech, runs)


class LogMelScorer:
    """The one public way to score un-normalised log-mels (as `emotionnet.features.log_mel` and the feature
    cache give them): evaluation, training, distillation and the live engine reach window scores here.

        scorer = recognizer.log_mel_scorer()         # the model's window and hop, by the one window rule
        scorer.timelines(mels, speakers=keys)        # a Timeline per log-mel, as `predict_timeline` gives
        scorer.scores(mels)                          # per log-mel: its windows' logits and speech flags

    `speakers` (one key per log-mel, or None) marks clips of one speaker, which a model that reads a
    speaker's context (`reads_context`) then reads against each other; `contexts` gives each clip's
    context directly instead (`EmotionRecognizer.speaker_context`).
    Speech is judged by the energy gate on the log-mel (there is no audio here for silero-vad).
    """

    def __init__(self, scoring: WindowScorer, windowing: Windowing):
        """`windowing` comes from the one window rule (`EmotionRecognizer.log_mel_scorer` applies it)."""
        self._scoring = scoring
        self.windowing = windowing

    def scores(self, log_mels: Sequence[torch.Tensor], *, speakers: Sequence[str | None] | None = None,
               contexts: Sequence[SpeakerContext | None] | None = None) -> list[ScoredWindows]:
        """Per log-mel, its windows' logits (before the temperature) and speech flags, for a caller that
        calibrates or averages them itself (`ScoredWindows.clip_probabilities(temperature)`)."""
        mels, summaries = list(log_mels), None
        if contexts is None:
            contexts, summaries = self._scoring._speaker_contexts(mels, speakers, self.windowing)
        return self._scoring.score_windows(mels, self.windowing, contexts, summaries=summaries)

    def timelines(self, log_mels: Sequence[torch.Tensor], durations: Sequence[float] | None = None, *,
                  speakers: Sequence[str | None] | None = None,
                  contexts: Sequence[SpeakerContext | None] | None = None) -> list[Timeline]:
        """A `Timeline` per log-mel: the windows' answers and the clip's; `durations` in seconds (default:
        from the frame count)."""
        return self._scoring.timelines(list(log_mels), self.windowing, durations, speakers, contexts)
