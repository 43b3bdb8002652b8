"""Throughput, latency and memory of `emotionnet serve` on loopback; the WebSocket stream's hop latency.

Starts the real server (`python -m emotionnet serve`) on a free 127.0.0.1 port,
then, with keep-alive HTTP clients in threads posting a 3 s WAV clip:

- for each concurrency in --clients (default 1, 8, 32): requests/s, latency
  p50/p95/p99 and errors, over --requests requests or --seconds, whichever
  comes first;
- a soak at --soak-clients (default 8) for --duration seconds (default 600):
  the same figures plus the server's RSS (all its processes) every 5 s, and
  the RSS slope in MB per minute (flat memory: about 0);
- a WebSocket stream of --stream-seconds of speech-like audio sent in real
  time in 0.1 s blocks: the hop latency the client sees (from sending the
  block that completes a hop to receiving its result) and the one the server
  reports.

Target (DESIGN.md): >= 100 requests/s, p95 < 150 ms, no errors at 8 clients on
2 cores, flat memory over 10 minutes. The load generator runs on the same
cores as the server and takes its share: its CPU time is reported. The
machine's load average before and after says what else was running.

    python -m benchmarks.serve                                  # full run: ~13 min
    python -m benchmarks.serve --duration 60 --requests 500     # shorter
    python -m benchmarks.serve --json docs/results/serve.json --md docs/results/serve.md
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Server, finish, percentiles
from emotionnet.digest import file_digest
from emotionnet.evaluation.signals import speech_like

SR = 16_000


def wav_bytes(audio: np.ndarray) -> bytes:
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def load(port: int, body: bytes, clients: int, max_requests: int, max_seconds: float, on_tick=None) -> dict:
    """`clients` threads posting `body` back to back until the request budget or the time is spent."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()
    issued = [0]
    stop_at = time.perf_counter() + max_seconds

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            with lock:
                if issued[0] >= max_requests or time.perf_counter() >= stop_at:
                    break
                issued[0] += 1
            start = time.perf_counter()
            try:
                connection.request("POST", "/v1/predict?timeline=false", body,
                                   {"Content-Type": "application/octet-stream"})
                response = connection.getresponse()
                response.read()
                kind = None if response.status == 200 else str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                kind = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = time.perf_counter() - start
            with lock:
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1
                else:
                    latencies.append(elapsed * 1000)
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    cpu, wall = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=1.0)
        if on_tick:
            on_tick()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = percentiles(latencies)
    return {"clients": clients, "requests": len(latencies) + sum(errors.values()), "ok": len(latencies),
            "errors": errors, "seconds": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": stats["median_ms"], "p95_ms": stats["p95_ms"],
            "p99_ms": round(float(np.percentile(latencies, 99)), 2) if latencies else None,
            "max_ms": stats["max_ms"], "client_cpu_share": round(cpu / wall, 2)}


def soak(server: Server, body: bytes, clients: int, seconds: float) -> dict:
    samples: list[tuple[float, float]] = []
    start = time.perf_counter()
    last = [0.0]

    def tick():
        now = time.perf_counter() - start
        if now - last[0] >= 5.0:
            samples.append((round(now, 1), round(server.rss_mb(), 1)))
            last[0] = now

    samples.append((0.0, round(server.rss_mb(), 1)))
    result = load(server.port, body, clients, 10**9, seconds, tick)
    samples.append((round(time.perf_counter() - start, 1), round(server.rss_mb(), 1)))
    times, rss = np.array(samples).T
    half = len(rss) // 2
    result["rss_mb"] = {"start": rss[0], "end": rss[-1], "max": float(rss.max()),
                        "slope_mb_per_min": round(float(np.polyfit(times, rss, 1)[0] * 60), 3),
                        "second_half_slope_mb_per_min": round(float(np.polyfit(times[half:], rss[half:], 1)[0] * 60), 3)
                        if len(rss) - half >= 3 else None,
                        "samples": samples}
    return result


def stream(port: int, seconds: float, hop: float = 0.5, block: float = 0.1) -> dict:
    """Real-time stream: hop latency as the client sees it and as the server reports it."""
    from websockets.sync.client import connect

    audio = (speech_like(seconds) * 32767).astype("<i2")
    block_samples, hop_samples = int(block * SR), int(hop * SR)
    seen, reported = [], []
    with connect(f"ws://127.0.0.1:{port}/v1/stream?sample_rate={SR}&hop={hop}", open_timeout=30) as ws:
        start = time.perf_counter()
        sent = 0
        for i in range(0, audio.size, block_samples):
            chunk = audio[i:i + block_samples]
            time.sleep(max(0.0, start + (i + chunk.size) / SR - time.perf_counter()))  # real-time pace
            sent_at = time.perf_counter()
            ws.send(chunk.tobytes())
            hops = (sent + chunk.size) // hop_samples - sent // hop_samples
            sent += chunk.size
            for _ in range(hops):
                result = json.loads(ws.recv(timeout=30))
                seen.append((time.perf_counter() - sent_at) * 1000)
                reported.append(result["latency_ms"])
        ws.send("end")
    return {"seconds": seconds, "hop_s": hop, "client": percentiles(seen), "server": percentiles(reported)}


def run(args) -> dict:
    clip = wav_bytes(speech_like(3.0))
    load_before = os.getloadavg()
    server = Server(args.model, args.workers, args.threads, args.queue)
    try:
        load(server.port, clip, 2, 40, 30)  # warm up
        cpu_before = server.cpu_seconds()
        levels = [load(server.port, clip, n, args.requests, args.seconds) for n in args.clients]
        stream_result = stream(server.port, args.stream_seconds) if args.stream_seconds > 0 else None
        soak_result = soak(server, clip, args.soak_clients, args.duration) if args.duration > 0 else None
        server_cpu = server.cpu_seconds() - cpu_before
    finally:
        server.stop()
    from emotionnet.inference.recognizer import default_model_path

    model = Path(args.model) if args.model else default_model_path()
    return {
        "benchmark": "serve", "model": model.name, "model_sha256": file_digest(model, "sha256")[:12],
        "clip_seconds": 3.0, "workers": args.workers, "threads": args.threads,
        "levels": levels, "stream": stream_result, "soak": soak_result, "server_cpu_seconds": round(server_cpu, 1),
        "cpus": os.cpu_count(), "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def report(result: dict) -> str:
    lines = [f"serve: {result['model']} (sha256 {result['model_sha256']}), 3 s WAV clips, POST /v1/predict?timeline=false, "
             f"{result['workers']} worker process(es) x {result['threads']} inference thread(s), {result['date']}",
             "clients  requests  req/s   p50 ms   p95 ms   p99 ms   max ms  errors  client CPU"]
    rows = [*result["levels"], *([result["soak"]] if result["soak"] else [])]
    for i, r in enumerate(rows):
        name = f"{r['clients']}" + (" soak" if i == len(result["levels"]) else "")
        lines.append(f"{name:<8} {r['requests']:>8} {r['requests_per_s']:>6} {r['p50_ms']:>8} {r['p95_ms']:>8} "
                     f"{r['p99_ms']:>8} {r['max_ms']:>8}  {sum(r['errors'].values()):>6}  {r['client_cpu_share']:>9}")
    if result["soak"]:
        rss = result["soak"]["rss_mb"]
        half = rss["second_half_slope_mb_per_min"]
        lines.append(f"soak {result['soak']['seconds']:.0f} s: server RSS {rss['start']:.0f} -> {rss['end']:.0f} MB "
                     f"(max {rss['max']:.0f}), slope {rss['slope_mb_per_min']:+.2f} MB/min overall"
                     + (f", {half:+.2f} MB/min over the second half" if half is not None else ""))
    if result["stream"]:
        s = result["stream"]
        lines.append(f"stream {s['seconds']:.0f} s in real time, hop {s['hop_s']} s: hop latency client median "
                     f"{s['client']['median_ms']} ms, p95 {s['client']['p95_ms']} ms; server-reported median "
                     f"{s['server']['median_ms']} ms, p95 {s['server']['p95_ms']} ms")
    lines.append(f"targets: >= 100 req/s, p95 < 150 ms, no errors at 8 clients; flat memory. load average "
                 f"{result['load_average_before'][0]} -> {result['load_average_after'][0]} on {result['cpus']} CPUs; "
                 f"server CPU {result['server_cpu_seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--workers", type=int, default=1, help="server processes (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="inference threads per process (default 1, as serve)")
    parser.add_argument("--queue", type=int, default=64, help="server queue size (default 64)")
    parser.add_argument("--clients", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32],
                        help="concurrency levels, comma-separated (default 1,8,32)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per level at most (default 3000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per level at most (default 30)")
    parser.add_argument("--duration", type=float, default=600.0, help="soak seconds; 0 skips it (default 600)")
    parser.add_argument("--soak-clients", type=int, default=8, help="clients during the soak (default 8)")
    parser.add_argument("--stream-seconds", type=float, default=30.0, help="WebSocket stream; 0 skips it (default 30)")
    parser.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    parser.add_argument("--md", metavar="OUT", help="write the report text")
    args = parser.parse_args(argv)
    result = run(args)
    return finish(result, report(result), args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
