"""`emotionnet predict`: the emotion of audio files, with a timeline for long ones."""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path

from emotionnet.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    CLIError,
    add_command,
    add_model_option,
    report_failure,
)
from emotionnet.labels import LABELS

EXAMPLES = """  emotionnet predict speech.wav                        emotion, confidence and a bar per class
  emotionnet predict a.wav b.flac talk.mp3             several files, scored in shared batches
  emotionnet predict recordings/ --json > out.jsonl    one JSON line per audio file under a folder
  emotionnet predict interview.wav --window 4 --hop 2  a timeline over a long recording
  emotionnet predict photo.jpg                         each face's box and emotion (JPEG, PNG, WebP)
  emotionnet predict talk.mp4                          voice, face and both together, over time
  emotionnet predict clip.wav --model my.safetensors --backend onnx
  emotionnet predict clip.wav --model model.onnx       the ONNX file 'emotionnet export' wrote
  emotionnet predict recordings/ --threads 2           more threads: faster only on an idle machine
  emotionnet predict alice/ --same-speaker             read each clip against all of Alice's clips
  emotionnet predict interview.wav --no-timeline      the overall answer only
A bad file is reported on stderr and the others are still predicted (exit status 2);
with --json it also gets its line: {"path", "error": {"code", "message"}}.
JSON lines: {"path", "duration", "speech", "emotion", "confidence", "probabilities": {label: p},
"segments": [{"start", "end", "speech", "emotion", "confidence", "probabilities"}]}
("segments" only for files longer than one window; times in seconds, to the millisecond).
Without speech (silence, noise, music): "speech": false and "emotion", "confidence" and
"probabilities" null; the model's guess is kept as "guess": {"emotion", "confidence", "probabilities"}.
Non-speech segments have emotion null.
Images: {"path", "face", "emotion", "confidence", "probabilities", "faces": [{"box": [x, y, w, h], "emotion",
"confidence", "probabilities"}]}, the largest face first; no face: "face": false and "emotion" null.
Videos: {"path", "duration", "emotion", "confidence", "probabilities", "voice": {...}, "face": {...},
"segments": [...]}: the top-level answer fuses voice and face."""

BAR_WIDTH = 20
PROGRESS_MIN_FILES = 4  # a bar for 1-3 files is noise


def add_parser(sub) -> None:
    p = add_command(sub, "predict", "Recognise the emotion in audio files, images of faces and videos.", EXAMPLES)
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio, image or video files, or folders (every such file under them); "
                        "each file is told by its content")
    p.add_argument("--json", action="store_true", help="one JSON object per line per file")
    add_model_option(p)
    from emotionnet.models.names import FACE_MODEL  # as model_help: no torch import, --help stays fast

    p.add_argument("--face-model", default=FACE_MODEL, metavar="NAME|FILE",
                   help=f"the model for images and video frames (default: '{FACE_MODEL}', shipped in the package)")
    p.add_argument("--backend", choices=("torch", "onnx"),
                   help="run the network with torch (default) or onnxruntime")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for the network (default 1: on a shared or small machine more are slower)")
    p.add_argument("--window", type=float, metavar="S", help="seconds per timeline window (default: the model's)")
    p.add_argument("--hop", type=float, metavar="S", help="seconds between window starts (default: the model's)")
    p.add_argument("--no-timeline", dest="timeline", action="store_false",
                   help="leave out the timeline of long files (JSON: no \"segments\")")
    p.add_argument("--same-speaker", action="store_true",
                   help="the files are one speaker's: read each against all of them (for models that "
                        "read a speaker's context; see the README)")
    p.add_argument("--max-seconds", type=float, metavar="S",
                   help="fail files longer than this instead of scoring them (default 14400, 4 hours; "
                        "'inf' lifts the limit)")
    p.set_defaults(run=run)


def expand(paths: list[str]) -> tuple[list[str], list[str]]:
    """Files to score (folders expanded, missing paths kept so they fail in turn) and empty folders."""
    files, empty, _ = expand_in_order(paths)
    return files, empty


def expand_in_order(paths: list[str]) -> tuple[list[str], list[str], list[tuple[int, str]]]:
    """As `expand`, plus where each empty folder stands: (how many files come before it, folder)."""
    from emotionnet.media import media_files

    files, empty, places = [], [], []
    for path in paths:
        if Path(path).is_dir():
            found = [str(p) for p in media_files(path)]
            files.extend(found)
            if not found:
                empty.append(path)
                places.append((len(files), path))
        else:
            files.append(path)
    return files, empty, places


def _bar_chars() -> tuple[str, str]:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "█░".encode(encoding)
        return "█", "░"
    except (UnicodeEncodeError, LookupError):
        return "#", "."


def format_timeline(path: str, timeline, show_timeline: bool = True) -> str:
    """The text block of one file: emotion, a bar per class, and the timeline of a long file.

    Without speech the first line says so, and the model's guess (if it was asked) follows under
    its own name, never in the place of an answer."""
    from emotionnet.inference.summary import SUMMARY_SECONDS, format_summary, summarise

    p = timeline.prediction
    lines = [f"{path}  ({timeline.duration:.2f} s)"]
    if not p.speech:
        lines.append("  NO SPEECH detected" + ("" if p.guess else " (every sample is zero: nothing to guess)"))
        if p.guess:
            lines.append(f"  the model's guess on the non-speech audio: {p.guess.emotion}  {p.guess.confidence:.2f}")
            lines += _bars(p.guess.probabilities)
    else:
        lines.append(f"  {p.emotion}  {p.confidence:.2f}")
        if timeline.duration > SUMMARY_SECONDS:  # an average over many emotions says little on its own
            lines[-1] += "  (the average over the whole recording)"
            lines += ["  " + line for line in format_summary(summarise(timeline))]
        lines += _bars(p.probabilities)
    if show_timeline and len(timeline.segments) > 1:
        width = max(len(label) for label in LABELS)
        lines.append("  timeline:")
        for s in timeline.segments:
            span = f"{s.start:7.2f} - {s.end:7.2f} s"
            what = f"{s.prediction.emotion:<{width}}  {s.prediction.confidence:.2f}" if s.prediction else "(no speech)"
            lines.append(f"    {span}  {what}")
    return "\n".join(lines)


def _bars(probabilities: dict[str, float]) -> list[str]:
    """A bar per class."""
    full, empty = _bar_chars()
    width = max(len(label) for label in probabilities)
    return [f"    {label:<{width}}  {full * round(prob * BAR_WIDTH)}{empty * (BAR_WIDTH - round(prob * BAR_WIDTH))} "
            f"{prob:.2f}" for label, prob in probabilities.items()]


def format_json(result, timeline: bool = True) -> str:
    return json.dumps(result.to_dict(timeline), ensure_ascii=False)


def error_json(path: str, message: str, code: str | None = None) -> str:
    """The JSON line of an input that failed: `{"path", "error": {"code", "message"}}`."""
    return json.dumps({"path": str(path), "error": {"code": code or "bad_audio", "message": message}},
                      ensure_ascii=False)


def _finite(timeline) -> bool:
    """False when the model answered NaN or inf anywhere: such numbers are never printed."""
    answers = [timeline.prediction.most_likely] + [s.prediction for s in timeline.segments if s.prediction]
    return all(math.isfinite(p) for answer in answers if answer for p in answer.probabilities.values())


def format_image(path: str, prediction) -> str:
    """The text block of one image: each face's box, emotion and bars, largest first; or that none was found."""
    if not prediction.face:
        return f"{path}\n  NO FACE found"
    lines = [f"{path}  ({len(prediction.faces)} face{'s' if len(prediction.faces) > 1 else ''})"]
    for i, face in enumerate(prediction.faces, 1):
        x, y, w, h = face.box
        lines.append(f"  face {i} at x {x:.0f}, y {y:.0f}, {w:.0f}x{h:.0f} px: {face.emotion}  {face.confidence:.2f}")
        lines += _bars(face.probabilities)
    return "\n".join(lines)


def format_video(path: str, result) -> str:
    """The text block of one video: the fused answer, then voice and face, then the timeline."""
    data = result.to_dict()
    lines = [f"{path}  ({data['duration']:.2f} s, video)"]

    def answer(part: dict | None, absent: str) -> str:
        if not part or part.get("emotion") is None:
            return absent
        return f"{part['emotion']}  {part['confidence']:.2f}"

    lines.append(f"  voice and face: {answer(data, 'no answer (no speech and no face)')}")
    lines.append(f"  voice:          {answer(data.get('voice'), 'no speech')}")
    lines.append(f"  face:           {answer(data.get('face'), 'no face')}")
    if data.get("probabilities"):
        lines += _bars(data["probabilities"])
    if len(data.get("segments", [])) > 1:
        lines.append("  timeline (fused | voice | face):")
        for s in data["segments"]:
            parts = [answer(s, "-"), answer(s.get("voice"), "no speech"), answer(s.get("face"), "no face")]
            lines.append(f"    {s['start']:7.2f} - {s['end']:7.2f} s  " + " | ".join(parts))
    return "\n".join(lines)


def _check_numbers(args) -> None:
    if args.max_seconds is not None and not args.max_seconds > 0:
        raise CLIError(f"--max-seconds {args.max_seconds:g} must be positive")
    if args.threads < 1:
        raise CLIError(f"--threads {args.threads} must be at least 1")


def run(args) -> int:
    import torch
    from tqdm import tqdm

    from emotionnet.inference.onnx_backend import OnnxBackendError
    from emotionnet.media import media_kind

    _check_numbers(args)
    torch.set_num_threads(args.threads)  # before the ONNX session, which takes torch's count
    files, empty, empty_places = expand_in_order(args.paths)
    kinds = [media_kind(f) for f in files]  # by content: a JPEG named .wav is an image
    recognizer, faces = _load_models(args, set(kinds))
    failed = 0
    no_media = "no audio, image or video files in this folder"
    for folder in empty:
        report_failure(folder, no_media)
        failed += 1
    empty_places = list(empty_places)

    def empty_folders_before(done: int) -> None:  # --json: an empty folder's line in its place
        while args.json and empty_places and empty_places[0][0] <= done:
            print(error_json(empty_places.pop(0)[1], no_media, "no_audio_files"), flush=True)
    show_progress = not args.json and len(files) >= PROGRESS_MIN_FILES and sys.stderr.isatty()
    bar = tqdm(total=len(files), unit="file", file=sys.stderr, disable=not show_progress, leave=False)
    results = iter(())
    if recognizer is not None:
        try:  # window and hop are checked by the recognizer, before any file is read
            results = iter(recognizer.predict_files([f for f, k in zip(files, kinds) if k == "audio"],
                                                    window=args.window, hop=args.hop, max_seconds=args.max_seconds,
                                                    same_speaker=args.same_speaker))
        except ValueError as exc:
            raise CLIError(str(exc), "see --window and --hop in 'emotionnet predict --help'") from None
    first = True

    def fail(path: str, message: str, code: str | None = None) -> None:
        nonlocal failed
        failed += 1
        with tqdm.external_write_mode(file=sys.stderr):
            report_failure(path, message)
            if args.json:  # one line per input file, failed ones included
                print(error_json(path, message, code), flush=True)

    def show(json_line: str, text: str) -> None:
        nonlocal first
        with tqdm.external_write_mode(file=sys.stderr):
            print(json_line if args.json else ("" if first else "\n") + text, flush=args.json)
        first = False

    try:
        empty_folders_before(0)
        for done, (path, kind) in enumerate(zip(files, kinds), 1):
            bar.update(1)
            if kind == "image":
                _predict_image(path, faces, show, fail)
            elif kind == "video":
                _predict_video(path, recognizer, faces, args, show, fail)
            else:
                result = next(results)
                if not result.ok or not _finite(result.timeline):
                    fail(result.path, result.error if not result.ok else
                         "the model answered NaN (a damaged model file?); nothing printed for this file",
                         result.code if not result.ok else "model_error")
                else:
                    show(format_json(result, args.timeline),
                         format_timeline(result.path, result.timeline, args.timeline))
            empty_folders_before(done)
        empty_folders_before(len(files))
        if not args.json and not first:  # say which model answered (JSON readers have --model, or the default)
            print(f"\n{answered_by(recognizer, faces, kinds)}", flush=True)
    except OnnxBackendError as exc:
        raise CLIError(str(exc), "try --backend torch") from None
    except BrokenPipeError:
        # the reader went away (`predict ... | head`): what it read is all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return EXIT_SOME_FAILED if failed else EXIT_OK
    finally:
        bar.close()
    return EXIT_SOME_FAILED if failed else EXIT_OK


def answered_by(recognizer, faces, kinds: list[str]) -> str:
    """The line naming the models that answered: `model: whisper-base` (and the face model where images or
    video were read)."""
    from emotionnet.models.names import display_name

    named = []
    if recognizer is not None and ("audio" in kinds or "video" in kinds):
        named.append(f"model: {display_name(recognizer.model_file)}")
    if faces is not None and ("image" in kinds or "video" in kinds):
        named.append(f"face model: {display_name(faces.model_file)}")
    return "; ".join(named)


def _load_models(args, kinds: set[str]):
    """(voice model, face model), each loaded only when an input needs it (--model, --face-model)."""
    from emotionnet.cli.common import load_recognizer
    from emotionnet.inference.onnx_backend import StaleOnnxWarning
    from emotionnet.models.family import AUDIO

    recognizer = faces = None
    if {"audio", "video"} & kinds or not kinds:
        with warnings.catch_warnings(record=True) as caught:  # --model NAME|FILE (an .onnx file runs with onnxruntime)
            warnings.simplefilter("always", StaleOnnxWarning)
            recognizer = load_recognizer(args.model, args.backend)
        for warning in caught:
            if issubclass(warning.category, StaleOnnxWarning):
                print(f"emotionnet: warning: {warning.message}", file=sys.stderr)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if recognizer.modality != AUDIO:
            raise CLIError(f"--model {args.model} reads faces, not audio", "give images, or a voice model")
    if {"image", "video"} & kinds:
        faces = load_face_model(args.face_model)
    return recognizer, faces


def load_face_model(model: str):
    """The face model `--face-model` names; a voice model there is a clear error."""
    from emotionnet.cli.common import load_recognizer
    from emotionnet.models.family import AUDIO
    from emotionnet.models.names import FACE_MODEL

    faces = load_recognizer(model)
    if faces.modality == AUDIO:
        raise CLIError(f"--face-model {model} is not a face model",
                       f"the face model's name is '{FACE_MODEL}', or give a face model file")
    return faces


def _predict_image(path: str, faces, show, fail) -> None:
    from emotionnet.errors import ImageError

    try:
        prediction = faces.predict(path)
    except ImageError as exc:
        fail(path, str(exc), "bad_image")
        return
    show(json.dumps(prediction.to_json(path), ensure_ascii=False), format_image(path, prediction))


def _predict_video(path: str, recognizer, faces, args, show, fail) -> None:
    from emotionnet.audio import AudioError
    from emotionnet.inference.video_timeline import predict_video

    try:
        result = predict_video(recognizer, path, faces.score_frames, window=args.window, hop=args.hop,
                               threads=args.threads)
    except AudioError as exc:  # VideoError is one: a damaged or unreadable video
        fail(path, str(exc), "bad_video")
        return
    show(json.dumps(result.to_dict(), ensure_ascii=False), format_video(path, result))
