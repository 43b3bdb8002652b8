"""The service under hostile load: memory and the latency of normal requests beside each fault (issue 30).

Each probe starts a fresh `python -m emotionnet serve` on a free 127.0.0.1
port, measures its idle RSS after a few normal requests, then runs one fault
while a client posts a normal 3 s clip back to back; it reports the server's
peak RSS (sampled every 0.1 s, all its processes) against idle, and the worst
latency and the errors of the normal requests. Every loop is bounded; the
server is killed after each probe if it does not stop.

- tiny_hop: `POST /v1/predict?window=0.5&hop=0.0001` with a 590 s FLAC;
- long_file: the same FLAC at hop 0.5 s (1,175 windows: the most a request may ask for);
- hostile_flac: a FLAC of 8 channels at 384 kHz, constant, 590 s (a few hundred kB);
- uploads: 24 concurrent 49 MB WAV uploads (under the 50 MB body limit, over the 600 s audio limit);
- slowloris: 300 connections trickling a byte every 2 s for 40 s (half in their headers, half in their bodies),
  the server's open-file limit at 256 as in a small container; how many are still held at the end;
- idle_streams: 16 WebSockets that never send; whether a new stream is served within 45 s;
- heavy_stream: one 4 MB message of 8 kHz PCM with hop 0.1 s (about 2,600 scorings).

Targets (DESIGN.md): no request or stream takes the service past 1.5x idle RSS
or a normal request past 2 s; 24 oversized uploads stay within 1.2x idle.

    python -m benchmarks.serve_faults                        # every probe, about 5 min
    python -m benchmarks.serve_faults --probes tiny_hop,uploads --json faults.json
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from benchmarks.common import Server, finish, write_json
from emotionnet.evaluation.signals import speech_like
from emotionnet.models.names import DEFAULT_MODEL

SR = 16_000
PROBES = ("tiny_hop", "long_file", "hostile_flac", "uploads", "slowloris", "idle_streams", "heavy_stream")


def wav_bytes(audio: np.ndarray, rate: int = SR, format: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, rate, format=format, subtype="PCM_16")
    return buffer.getvalue()


def long_flac(path: Path, seconds: float = 590.0) -> Path:
    """Speech-like audio at 16 kHz, written a minute at a time."""
    if not path.exists():
        with soundfile.SoundFile(path, "w", SR, 1, format="FLAC") as f:
            for minute in range(int(np.ceil(seconds / 60))):
                f.write(speech_like(min(60.0, seconds - minute * 60), seed=minute))
    return path


def hostile_flac(path: Path, seconds: float = 590.0, rate: int = 384_000, channels: int = 8) -> Path:
    """A constant signal of many channels at a high rate: tiny on disk, huge decoded."""
    if not path.exists():
        block = np.full((rate * 10, channels), 0.25, np.float32)
        with soundfile.SoundFile(path, "w", rate, channels, format="FLAC", subtype="PCM_16") as f:
            for _ in range(int(seconds // 10)):
                f.write(block)
    return path


def post(port: int, body: bytes, query: str = "timeline=false", timeout: float = 60) -> tuple[int | str, float]:
    """(status or the exception's name, seconds) of one POST /v1/predict."""
    start = time.perf_counter()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        connection.request("POST", f"/v1/predict?{query}", body, {"Content-Type": "application/octet-stream"})
        response = connection.getresponse()
        response.read()
        status: int | str = response.status
        connection.close()
    except (OSError, http.client.HTTPException) as exc:
        status = type(exc).__name__
    return status, time.perf_counter() - start


class Watch:
    """Samples the server's RSS and runs one normal client posting `clip` until stopped."""

    def __init__(self, server: Server, clip: bytes):
        self.server, self.clip = server, clip
        self.peak_mb, self.latencies, self.errors = 0.0, [], {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._sample), threading.Thread(target=self._client)]

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_mb = max(self.peak_mb, self.server.rss_mb())
            except Exception:  # a process of it ended between listing and reading
                pass
            time.sleep(0.1)

    def _client(self) -> None:
        while not self._stop.is_set():
            status, seconds = post(self.server.port, self.clip, timeout=30)
            self.latencies.append(seconds)  # answered or not: how long the client waited
            if status != 200:
                self.errors[str(status)] = self.errors.get(str(status), 0) + 1
                time.sleep(0.2)

    def __enter__(self) -> Watch:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def figures(self, idle_mb: float) -> dict:
        return {"idle_rss_mb": round(idle_mb, 1), "peak_rss_mb": round(self.peak_mb, 1),
                "peak_over_idle": round(self.peak_mb / idle_mb, 2), "normal_requests": len(self.latencies),  # answered or not
                "normal_worst_s": round(max(self.latencies), 2) if self.latencies else None,
                "normal_errors": self.errors}


def probe(model: str | None, clip: bytes, fault: Callable[[Server], dict], options=(), preexec_fn=None) -> dict:
    """A fresh server; idle RSS after warm-up; `fault` run beside the normal client; the server stopped."""
    server = Server(model, options=options, preexec_fn=preexec_fn)
    try:
        for _ in range(5):  # warm-up
            post(server.port, clip)
        time.sleep(0.5)
        idle = server.rss_mb()
        with Watch(server, clip) as watch:
            detail = fault(server)
        return {**watch.figures(idle), **detail}
    finally:
        server.stop(grace=5)


def tiny_hop(server: Server, files: Path) -> dict:
    body = long_flac(files / "long.flac").read_bytes()
    status, seconds = post(server.port, body, "window=0.5&hop=0.0001", timeout=45)
    time.sleep(3)  # normal requests after the answer: is the work still running?
    return {"fault_status": status, "fault_seconds": round(seconds, 1)}


def long_file(server: Server, files: Path) -> dict:
    body = long_flac(files / "long.flac").read_bytes()
    status, seconds = post(server.port, body, "hop=0.5", timeout=45)
    return {"fault_status": status, "fault_seconds": round(seconds, 1)}


def hostile(server: Server, files: Path) -> dict:
    body = hostile_flac(files / "hostile.flac").read_bytes()
    status, seconds = post(server.port, body, timeout=45)
    time.sleep(1)
    return {"fault_status": status, "fault_seconds": round(seconds, 1), "fault_bytes": len(body)}


def uploads(server: Server, count: int = 24, megabytes: float = 49.0) -> dict:
    samples = int(megabytes * 2**20 / 2) - 22  # a 16 kHz mono PCM WAV: 44 bytes of header, 2 a sample
    header = bytearray(wav_bytes(np.zeros(16, np.float32))[:44])
    header[4:8] = (36 + samples * 2).to_bytes(4, "little")
    header[40:44] = (samples * 2).to_bytes(4, "little")
    body = bytes(header) + (np.sin(np.arange(samples) / 7) * 3000).astype("<i2").tobytes()
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(post(server.port, body, timeout=60)))
               for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    time.sleep(2)
    statuses: dict = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"fault_statuses": statuses, "after_rss_mb": round(server.rss_mb(), 1),
            "upload_mb": round(len(body) / 2**20, 1)}


def slowloris(server: Server, count: int = 300, seconds: float = 40.0, every: float = 2.0) -> dict:
    """`count` connections sending a byte every `every` seconds for `seconds`; how many the server still holds."""
    sockets = []
    for i in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        except OSError:
            break
        s.setblocking(False)
        head = (b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                (b"Content-Length: 100000\r\n\r\n" if i % 2 else b""))
        try:
            s.send(head)
        except OSError:
            pass
        sockets.append(s)
    opened = len(sockets)
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        time.sleep(every)
        for s in sockets:
            try:
                s.send(b"X")
            except OSError:
                pass
    held = 0
    for s in sockets:  # still held: a read finds nothing yet (an answer, end of stream or a reset: let go)
        try:
            s.recv(1)
        except BlockingIOError:
            held += 1
        except OSError:
            pass
        s.close()
    return {"connections_opened": opened, "held_after_s": seconds, "still_held": held}


def idle_streams(server: Server, count: int = 16, wait: float = 45.0) -> dict:
    """`count` silent streams, then a new stream tried every 2 s: seconds until it is served, or None."""
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{server.port}/v1/stream?sample_rate={SR}&format=s16le&hop=0.5"
    idle = [connect(url, open_timeout=10) for _ in range(count)]
    chunk = (speech_like(1.0) * 20000).astype("<i2").tobytes()
    start, served_after, refusals = time.monotonic(), None, 0
    while time.monotonic() - start < wait and served_after is None:
        try:
            with connect(url, open_timeout=10) as ws:
                ws.send(chunk)
                message = json.loads(ws.recv(timeout=10))
                if "error" in message:
                    refusals += 1
                else:
                    served_after = round(time.monotonic() - start, 1)
        except Exception:
            refusals += 1
        if served_after is None:
            time.sleep(2)
    for ws in idle:
        try:
            ws.close()
        except Exception:
            pass
    return {"idle_streams": count, "new_stream_served_after_s": served_after, "refusals": refusals}


def heavy_stream(server: Server, megabytes: float = 4.0, rate: int = 8000, piece_seconds: float = 10.0,
                 seconds: float = 40.0) -> dict:
    """4 MB of 8 kHz PCM at hop 0.1 s (about 2,600 scorings) in one message; if the service refuses a message
    that large (1009), the same audio again in messages of `piece_seconds`, sent at once. Results read for
    `seconds` at most."""
    from websockets.sync.client import connect

    samples = int(megabytes * 2**20 / 2) - 64
    pcm = (speech_like(samples / rate, sample_rate=rate) * 20000).astype("<i2").tobytes()
    url = f"ws://127.0.0.1:{server.port}/v1/stream?sample_rate={rate}&format=s16le&hop=0.1"
    piece = int(piece_seconds * rate) * 2
    detail: dict = {}
    start = time.monotonic()
    for label, messages in (("one_message", [pcm]), ("pieces", [pcm[i:i + piece] for i in range(0, len(pcm), piece)])):
        results, end = 0, "all results"
        try:
            with connect(url, open_timeout=10, max_size=None) as ws:
                for message in messages:
                    ws.send(message)
                ws.send("end")
                while time.monotonic() - start < seconds:
                    json.loads(ws.recv(timeout=max(0.1, seconds - (time.monotonic() - start))))
                    results += 1
                end = f"stopped reading after {seconds:g} s"
        except Exception as exc:
            end = type(exc).__name__ + (f" {exc}" if str(exc) else "")
        detail[label] = {"results": results, "end": end[:160], "seconds": round(time.monotonic() - start, 1)}
        if "1009" not in end:
            break
    return detail


def low_file_limit(limit: int = 256) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def run(args) -> dict:
    clip = wav_bytes(speech_like(3.0))
    files = Path(args.files or tempfile.mkdtemp(prefix="emotionnet-faults-"))
    files.mkdir(parents=True, exist_ok=True)
    plan = {
        "tiny_hop": lambda: probe(args.model, clip, lambda s: tiny_hop(s, files)),
        "long_file": lambda: probe(args.model, clip, lambda s: long_file(s, files)),
        "hostile_flac": lambda: probe(args.model, clip, lambda s: hostile(s, files)),
        "uploads": lambda: probe(args.model, clip, uploads),
        "slowloris": lambda: probe(args.model, clip, slowloris, preexec_fn=low_file_limit(args.file_limit)),
        "idle_streams": lambda: probe(args.model, clip, idle_streams),
        "heavy_stream": lambda: probe(args.model, clip, lambda s: heavy_stream(s, seconds=args.stream_seconds)),
    }
    results = {}
    for name in args.probes:
        print(f"probe {name} ...", file=sys.stderr, flush=True)
        results[name] = plan[name]()
        print(f"  {json.dumps(results[name])}", file=sys.stderr, flush=True)
        if args.json:
            write_json(args.json, {"probes": results})  # each probe kept as it finishes
    return {"benchmark": "serve_faults", "model": args.model or DEFAULT_MODEL, "probes": results,
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def report(result: dict) -> str:
    lines = [f"serve_faults: model {result['model']}, {result['date']}, load average {result['load_average'][0]} "
             f"on {result['cpus']} CPUs",
             "probe          idle MB  peak MB  x idle  normal worst s  normal errors  fault"]
    for name, r in result["probes"].items():
        detail = {k: v for k, v in r.items() if k not in ("idle_rss_mb", "peak_rss_mb", "peak_over_idle",
                                                        "normal_requests", "normal_worst_s", "normal_errors")}
        lines.append(f"{name:<14} {r['idle_rss_mb']:>7} {r['peak_rss_mb']:>8} {r['peak_over_idle']:>7} "
                     f"{r['normal_worst_s']!s:>15} {sum(r['normal_errors'].values()):>14}  {json.dumps(detail)}")
    lines.append("targets: peak <= 1.5x idle (uploads: 1.2x), normal worst < 2 s, no normal errors")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model name or file (default: serve's default)")
    parser.add_argument("--probes", type=lambda s: [p.strip() for p in s.split(",") if p.strip()],
                        default=list(PROBES), help=f"comma-separated, of {', '.join(PROBES)} (default all)")
    parser.add_argument("--files", help="folder for the generated FLACs, kept between runs (default: a temp folder)")
    parser.add_argument("--file-limit", type=int, default=256, help="the server's open-file limit in slowloris")
    parser.add_argument("--stream-seconds", type=float, default=40.0,
                        help="heavy_stream: seconds its results are read, at most (default 40)")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--md", metavar="OUT", help="write the report text")
    args = parser.parse_args(argv)
    unknown = set(args.probes) - set(PROBES)
    if unknown:
        parser.error(f"unknown probes {sorted(unknown)}; choose from {', '.join(PROBES)}")
    result = run(args)
    return finish(result, report(result), args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
