"""What a long recording held: each emotion's share of the speech time, and its strongest moments.

An average of the window probabilities over a long recording (the overall answer)
blurs many emotions into one weak one ("sad, 22 %"); the app and `emotionnet
predict` show this summary for long recordings instead of, or beside, it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotionnet.labels import LABELS

SUMMARY_SECONDS = 30.0  # recordings longer than this get a summary
STRONGEST = 5  # moments listed


@dataclass
class Summary:
    speech_seconds: float
    shares: dict[str, float]  # label -> share of the speech time where it was the top emotion
    strongest: list[tuple[float, float, str, float]]  # (start, end, emotion, confidence), most confident first

    @property
    def main_emotion(self) -> str | None:
        return max(self.shares, key=self.shares.get) if self.speech_seconds else None


def spans(timeline) -> list[tuple[float, float, str | None]]:
    """The timeline as non-overlapping spans `(start, end, emotion or None)`.

    Windows overlap, so each moment belongs to the window whose centre is nearest.
    """
    segments = timeline.segments
    centres = [(s.start + s.end) / 2 for s in segments]
    edges = [0.0] + [(a + b) / 2 for a, b in zip(centres, centres[1:])] + [timeline.duration]
    return [(edges[i], edges[i + 1], s.prediction.emotion if s.prediction else None)
            for i, s in enumerate(segments)]


def speech_before(runs: list[tuple[float, float]], times: np.ndarray) -> np.ndarray:
    """Seconds of speech (in sorted, disjoint `runs`) before each of `times`."""
    if not runs:
        return np.zeros(len(times))
    starts, ends = np.array(runs).T
    done = np.concatenate([[0.0], np.cumsum(ends - starts)])  # speech in the runs before run i
    i = np.searchsorted(starts, times, side="right") - 1  # the last run starting at or before t
    inside = np.where(i >= 0, np.minimum(times - starts[np.maximum(i, 0)], (ends - starts)[np.maximum(i, 0)]), 0.0)
    return np.where(i >= 0, done[np.maximum(i, 0)] + inside, 0.0)


def summarise(timeline, strongest: int = STRONGEST) -> Summary:
    """Shares of the speech time per emotion and the most confident speech windows: the strongest
    of each emotion first, so that one long stretch of anger does not fill the list, then the next
    strongest overall.

    Each moment counts for its nearest window, and only its speech counts: the speech detector's
    frames (`Timeline.speech_runs`), not whole windows, which would count the pauses around a
    little speech as speech (issue 31: "191 s of speech" in a file with at most 130 s of it).
    """
    # The model's labels (None: digital silence, no answer: the six as before)
    seconds = dict.fromkeys(timeline.prediction.most_likely.probabilities if timeline.prediction.most_likely
                            else LABELS, 0.0)
    parts = spans(timeline)
    edges = np.array([start for start, _, _ in parts] + [parts[-1][1]] if parts else [0.0])
    heard = np.diff(edges) if timeline.speech_runs is None else np.diff(speech_before(timeline.speech_runs, edges))
    for (_, _, emotion), speech in zip(parts, heard):
        if emotion:
            seconds[emotion] += float(speech)
    speech = sum(seconds.values())
    shares = {label: (t / speech if speech else 0.0) for label, t in seconds.items()}
    windows = sorted((s for s in timeline.segments if s.prediction), key=lambda s: s.prediction.confidence,
                     reverse=True)
    chosen, seen = [], set()
    for s in windows:
        if s.prediction.emotion not in seen:
            chosen.append(s)
            seen.add(s.prediction.emotion)
    taken = {id(s) for s in chosen}
    chosen += [s for s in windows if id(s) not in taken]
    moments = [(s.start, s.end, s.prediction.emotion, s.prediction.confidence) for s in chosen[:strongest]]
    return Summary(speech, shares, sorted(moments, key=lambda m: -m[3]))


def format_summary(summary: Summary) -> list[str]:
    """Text lines for a terminal."""
    shares = ", ".join(f"{label} {share:.0%}" for label, share in
                       sorted(summary.shares.items(), key=lambda item: -item[1]) if share > 0)
    lines = [f"share of the {summary.speech_seconds:.0f} s of speech: {shares}", "strongest moments:"]
    lines += [f"  {a:7.2f} - {b:7.2f} s  {e:<8} {c:.2f}" for a, b, e, c in summary.strongest]
    return lines
