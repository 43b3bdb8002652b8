"""Video decoding's cost against the voice model's, one thread (issue 29, DESIGN.md "video, one thread").

    python -m benchmarks.video --seconds 120 --json docs/results/video-decode.json --md docs/results/video-decode.md

A 720p 30 fps H.264 + AAC video is generated once (moving gradients, a moving
disc and a little noise, so that the decoder has real work; speech-like audio)
and kept in `--cache`. Then, one thread each, in this process:
- the audio track decoded and resampled to 16 kHz (`Video.audio`);
- every frame decoded and those at `--fps` converted to RGB (`Video.frames`);
- the voice models' timelines of that audio.
Real-time factors (seconds of work per second of video) and decoding's share
of the total; the face model (`--face-model`) and `predict_video` end to end; and
the resident memory every 100 kept frames (flat over a long video?). Each part
is timed in CPU seconds of this process (one thread: what an idle core's wall
time would be; the reference machine is shared) and in wall seconds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.common import comma_list, finish, machine_info, write_video
from emotionnet.evaluation.signals import speech_like

SIZE = (1280, 720)  # 720p, as DESIGN.md's video target
RATE = 30


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def scene(size: tuple[int, int], seed: int = 0):
    """A picture that changes every frame: moving colour gradients, a moving disc, mild noise."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.default_rng(seed).integers(0, 12, (8, height, width, 1), dtype=np.uint8)

    def image_at(t: float) -> np.ndarray:
        r = 127 + 100 * np.sin(xx / 97 + t * 1.3)
        g = 127 + 100 * np.sin(yy / 61 - t * 0.7)
        b = 127 + 100 * np.sin((xx + yy) / 143 + t * 2.1)
        cx, cy = width / 2 + width / 3 * np.sin(t * 0.9), height / 2 + height / 4 * np.cos(t * 1.1)
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (height / 6) ** 2
        picture = np.stack([r, g, b], axis=-1)
        picture[disc] = (230, 190, 160)
        return (picture.astype(np.uint8) + noise[int(t * RATE) % 8])

    return image_at


def make_video(cache: Path, seconds: float, size: tuple[int, int] = SIZE) -> Path:
    path = cache / f"talk-{size[0]}x{size[1]}-{RATE}fps-{seconds:g}s.mp4"
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"writing {path} ...", file=sys.stderr, flush=True)
        partial = path.with_suffix(".part.mp4")
        write_video(partial, seconds, fps=RATE, size=size, image_at=scene(size),
                    audio=speech_like(seconds, sample_rate=48_000, speech_every=(4.0, 5.0)),
                    options={"preset": "veryfast", "crf": "23"})
        partial.rename(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python -m benchmarks.video --seconds 120 "
                                            "--json docs/results/video-decode.json --md docs/results/video-decode.md")
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the generated video")
    parser.add_argument("--fps", type=float, default=5.0, help="frames a second given to a face model")
    parser.add_argument("--size", default="1280x720", help="width x height of the generated video (default 720p)")
    parser.add_argument("--voice-models", default="whisper-base,fast")
    parser.add_argument("--face-model", default="face", help="the face model for the end-to-end row ('' to skip)")
    parser.add_argument("--cache", default="runs/video-bench", help="where the generated video is kept")
    parser.add_argument("--json", default=None)
    parser.add_argument("--md", default=None)
    args = parser.parse_args(argv)

    import torch

    from emotionnet import load_model
    from emotionnet.video import open_video

    torch.set_num_threads(1)
    size = tuple(int(x) for x in args.size.lower().split("x"))
    path = make_video(Path(args.cache), args.seconds, size)
    video = open_video(path)
    duration = video.duration

    wall = {}
    cpu, wall["audio"] = time.process_time(), time.perf_counter()
    audio = video.audio()
    audio_seconds, wall["audio"] = time.process_time() - cpu, time.perf_counter() - wall["audio"]

    rss, kept = [], 0
    cpu, wall["frames"] = time.process_time(), time.perf_counter()
    for i, _frame in enumerate(video.frames(fps=args.fps, threads=1)):
        kept += 1
        if i % 100 == 0:
            rss.append(round(_rss_mb(), 1))
    frames_seconds, wall["frames"] = time.process_time() - cpu, time.perf_counter() - wall["frames"]
    cpu, wall["frames_skip_deblocking"] = time.process_time(), time.perf_counter()
    for _frame in video.frames(fps=args.fps, threads=1, skip_deblocking=True):
        pass
    fast_seconds = time.process_time() - cpu
    wall["frames_skip_deblocking"] = time.perf_counter() - wall["frames_skip_deblocking"]

    voice = {}
    for name in comma_list(args.voice_models):
        recognizer = load_model(name)
        recognizer.predict_timeline(audio[:16_000 * 3], 16_000)  # warm up
        cpu, wall[name] = time.process_time(), time.perf_counter()
        recognizer.predict_timeline(audio, 16_000)
        voice[name], wall[name] = time.process_time() - cpu, time.perf_counter() - wall[name]

    end_to_end = {}
    if args.face_model:  # decode + faces on the kept frames + voice + fusion: predict_video as `predict` runs it
        from emotionnet.inference.video_timeline import predict_video

        faces = load_model(args.face_model)
        cpu = time.process_time()
        for frame in video.frames(fps=args.fps, threads=1):
            faces.score_frames([frame.image])
        end_to_end["faces_with_decode"] = time.process_time() - cpu
        voice_model = comma_list(args.voice_models)[0]
        recognizer = load_model(voice_model)
        cpu, wall["end_to_end"] = time.process_time(), time.perf_counter()
        predict_video(recognizer, path, faces.score_frames, fps=args.fps)
        end_to_end[f"predict_video_{voice_model}"] = time.process_time() - cpu
        wall["end_to_end"] = time.perf_counter() - wall["end_to_end"]

    decode = audio_seconds + frames_seconds
    result = {"benchmark": "video", "issue": 29, "machine": machine_info(), "threads": 1,
              "command": "python -m benchmarks.video " + " ".join(argv if argv is not None else sys.argv[1:]),
              "video": {"size": list(size), "frame_rate": RATE, "codec": "h264 (libx264 veryfast, crf 23) + aac",
                        "seconds": round(duration, 3), "frames_kept": kept, "fps_kept": args.fps},
              "wall_seconds": {k: round(v, 3) for k, v in wall.items()},
              "load_average_after": [round(x, 2) for x in os.getloadavg()],
              "cpu_seconds": {"audio_decode": round(audio_seconds, 3), "frames_decode": round(frames_seconds, 3),
                          "frames_decode_skip_deblocking": round(fast_seconds, 3),
                          **{f"voice_{k}": round(v, 3) for k, v in voice.items()}},
              "rtf": {"audio_decode": round(audio_seconds / duration, 4),
                      "frames_decode": round(frames_seconds / duration, 4),
                      "frames_decode_skip_deblocking": round(fast_seconds / duration, 4),
                      **{f"voice_{k}": round(v / duration, 4) for k, v in voice.items()}},
              "rss_mb_every_100_kept_frames": rss,
              "end_to_end_rtf": {k: round(v / duration, 4) for k, v in end_to_end.items()}}
    lines = ["# Video decoding against the voice model, one thread (issue 29)", "",
             f"Command: `{result['command']}`", "",
             f"Generated {size[0]}x{size[1]} {RATE} fps H.264 + AAC video, {duration:.1f} s; frames kept at "
             f"{args.fps:g} fps ({kept}); every frame is decoded.", "",
             "| part | CPU seconds | RTF | share of decode + voice |", "| --- | --- | --- | --- |"]
    for name, seconds in voice.items():
        total = decode + seconds
        lines += [f"| **with `{name}`** | | | |",
                  f"| audio decode + resample | {audio_seconds:.2f} | {audio_seconds / duration:.4f} | "
                  f"{audio_seconds / total:.0%} |",
                  f"| frames decode (+ RGB at {args.fps:g} fps) | {frames_seconds:.2f} | "
                  f"{frames_seconds / duration:.4f} | {frames_seconds / total:.0%} |",
                  f"| (frames decode without deblocking: `skip_deblocking=True`) | {fast_seconds:.2f} | "
                  f"{fast_seconds / duration:.4f} | |",
                  f"| voice timeline | {seconds:.2f} | {seconds / duration:.4f} | {seconds / total:.0%} |",
                  f"| total | {total:.2f} | {total / duration:.4f} | |"]
    lines += ["", f"Wall seconds on the shared machine (load average {result['load_average_after']} after): "
              + ", ".join(f"{k} {v:.2f}" for k, v in wall.items()) + ".",
              f"Resident memory while frames were read, every 100 kept frames (MB): {rss}"]
    if end_to_end:
        lines += ["", "End to end, one thread, CPU seconds per second of video (RTF): "
                  + ", ".join(f"{k} {v / duration:.4f}" for k, v in end_to_end.items())
                  + ". The generated frames hold no face, so the face model's detector runs on every kept frame "
                  "and its classifier on none: a face in every frame adds the classifier's one-pass cost "
                  "(benchmarks/face.py) at the kept rate."]
    return finish(result, "\n".join(lines), args.json, args.md)


if __name__ == "__main__":
    sys.exit(main())
