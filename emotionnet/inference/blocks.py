"""Long recordings scored block by block, in memory that does not grow with their length.

A file decoded whole costs about 2 GB per hour of audio (the samples, the STFT,
every window at once); here it is read three times in blocks of
`BLOCK_SECONDS` instead, and at no point is more than a block of audio, a
block of log-mel frames and one batch of windows held, plus one level per
feature frame (16 kB per minute):

1. the level of every frame: the energy gate's reference is the loudest frame
   of the whole recording;
2. the windows, cut from a rolling buffer of frames and scored a batch at a time
   (each its own context, unless the caller gives a speaker's);
3. with silero-vad as the scorer's detector, its speech
   decisions, its state carried from block to block (a float per 32 ms).

The frames, windows and gate are those of the whole-file path
(`WindowScorer.timelines`), so both give the same timeline up to rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from emotionnet import vad
from emotionnet.audio import AudioLimits, audio_info, iter_audio_blocks
from emotionnet.features import BandStats, FeatureConfig, log_mel, model_input
from emotionnet.inference.results import Timeline
from emotionnet.inference.scoring import ScoredWindows, SpeakerContext, WindowScorer
from emotionnet.inference.windows import window_starts
from emotionnet.models.spec import Windowing

LONG_SECONDS = 120.0  # files longer than this are scored in blocks
BLOCK_SECONDS = 60.0
BATCH_WINDOWS = 8


def is_long(source: str | Path | bytes, max_seconds: float | None = None,
            limits: AudioLimits | None = None) -> bool:
    """Whether a file is long enough to be scored in blocks (its header says; bad files are not)."""
    try:
        return audio_info(source, limits=limits)[1] > LONG_SECONDS
    except ValueError:
        return False  # the whole-file path reports the problem


def mel_blocks(source: str | Path | bytes, config: FeatureConfig, max_seconds: float | None = None,
               limits: AudioLimits | None = None, block_seconds: float = BLOCK_SECONDS, name: str | None = None,
               ) -> Iterator[tuple[torch.Tensor, int, bool]]:
    """(log-mel frames, samples decoded so far, whether any of them was not zero) per block: the
    frames of `log_mel` on the whole file.

    Frame k spans samples [k * hop, k * hop + n_fft); the samples a block's last
    frames have not used yet are carried into the next block.
    """
    span = max(config.n_fft, config.win_length)
    carry = np.zeros(0, np.float32)
    samples, audible = 0, False
    for block in iter_audio_blocks(source, max_seconds=max_seconds, name=name, limits=limits,
                                   block_seconds=block_seconds):
        samples += block.size
        audible = audible or bool(np.any(block))
        buffer = np.concatenate([carry, block]) if carry.size else block
        frames = config.frames_of_samples(buffer.size)
        if frames == 0:
            carry = buffer
            continue
        yield log_mel(buffer[:(frames - 1) * config.hop_length + span], config), samples, audible
        carry = buffer[frames * config.hop_length:]


def _detector_frames(source, decode: dict, n_frames: int, detector: str,
                     features: FeatureConfig) -> torch.Tensor | None:
    """The speech frames by silero-vad, read block by block; None when the energy gate is the detector."""
    if detector != "silero":
        return None
    stream = vad.SileroStream()
    for block in iter_audio_blocks(source, **decode):
        stream.feed(block)
    return vad.frames_from_chunks(stream.finish(), n_frames, features)


def _frame_levels(source, config: FeatureConfig, decode: dict) -> tuple[torch.Tensor, int, bool]:
    """Every frame's level, the samples decoded, and whether any sample was not zero.

    The levels go into one tensor sized from the header up front: small tensors kept
    alive between the blocks' large temporary ones would pin the heap (glibc cannot
    give back memory below a live allocation), and RSS grew by 3 MB per minute of audio.
    """
    _, seconds = audio_info(source, name=decode["name"], limits=decode["limits"])
    level = torch.empty(config.frames_of_samples(int(seconds * config.sample_rate)) + 1)
    filled, samples, audible = 0, 0, False
    for mel, decoded, heard in mel_blocks(source, config, **decode):
        samples, audible = decoded, heard
        new = vad.frame_levels(mel)
        if filled + new.numel() > level.numel():  # a header that understated the length
            level = torch.cat([level[:filled], torch.empty(filled + 2 * new.numel())])
        level[filled:filled + new.numel()] = new
        filled += new.numel()
    return level[:filled].clone(), samples, audible


def score_in_blocks(scoring: WindowScorer, source: str | Path | bytes, windowing: Windowing,
                    max_seconds: float | None = None, limits: AudioLimits | None = None,
                    block_seconds: float = BLOCK_SECONDS, context: SpeakerContext | None = None,
                    name: str | None = None) -> Timeline:
    """The timeline of a long file, as `EmotionRecognizer.predict_timeline` gives it, in bounded memory.

    `context` (a speaker's statistics) stands in for each window's own, as there. `windowing`
    comes from the one window rule (`ModelSpec.windowing`), applied by the recognizer. `name` is
    what errors call the input (default: its path, or "<bytes>").
    """
    config = scoring.features
    decode = {"max_seconds": max_seconds, "limits": limits, "block_seconds": block_seconds, "name": name}
    frames = windowing.frames

    level, samples, audible = _frame_levels(source, config, decode)
    if not audible:  # digital silence: nothing for the model to hear
        return scoring.silent_timeline(level.numel(), samples / config.sample_rate, windowing)
    speech = vad.speech_frames(level)
    context = scoring.usable_context(context)
    stats = context if isinstance(context, BandStats) else None

    starts = window_starts(level.numel(), frames, windowing.hop_frames)
    buffer, buffer_start, next_window = torch.zeros(config.n_mels, 0), 0, 0
    pending, logits = [], []
    for mel, _, _ in mel_blocks(source, config, **decode):
        buffer = torch.cat([buffer, mel], dim=-1)
        while next_window < len(starts) and starts[next_window] + frames <= buffer_start + buffer.shape[-1]:
            s = starts[next_window] - buffer_start
            pending.append(model_input(buffer[:, s:s + frames].float(), config, frames, stats,
                                       scoring.spec.tiles_short_windows))
            next_window += 1
            if len(pending) == BATCH_WINDOWS:
                logits.append(scoring.logits(torch.stack(pending)))
                pending = []
        keep_from = starts[next_window] - buffer_start if next_window < len(starts) else buffer.shape[-1]
        buffer, buffer_start = buffer[:, keep_from:].clone(), buffer_start + keep_from
    if pending:
        logits.append(scoring.logits(torch.stack(pending)))
    detected = _detector_frames(source, decode, level.numel(), scoring.detector, config)
    speech = speech if detected is None else detected
    flags = [vad.is_speech(speech[s:s + frames]) for s in starts]
    scored = ScoredWindows(level.numel(), starts, flags, scoring.with_context(torch.cat(logits), context), speech)
    return scoring.timeline(scored, samples / config.sample_rate, windowing)
