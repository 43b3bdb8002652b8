"""`emotionnet listen`: live emotion from the microphone (or a file played as if live)."""

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
Each result with a whole window behind it is the answer 'emotionnet predict' gives for
that window's audio; the first results of a stream (less than a window heard) are
partial and are not smoothed with the others. With --input the closing summary is
the one 'emotionnet predict FILE' prints."""

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
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for the model (default 1: steady latency, one core)")
    p.set_defaults(run=run)


def run(args) -> int:
    from emotionnet.audio import AudioError
    from emotionnet.streaming import FileSource, MicrophoneError, MicrophoneSource, StreamEngine, Tally

    if args.list_devices:
        return list_devices()
    if args.input and args.device is not None:
        raise CLIError("--input and --device exclude each other", "a file is streamed instead of a microphone")
    if args.threads < 1:
        raise CLIError("--threads must be at least 1")
    import torch

    torch.set_num_threads(args.threads)
    recognizer = load_recognizer(args.model)
    try:
        engine = StreamEngine(recognizer, window=args.window, hop=args.hop, adapt=args.adapt)
    except ValueError as exc:
        raise CLIError(str(exc), "see 'emotionnet listen --help'") from None
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
    view = None if args.json else LiveView(sys.stdout, source.name, engine.window, engine.hop)
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
