"""What the web app shows, without Streamlit: analyse audio bytes, export, draw.

Kept apart from the page so it can be tested and reused: `analyse` turns an
upload or a browser recording into an `Analysis` (timeline, overall answer,
log-mel); `to_csv`/`to_json` are the downloads; the charts are plain
Vega-Lite specs (drawn by the browser, so they cost the server nothing) and
the spectrogram a PNG from a matplotlib `Figure` (no pyplot state, safe in a
multi-session server).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

import numpy as np

from emotionnet.audio import AudioError, load_audio
from emotionnet.features import log_mel
from emotionnet.inference.recognizer import EmotionRecognizer, Timeline
from emotionnet.inference.summary import STRONGEST, SUMMARY_SECONDS, Summary  # noqa: F401 (the app's names)
from emotionnet.inference.summary import spans as timeline_spans
from emotionnet.inference.summary import summarise as summarise_timeline
from emotionnet.labels import LABELS
from emotionnet.models.names import display_name

MAX_SECONDS = 600.0  # uploads and recordings longer than this are refused with a message
MAX_UPLOAD_MB = 50  # the app's own upload limit (Streamlit's default is 200 MB); 10 min of 48 kHz stereo WAV fit

COLOURS = {  # one colour per emotion, shared by every chart
    "angry": "#d62728", "disgust": "#2ca02c", "fear": "#9467bd",
    "happy": "#f2b701", "neutral": "#7f9fbf", "sad": "#1f77b4",
}
NON_SPEECH = "#d9d9d9"
NO_SPEECH = "no speech"


def model_choices(started_with: str | None) -> list[str]:
    """The voice models the page offers: the one it was started with (None: the default) first, then the
    named voice models whose family has what it needs installed (the face model is not one)."""
    from emotionnet.models.file import read_model_spec
    from emotionnet.models.names import DEFAULT_MODEL, available_models
    from emotionnet.models.names import model_path as shipped_path
    from emotionnet.models.registry import family_of

    installed = [name for name in available_models()
                 if (family := family_of(read_model_spec(shipped_path(name)))).hears_audio and family.ready()]
    return list(dict.fromkeys([started_with or DEFAULT_MODEL, *installed]))


@dataclass
class Analysis:
    name: str
    duration: float
    timeline: Timeline
    log_mel: np.ndarray  # (n_mels, frames), un-normalised
    frame_seconds: float
    model: str
    window: float  # seconds per timeline window

    @property
    def prediction(self):
        return self.timeline.prediction

    def probability_rows(self) -> list[dict]:
        """Rows for the probability chart, in label order: the answer's, or without speech the guess's
        (none for digital silence, which the model is not asked about)."""
        answer = self.prediction.most_likely
        return [{"emotion": label, "probability": answer.probabilities[label]} for label in LABELS] if answer else []

    def to_dict(self) -> dict:
        data = {"name": self.name, "model": self.model, "duration": round(self.duration, 3),
                **self.prediction.to_dict()}
        data["segments"] = [s.to_dict() for s in self.timeline.segments]
        return data


def analyse(recognizer: EmotionRecognizer, data: bytes, name: str = "audio",
            max_seconds: float = MAX_SECONDS, model: str | None = None) -> Analysis:
    """Decode audio bytes (any format libsndfile reads) and predict its timeline.

    `model` is the name the page chose the model by (its selector's); without one, the model file's name.

    Raises `AudioError` with a message for people (unreadable, empty, too short, too long).
    The timeline is `predict_timeline`'s (long recordings scored in blocks, as `predict` does);
    the decoded audio is kept for the spectrogram only.
    """
    samples = load_audio(data, max_seconds=max_seconds, name=name)  # errors name the upload
    mel = log_mel(samples, recognizer.features)
    timeline = recognizer.predict_timeline(data, max_seconds=max_seconds)
    answer = timeline.prediction.most_likely
    if answer and not np.all(np.isfinite(list(answer.probabilities.values()))):  # never "nan%" on the page
        raise ValueError(f"{name}: the model answered NaN (a damaged model file?)")
    model = model or display_name(recognizer.model_file)
    return Analysis(name, timeline.duration, timeline, mel.numpy(), recognizer.spec.frame_seconds, model,
                    recognizer.window)


def check_upload(size: int, name: str) -> None:
    """Refuse an upload over MAX_UPLOAD_MB before anything decodes it."""
    if size > MAX_UPLOAD_MB * 2**20:
        raise AudioError(f"{name}: too large ({size / 2**20:.0f} MB; the limit is {MAX_UPLOAD_MB} MB)")


def moment_rows(summary: Summary) -> list[dict]:
    """The "Strongest moments" table: times as text with one decimal each (204.0, not 204 beside 169.5)."""
    return [{"start (s)": f"{a:.1f}", "end (s)": f"{b:.1f}", "emotion": e, "confidence": f"{c:.0%}"}
            for a, b, e, c in summary.strongest]


def summarise(analysis: Analysis, strongest: int = STRONGEST) -> Summary:
    """Each emotion's share of the speech time and the strongest moments (see inference/summary.py)."""
    return summarise_timeline(analysis.timeline, strongest)


def release_memory() -> None:
    """Hand freed memory back to the system after a large analysis (glibc keeps it otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def warm_up(recognizer: EmotionRecognizer) -> None:
    """Run the whole analysis once on a generated tone, so the first real one is quick
    (imports, allocator and kernel caches are warm)."""
    import soundfile

    t = np.arange(16_000) / 16_000
    tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    out = io.BytesIO()
    soundfile.write(out, tone, 16_000, format="WAV")
    result = analyse(recognizer, out.getvalue(), "warm-up")
    json.dumps([probability_spec(result), timeline_spec(result)])
    spectrogram_png(result)


def to_json(analysis: Analysis) -> str:
    return json.dumps(analysis.to_dict(), indent=2)


def to_csv(analysis: Analysis) -> str:
    """One row per window: start, end, speech, emotion, confidence, a column per label."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["start", "end", "speech", "emotion", "confidence", *LABELS])
    for segment in analysis.timeline.segments:
        p = segment.prediction
        writer.writerow([f"{segment.start:.3f}", f"{segment.end:.3f}", segment.speech,
                         p.emotion if p else "", f"{p.confidence:.4f}" if p else "",
                         *([f"{p.probabilities[label]:.4f}" for label in LABELS] if p else [""] * len(LABELS))])
    return out.getvalue()


def spans(analysis: Analysis) -> list[tuple[float, float, str | None]]:
    """The timeline as non-overlapping spans `(start, end, emotion or None)` (see inference/summary.py)."""
    return timeline_spans(analysis.timeline)


def timeline_tables(analysis: Analysis) -> tuple[list[dict], list[dict]]:
    """The timeline chart's data: `(spans, curves)`, lists of rows.

    spans: start, end, emotion ("no speech" where none), confidence (None there);
    curves: time (window centre), emotion, probability, run (a run of consecutive
    speech windows, so the lines break over non-speech).
    """
    spans_rows = [{"start": round(a, 3), "end": round(b, 3), "emotion": emotion or NO_SPEECH,
                   "confidence": round(s.prediction.confidence, 4) if s.prediction else None}
                  for (a, b, emotion), s in zip(spans(analysis), analysis.timeline.segments)]
    curves, run, previous = [], 0, True
    for s in analysis.timeline.segments:
        if s.prediction is None:
            previous = False
            continue
        run += not previous
        previous = True
        centre = round((s.start + s.end) / 2, 3)
        curves += [{"time": centre, "emotion": label, "probability": round(p, 4), "run": run}
                   for label, p in s.prediction.probabilities.items()]
    return spans_rows, curves


COLOUR_SCALE = {"domain": [*LABELS, NO_SPEECH], "range": [*(COLOURS[label] for label in LABELS), NON_SPEECH]}


def probability_spec(analysis: Analysis) -> dict:
    """Vega-Lite bars, one per emotion in label order, in the emotions' colours."""
    return bars_spec(analysis.probability_rows())


def bars_spec(rows: list[dict]) -> dict:
    """Vega-Lite bars of `{"emotion", "probability"}` rows, in label order and the emotions' colours."""
    return {
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                  "axis": {"format": "%"}},
            "y": {"field": "emotion", "type": "nominal", "sort": list(LABELS), "title": None},
            "color": {"field": "emotion", "type": "nominal", "scale": COLOUR_SCALE, "legend": None},
            "tooltip": [{"field": "emotion", "type": "nominal"},
                        {"field": "probability", "type": "quantitative", "format": ".1%"}],
        },
        "height": 200,
    }


def share_spec(summary: Summary) -> dict:
    """Vega-Lite bars: each emotion's share of a long recording's speech time."""
    rows = [{"emotion": label, "share": summary.shares[label]} for label in LABELS]
    return {
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "encoding": {
            "x": {"field": "share", "type": "quantitative", "scale": {"domain": [0, 1]},
                  "axis": {"format": "%"}, "title": "share of the speech time"},
            "y": {"field": "emotion", "type": "nominal", "sort": list(LABELS), "title": None},
            "color": {"field": "emotion", "type": "nominal", "scale": COLOUR_SCALE, "legend": None},
            "tooltip": [{"field": "emotion", "type": "nominal"},
                        {"field": "share", "type": "quantitative", "format": ".0%"}],
        },
        "height": 200,
    }


def timeline_spec(analysis: Analysis) -> dict:
    """Vega-Lite: each emotion's probability over time (grey where there is no speech),
    above a strip of the winning emotion. Plain JSON: the browser draws it."""
    spans_table, curves = timeline_tables(analysis)
    domain = {"domain": [0, round(analysis.duration, 3)]}
    gaps = [row for row in spans_table if row["emotion"] == NO_SPEECH]
    top = {
        "height": 180,
        "layer": [
            {"data": {"values": gaps},
             "mark": {"type": "rect", "color": NON_SPEECH, "opacity": 0.5},
             "encoding": {"x": {"field": "start", "type": "quantitative", "scale": domain, "title": None},
                          "x2": {"field": "end"}}},
            {"data": {"values": curves},
             "mark": {"type": "line", "point": True},
             "encoding": {
                 "x": {"field": "time", "type": "quantitative", "scale": domain, "title": None},
                 "y": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]}},
                 "color": {"field": "emotion", "type": "nominal", "scale": COLOUR_SCALE,
                           "legend": {"orient": "bottom", "title": None}},
                 "detail": {"field": "run", "type": "nominal"},
                 "tooltip": [{"field": "time", "type": "quantitative"}, {"field": "emotion", "type": "nominal"},
                             {"field": "probability", "type": "quantitative", "format": ".0%"}]}},
        ],
    }
    strip = {
        "height": 28,
        "data": {"values": spans_table},
        "mark": {"type": "rect"},
        "encoding": {
            "x": {"field": "start", "type": "quantitative", "scale": domain, "title": "time (s)"},
            "x2": {"field": "end"},
            "color": {"field": "emotion", "type": "nominal", "scale": COLOUR_SCALE},
            "tooltip": [{"field": "start", "type": "quantitative"}, {"field": "end", "type": "quantitative"},
                        {"field": "emotion", "type": "nominal"},
                        {"field": "confidence", "type": "quantitative", "format": ".0%"}]},
    }
    top["width"] = strip["width"] = "container"
    # "fit-x" with the padding contained: axes and legend inside the column, not 60 px past it
    return {"vconcat": [top, strip], "resolve": {"scale": {"color": "shared"}},
            "autosize": {"type": "fit-x", "contains": "padding"}}


def spectrogram_png(analysis: Analysis, dpi: int = 110) -> bytes:
    """The log-mel spectrogram as a PNG (rendered at a modest resolution: it is quick)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.6), layout="constrained")
    ax = fig.subplots()
    mel = analysis.log_mel
    image = ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
                      extent=(0, mel.shape[1] * analysis.frame_seconds, 0, mel.shape[0]))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mel band")
    fig.colorbar(image, ax=ax, label="log power")
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi)
    return out.getvalue()


# Faces and video: the same answers as `emotionnet predict` gives for an image or a video file.

def face_rows(probabilities: dict[str, float]) -> list[dict]:
    """Rows for `bars_spec` from one face's (or one answer's) probabilities, in label order."""
    return [{"emotion": label, "probability": probabilities[label]} for label in LABELS if label in probabilities]


def faces_png(data: bytes, prediction) -> bytes:
    """The picture with each face's box and emotion drawn on it (largest face first, numbered), as PNG.

    `data` is a picture the face model has read already (a bad one raised ImageError there); it is turned
    upright by its EXIF orientation as the model's reader turns it, so the boxes sit on the same pixels."""
    from PIL import Image, ImageDraw, ImageOps

    with Image.open(io.BytesIO(data)) as image:
        picture = ImageOps.exif_transpose(image).convert("RGB")
    draw = ImageDraw.Draw(picture)
    line = max(2, round(min(picture.size) / 150))  # visible on a phone photo and on a 48x48 crop alike
    for number, face in enumerate(prediction.faces, 1):
        x, y, w, h = face.box
        colour = COLOURS.get(face.emotion, "#ffffff")
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=line)
        label = f"{number}: {face.emotion} {face.confidence:.0%}"
        left, top, right, bottom = draw.textbbox((x, y), label)
        lift = bottom - top + 2 * line
        text_y = y - lift if y >= lift else y + h  # above the box, or below it at the picture's top edge
        draw.rectangle([x, text_y, x + (right - left) + 2 * line, text_y + lift], fill=colour)
        draw.text((x + line, text_y + line), label, fill="#000000")
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def video_rows(video: dict) -> list[dict]:
    """The video timeline's three tracks as table rows: each window's fused, voice and face answer."""
    def answer(part: dict | None, absent: str) -> str:
        if not part or part.get("emotion") is None:
            return absent
        return f"{part['emotion']} {part['confidence']:.0%}"

    return [{"start (s)": f"{s['start']:.1f}", "end (s)": f"{s['end']:.1f}",  # as moment_rows: one decimal each
             "voice and face": answer(s, "-"), "voice": answer(s.get("voice"), "no speech"),
             "face": answer(s.get("face"), "no face")} for s in video["segments"]]
