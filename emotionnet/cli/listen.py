"""`emotionnet listen`: live emotion from the microphone (or a file played as if live), and with
`--camera` or a video `--input`, from the face too: per hop the voice's, the face's and both fused."""

from __future__ import annotations

import json
import os
import sys
from collections import deque
from typing import TextIO

from emotionnet.cli.common import EXIT_SOME_FAILED, CLIError, add_command, add_model_option, load_recognizer
from emotionnet.labels import LABELS
from emotionnet.window_rule import MIN_HOP, MIN_WINDOW, STREAM_HOP

EXAMPLES = """  emotionnet listen                                  the default microphone; Ctrl-C stops
  emotionnet listen --list-devices                   input devices and their ids
  emotionnet listen --device 2 --hop 0.25            another microphone, a result every 0.25 s
  emotionnet listen --input talk.wav                 a file played in real time, as if live
  emotionnet listen --input talk.wav --fast --json   one JSON object per hop, as fast as possible
  emotionnet listen --adapt                          read each window against the voice heard so far
  emotionnet listen --camera                         the first camera and the microphone: voice, face, both
  emotionnet listen --input talk.mp4 --json          a video played as if live: voice, face, both per hop
Each result with a whole window behind it is the answer 'emotionnet predict' gives for
that window's audio; the first results of a stream (less than a window heard) are
partial and are not smoothed with the others. With --input the closing summary is
the one 'emotionnet predict FILE' prints.
With --camera or a video --input, each hop has three answers: the voice's, the face's (the
frames of that window, sampled 5 a second) and both fused; JSON lines
{"time", "start", "latency_ms", "voice": {...}, "face": {"face", "frames", "frames_with_face", "emotion", ...},
"fused": {"emotion", "confidence", "probabilities"}}."""

ANSI = {"angry": "31", "disgust": "32", "fear": "35", "happy": "33", "neutral": "36", "sad": "34"}
LETTERS = {label: label[0] for label in LABELS}  # a d f h n s
SILENCE = "·"
HISTORY = 40
BAR = 24


def add_parser(sub) -> None:
    p = add_command(sub, "listen", "Live emotion from the microphone (or a file played as if live), "
                    "updated every hop.", EXAMPLES)
    p.add_argument("--input", metavar="FILE", help="stream an audio file instead of the microphone")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=True,
                      help="with --input: play the file at real-time pace (default)")
    pace.add_argument("--fast", dest="realtime", action="store_false",
                      help="with --input: stream the file as fast as it can be scored")
    p.add_argument("--device", metavar="ID", help="input device: its id or part of its name (see --list-devices)")
    p.add_argument("--camera", nargs="?", const="", metavar="DEVICE",
                   help="read the face from a camera too (default: the first, /dev/video0 on Linux)")
    p.add_argument("--list-devices", action="store_true", help="list the audio input devices and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object per hop instead of the live view")
    p.add_argument("--window", type=float, metavar="S",
                   help=f"seconds of audio behind each result, {MIN_WINDOW:g} s up to the model's window "
                        "(default: the model's, 3 s)")
    p.add_argument("--hop", type=float, default=STREAM_HOP, metavar="S",
                   help=f"seconds between results, at least {MIN_HOP:g} s (default {STREAM_HOP:g})")
    adapt = p.add_mutually_exclusive_group()
    adapt.add_argument("--adapt", dest="adapt", action="store_true", default=False,
                       help="read each window against the voice heard so far (speaker-normalised models; "
                            "after about 3 s of speech, forgetting over about two minutes)")
    adapt.add_argument("--no-adapt", dest="adapt", action="store_false",
                       help="every window is its own context, as in predict (default)")
    add_model_option(p)
    from emotionnet.models.names import FACE_MODEL  # no torch import: --help stays fast

    p.add_argument("--face-model", default=FACE_MODEL, metavar="NAME|FILE",
                   help=f"the model for camera and video frames (default: '{FACE_MODEL}', shipped in the package)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for the model (default 1: steady latency, one core)")
    p.set_defaults(run=run)


def run(args) -> int:
    from emotionnet.audio import AudioError
    from emotionnet.streaming import FileSource, MicrophoneError, MicrophoneSource, Tally

    if args.list_devices:
        return list_devices()
    if args.input and args.device is not None:
        raise CLIError("--input and --device exclude each other", "a file is streamed instead of a microphone")
    if args.input and args.camera is not None:
        raise CLIError("--input and --camera exclude each other", "a video file has its own frames")
    if args.threads < 1:
        raise CLIError("--threads must be at least 1")
    from emotionnet.media import media_kind
    from emotionnet.models.names import display_name

    if args.camera is not None or (args.input and media_kind(args.input) == "video"):
        return run_with_faces(args)
    import torch

    torch.set_num_threads(args.threads)
    recognizer = load_recognizer(args.model)
    engine = _engine(args, recognizer)
    try:
        if args.input:
            source = FileSource(args.input, realtime=args.realtime)
        else:
            device = int(args.device) if args.device and args.device.isdigit() else args.device
            source = MicrophoneSource(device)
    except MicrophoneError as exc:
        raise CLIError(str(exc), exc.hint) from None
    except AudioError as exc:
        raise CLIError(str(exc), code=EXIT_SOME_FAILED) from None

    tally = Tally()
    view = None if args.json else LiveView(sys.stdout, f"{source.name} · model {display_name(recognizer.model_file)}",
                                           engine.window, engine.hop)
    try:
        for result in engine.run(source):
            tally.add(result)
            if view:
                view.show(result)
            else:
                print(json.dumps(result.to_dict()), flush=True)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live session ends: the summary follows
    except AudioError as exc:  # damage further into an --input file than its header showed
        raise CLIError(str(exc), code=EXIT_SOME_FAILED) from None
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        if hasattr(source, "close"):
            source.close()
        if view:
            view.close()
    closing = summary(tally, getattr(source, "dropped", 0))
    if args.input:  # the file's answer is the one `emotionnet predict FILE` prints, not a tally of hops
        closing = file_summary(recognizer, args.input, tally, getattr(source, "dropped", 0))
    print(closing, file=sys.stderr if args.json else sys.stdout, flush=True)
    return 0


def run_with_faces(args) -> int:
    """`listen --camera` or `listen --input VIDEO`: per hop the voice's answer, the face's and both fused."""
    import torch

    from emotionnet.audio import AudioError
    from emotionnet.cli.predict import load_face_model
    from emotionnet.models.names import display_name
    from emotionnet.streaming import MicrophoneError, MicrophoneSource, Tally
    from emotionnet.streaming.video_sources import CameraError, CameraFrames, VideoFileSource, default_camera

    torch.set_num_threads(args.threads)
    recognizer = load_recognizer(args.model)
    faces = load_face_model(args.face_model)
    engine = _engine(args, recognizer)
    try:
        if args.input:
            source = frames = VideoFileSource(args.input, realtime=args.realtime, threads=args.threads)
        else:  # the camera first: without one there is nothing to add to `listen`
            frames = CameraFrames(args.camera or default_camera())
            device = int(args.device) if args.device and args.device.isdigit() else args.device
            try:
                source = MicrophoneSource(device)
            except MicrophoneError:
                frames.close()
                raise
    except CameraError as exc:
        raise CLIError(str(exc), "name another with --camera DEVICE, or use --input VIDEO") from None
    except MicrophoneError as exc:
        raise CLIError(str(exc), exc.hint) from None
    except AudioError as exc:  # VideoError is one: a damaged or unreadable video
        raise CLIError(str(exc), code=EXIT_SOME_FAILED) from None

    tally = Tally()
    window = FaceWindow(faces.score_frames)
    if not args.json:
        print(f"emotionnet listen · {source.name} · voice, face and both (models "
              f"{display_name(recognizer.model_file)}, {display_name(faces.model_file)}) · window {engine.window:g} s, "
              f"hop {engine.hop:g} s · Ctrl-C stops", flush=True)
    try:
        for result in engine.run(source):
            tally.add(result)
            answers = window.answers(result, frames.frames_until(result.time))
            print(json.dumps(answers) if args.json else hop_line(answers), flush=True)
    except KeyboardInterrupt:
        pass
    except AudioError as exc:
        raise CLIError(str(exc), code=EXIT_SOME_FAILED) from None
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        source.close()
        if frames is not source:
            frames.close()
    print(summary(tally, getattr(source, "dropped", 0)), file=sys.stderr if args.json else sys.stdout, flush=True)
    return 0


class FaceWindow:
    """The face answers of the frames in the current window, and each hop's three answers."""

    def __init__(self, score_frames):
        from emotionnet.inference.video_timeline import FaceTrack

        self.score_frames = score_frames
        self.track = FaceTrack()

    def answers(self, result, frames) -> dict:
        """`{"time", "start", "voice", "face", "fused"}` of one hop (`result`: the voice's StreamResult)."""
        import time

        from emotionnet.inference.video_timeline import face_and_fused

        began = time.perf_counter()
        if frames:
            self.track.times += [f.time for f in frames]
            self.track.probabilities += list(self.score_frames([f.image for f in frames]))
        old = sum(t < result.start for t in self.track.times)  # frames before this window: done with
        del self.track.times[:old], self.track.probabilities[:old]
        voice = result.to_dict()
        face, fused = face_and_fused(result.prediction, self.track.between(result.start, result.time))
        # the hop's latency: the voice's (from its last sample's arrival) and then the face's scoring
        latency = result.latency_ms + (time.perf_counter() - began) * 1000
        return {"time": voice.pop("time"), "start": voice.pop("start"), "latency_ms": round(latency, 2),
                "voice": voice, "face": _rounded(face), "fused": _rounded(fused)}


def _rounded(answer: dict) -> dict:
    """Confidence and probabilities to 4 places, as the voice's answer has them."""
    out = dict(answer)
    if out["confidence"] is not None:
        out["confidence"] = round(out["confidence"], 4)
        out["probabilities"] = {k: round(v, 4) for k, v in out["probabilities"].items()}
    return out


def hop_line(answers: dict) -> str:
    """One hop as text: time, then the voice's, the face's and the fused answer."""
    def answer(part: dict, absent: str) -> str:
        return absent if part["emotion"] is None else f"{part['emotion']:<8} {part['confidence']:4.0%}"

    return (f"{answers['time']:8.1f} s  voice {answer(answers['voice'], SILENCE + ' silence'):<13}  "
            f"face {answer(answers['face'], 'no face'):<13}  both {answer(answers['fused'], '-')}")


def file_summary(recognizer, path: str, tally, dropped: int = 0) -> str:
    """The closing lines for `--input FILE`: the session's time and latency, then `predict`'s block for the file."""
    from emotionnet.cli.predict import format_timeline

    timeline = recognizer.predict_timeline(path)
    lines = [f"listened {tally.duration:.1f} s; speech {tally.speech_seconds:.1f} s"
             + (f" ({tally.speech_share:.0%})" if tally.duration else ""),
             "the whole file, as 'emotionnet predict' says:", format_timeline(path, timeline)]
    latency = tally.latency_ms()
    if latency:
        lines.append(f"latency median {latency[0]:.0f} ms, worst {latency[1]:.0f} ms")
    if dropped:
        lines.append(f"dropped {dropped} audio blocks: scoring fell behind")
    return "\n".join(lines)


def list_devices() -> int:
    from emotionnet.streaming import MicrophoneError, list_input_devices
    from emotionnet.streaming.sources import INPUT_HINT

    try:
        devices = list_input_devices()
    except MicrophoneError as exc:
        raise CLIError(str(exc), exc.hint) from None
    if not devices:
        raise CLIError("no audio input devices found", INPUT_HINT)
    print(f"{'id':>3}  {'name':<40} {'channels':>8} {'rate':>7}")
    for d in devices:
        mark = "  (default)" if d["default"] else ""
        print(f"{d['id']:>3}  {d['name'][:40]:<40} {d['channels']:>8} {d['sample_rate']:>7.0f}{mark}")
    return 0


def summary(tally, dropped: int = 0) -> str:
    """The closing lines of a session: speech time, each emotion's share, latency."""
    lines = [f"listened {tally.duration:.1f} s; speech {tally.speech_seconds:.1f} s"
             + (f" ({tally.speech_share:.0%})" if tally.duration else "")]
    if tally.speech_seconds:
        lines.append("share of the speech time per emotion:")
        for label, share in tally.shares().items():
            lines.append(f"  {label:<8} {bar(share, 20)} {share:4.0%}")
    else:
        lines.append("  no speech heard")
    latency = tally.latency_ms()
    if latency:
        lines.append(f"latency median {latency[0]:.0f} ms, worst {latency[1]:.0f} ms")
    if dropped:
        lines.append(f"dropped {dropped} audio blocks: scoring fell behind the microphone")
    return "\n".join(lines)


def legend_text() -> str:
    return ", ".join(f"{LETTERS[e]} {e}" for e in LABELS) + f", {SILENCE} silence"


def bar(share: float, width: int) -> str:
    filled = max(0, min(width, round(share * width)))
    return "█" * filled + "░" * (width - filled)


class LiveView:
    """A block of lines redrawn in place on a terminal; one line per result when piped."""

    def __init__(self, out: TextIO, source: str, window: float, hop: float):
        self.out = out
        self.tty = out.isatty()
        self.colour = self.tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        self.history: deque[str | None] = deque(maxlen=HISTORY)
        self.last = None  # the last speech prediction, shown dimmed during silence
        self.drawn = 0
        self.out.write(f"emotionnet listen · {source} · window {window:g} s, hop {hop:g} s · Ctrl-C stops\n")
        if not self.tty:  # the live block carries its own legend; one line per result needs one here
            self.out.write(f"each line: time, emotion, confidence, then the last {HISTORY} results: {legend_text()}\n")
        if self.tty:
            self.out.write("\x1b[?25l")  # hide the cursor while redrawing
        self.out.flush()

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour else text

    def history_line(self) -> str:
        return "".join(self.paint(LETTERS[e], ANSI[e]) if e else self.paint(SILENCE, "2") for e in self.history)

    def show(self, result) -> None:
        self.history.append(result.emotion)
        if result.prediction:
            self.last = result.prediction
        if not self.tty:
            state = (f"{result.emotion:<8} {result.prediction.confidence:4.0%}" if result.speech
                     else f"{SILENCE} silence     ")
            note = "  (partial window)" if result.partial and result.speech else ""
            self.out.write(f"{result.time:8.1f} s  {state}  {self.history_line()}{note}\n")
            self.out.flush()
            return
        lines = self.block(result)
        text = "".join(f"\x1b[2K{line}\n" for line in lines)
        if self.drawn:
            text = f"\x1b[{self.drawn}F" + text  # back to the first line of the block
        self.drawn = len(lines)
        self.out.write(text)
        self.out.flush()

    def block(self, result) -> list[str]:
        if result.prediction:
            p = result.prediction
            head = self.paint(f"{p.emotion.upper():<8}", "1;" + ANSI[p.emotion]) + f" {p.confidence:4.0%}"
            if result.partial:
                head += self.paint(" (partial window)", "2")
        else:
            head = self.paint(f"{SILENCE} silence", "2")
        lines = [f"{result.time:8.1f} s   {head}   level {result.level_db:4.0f} dBFS   "
                 f"latency {result.latency_ms:3.0f} ms"]
        probabilities = self.last.probabilities if self.last else {label: 0.0 for label in LABELS}
        for label in LABELS:
            share = probabilities[label]
            row = f"  {label:<8} {bar(share, BAR)} {share:4.0%}"
            if not result.speech:
                row = self.paint(row, "2")
            elif label == result.emotion:
                row = self.paint(row, ANSI[label])
            lines.append(row)
        lines.append(f"  history  {self.history_line()}")
        legend = "  ".join(f"{self.paint(LETTERS[e], ANSI[e])} {e}" for e in LABELS)
        lines.append(f"           {legend}  {self.paint(SILENCE, '2')} silence")
        return lines

    def close(self) -> None:
        try:
            if self.tty:
                self.out.write("\x1b[?25h")  # the cursor back
            self.out.flush()
        except OSError:  # the terminal or pipe is gone
            pass


def _engine(args, recognizer):
    """The live engine for --window, --hop and --adapt, or the one-line error the window rule gives."""
    from emotionnet.streaming import StreamEngine

    try:
        return StreamEngine(recognizer, window=args.window, hop=args.hop, adapt=args.adapt)
    except ValueError as exc:
        raise CLIError(str(exc), "see 'emotionnet listen --help'") from None
