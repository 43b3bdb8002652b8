"""What a long recording held: each emotion's share of the speech time, and its strongest moments.

An average of the window probabilities over a long recording (the overall answer)
blurs many emotions into one weak one ("sad, 22 %"); the app and `emotionnet
predict` show this summary for long recordings instead of, or beside, it.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def summarise(timeline, strongest: int = STRONGEST) -> Summary:
    """Shares of the speech time per emotion (each moment counts for its nearest window) and the
    most confident speech windows: the strongest of each emotion first, so that one long
    stretch of anger does not fill the list, then the next strongest overall."""
    seconds = dict.fromkeys(timeline.prediction.probabilities, 0.0)  # the model's labels
    for start, end, emotion in spans(timeline):
        if emotion:
            seconds[emotion] += end - start
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
