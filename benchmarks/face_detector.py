"""The face detector and the FER2013-style crop, measured (issue 28).

    python -m benchmarks.face_detector --out docs/results/face-detector.json --md docs/results/face-detector.md

Four parts, all on one thread:

- `fer_crop`: where FER2013's own square lies relative to BlazeFace's box. Each
  FER2013 *validation* image (48x48, FER-cropped) is upscaled 4x (bicubic) onto
  the middle of a 640x480 mid-grey canvas and detected; the scale (FER side /
  box side) and shift (FER centre - box centre, in box sides) are medians over
  the images with a face. These are CROP_SCALE and CROP_SHIFT in
  emotionnet/models/face/crop.py (the shipped values are reported beside the
  fit, so a drift shows). Then the robustness of the rule at 3x and 5x and at
  an off-centre position: IoU of the detector's square with FER's, and the mean
  absolute difference of the 48x48 crops (grey levels of 255).
- `small_images`: FER2013's 48x48 images given as they are (and 2x): how
  often the detector finds a face, and how its square compares with the whole
  image. This is the evidence for crop="auto" taking small images whole.
- `crema_video`: every frame of the six CREMA-D clips of speaker 1001 (PyAV):
  recall (frames with a face), frames with more than one, scores, box size,
  and box steadiness between consecutive frames (IoU, centre jump in box sides),
  as there are no hand-drawn boxes to compare against.
- `speed`: per 640x480 frame (a CREMA-D frame upscaled), median ms of the
  network alone (onnxruntime), the whole detector (letterbox, network,
  decoding, NMS), the crop of the largest face, and detector + crop. With
  `--runtimes` the same network in torch and, where `ai-edge-litert` and the
  mediapipe wheel are at hand (`--wheel`), the original .tflite: the figures
  behind the choice of onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import finish, machine_info, on_canvas, resolve_data, write_json
from emotionnet.corpora.fer2013 import IMAGE_SUFFIXES
from emotionnet.models.face import crop as face_crop
from emotionnet.models.face.crop import crop_face, fer_square
from emotionnet.models.face.detector import FaceBox, FaceDetector, letterbox

FIT_UPSCALE = 4


def fer_images(data: Path, limit: int | None) -> list[np.ndarray]:
    folder = data / "FER2013" / "validation"
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        paths = paths[:: max(1, len(paths) // limit)][:limit]
    return [np.asarray(Image.open(p).convert("L")) for p in paths]


def square_iou(a: tuple, b: tuple) -> float:
    ax, ay, aside = a
    bx, by, bside = b
    w = max(0.0, min(ax + aside, bx + bside) - max(ax, bx))
    h = max(0.0, min(ay + aside, by + bside) - max(ay, by))
    inter = w * h
    return inter / (aside * aside + bside * bside - inter)


def summary(values: list[float], digits: int = 3) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"n": len(values), "median": round(statistics.median(values), digits),
            "p05": round(at(0.05), digits), "p95": round(at(0.95), digits),
            "mean": round(statistics.fmean(values), digits)}


def fit_fer_crop(detector: FaceDetector, faces: list[np.ndarray]) -> dict:
    scales, shift_x, shift_y, missed = [], [], [], 0
    for face in faces:
        canvas, (x, y, side) = on_canvas(face, FIT_UPSCALE)
        found = detector.detect(canvas)
        if not found:
            missed += 1
            continue
        box = found[0]
        box_side = (box.w + box.h) / 2
        scales.append(side / box_side)
        shift_x.append((x + side / 2 - (box.x + box.w / 2)) / box_side)
        shift_y.append((y + side / 2 - (box.y + box.h / 2)) / box_side)
    return {"images": len(faces), "detected": len(scales), "missed": missed,
            "scale": summary(scales), "shift_x": summary(shift_x), "shift_y": summary(shift_y),
            "fitted": {"scale": round(statistics.median(scales), 3),
                       "shift": [round(statistics.median(shift_x), 3), round(statistics.median(shift_y), 3)]},
            "shipped": {"scale": face_crop.CROP_SCALE, "shift": list(face_crop.CROP_SHIFT)}}


def crop_agreement(detector: FaceDetector, faces: list[np.ndarray], upscale: int, at: tuple[float, float]) -> dict:
    """With the shipped rule: IoU of the detector's square with FER's and the 48x48 crops' mean difference.

    Two references put the difference in scale: FER's own square cropped back from the canvas (what resampling
    alone costs) and the next image of the list, an unrelated face (what a wrong crop could cost at worst).
    """
    ious, differences, exact, unrelated = [], [], [], []
    for i, face in enumerate(faces):
        canvas, square = on_canvas(face, upscale, at)
        exact.append(float(np.abs(crop_face(canvas, square) * 255.0 - face).mean()))
        unrelated.append(float(np.abs(faces[(i + 1) % len(faces)].astype(np.float32) - face).mean()))
        found = detector.detect(canvas)
        if not found:
            continue
        ours = fer_square(found[0])
        ious.append(square_iou(ours, square))
        differences.append(float(np.abs(crop_face(canvas, ours) * 255.0 - face).mean()))
    return {"upscale": upscale, "centre_at": list(at), "images": len(faces), "detected": len(ious),
            "recall": round(len(ious) / len(faces), 4), "iou": summary(ious),
            "iou_below_0.7": round(sum(i < 0.7 for i in ious) / max(1, len(ious)), 4),
            "mean_abs_difference": summary(differences, 2), "exact_square_difference": summary(exact, 2),
            "unrelated_face_difference": summary(unrelated, 2)}


def small_images(detector: FaceDetector, faces: list[np.ndarray], upscale: int) -> dict:
    """FER's own crops given as they are: detections and how the detector's square compares with the image."""
    found_any, ious, sides = 0, [], []
    for face in faces:
        image = face if upscale == 1 else np.asarray(Image.fromarray(face).resize(
            (face.shape[1] * upscale, face.shape[0] * upscale), Image.BICUBIC))
        found = detector.detect(image)
        if not found:
            continue
        found_any += 1
        square = fer_square(found[0])
        ious.append(square_iou(square, (0.0, 0.0, float(image.shape[0]))))
        sides.append(found[0].w / image.shape[1])
    return {"size": faces[0].shape[0] * upscale if faces else None, "images": len(faces),
            "with_a_face": round(found_any / max(1, len(faces)), 4), "iou_with_whole_image": summary(ious),
            "iou_below_0.7": round(sum(i < 0.7 for i in ious) / max(1, len(ious)), 4),
            "box_side_over_image": summary(sides)}


def video_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def box_iou(a: FaceBox, b: FaceBox) -> float:
    w = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = w * h
    return inter / (a.area + b.area - inter)


def crema_video(detector: FaceDetector, folder: Path) -> dict:
    per_clip, ious, jumps, scores, sides, total, with_face, several = {}, [], [], [], [], 0, 0, 0
    for path in sorted(folder.glob("*.flv")):
        frames = video_frames(path)
        previous = None
        clip_found = 0
        for frame in frames:
            found = detector.detect(frame)
            total += 1
            if found:
                with_face += 1
                clip_found += 1
                several += len(found) > 1
                face = found[0]
                scores.append(face.score)
                sides.append(face.w / frame.shape[1])
                if previous is not None:
                    ious.append(box_iou(previous, face))
                    jumps.append(float(np.hypot(face.x + face.w / 2 - previous.x - previous.w / 2,
                                                face.y + face.h / 2 - previous.y - previous.h / 2)) / face.w)
            previous = found[0] if found else None
        per_clip[path.name] = {"frames": len(frames), "with_a_face": clip_found,
                               "size": [int(frames[0].shape[1]), int(frames[0].shape[0])] if frames else None}
    return {"clips": per_clip, "frames": total, "with_a_face": with_face,
            "recall": round(with_face / max(1, total), 4), "frames_with_several": several,
            "score": summary(scores), "box_side_over_frame_width": summary(sides),
            "consecutive_iou": summary(ious), "centre_jump_in_box_sides": summary(jumps)}


def timed(functions: dict, repeats: int) -> dict[str, dict[str, float]]:
    """Median milliseconds of each function over `repeats` calls (after one warm-up call each): wall time, and
    the CPU time of this thread, which a loaded machine disturbs far less (every runtime here computes on the
    calling thread when given one thread). The calls take turns, one of each per round, so a change in the
    machine's load falls on all of them alike."""
    wall: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    for function in functions.values():
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.thread_time()
            function()
            cpu[name].append(time.thread_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {name: {"cpu_ms": round(statistics.median(cpu[name]) * 1000, 3),
                   "wall_ms": round(statistics.median(wall[name]) * 1000, 3)} for name in functions}


def speed(detector: FaceDetector, frame: np.ndarray, repeats: int, runtimes: bool, wheel: Path | None) -> dict:
    frame = np.asarray(Image.fromarray(frame).resize((640, 480), Image.BILINEAR))
    canvas, _ = letterbox(frame)
    images = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1.0
    face = detector.detect(frame)[0]
    steps = {"network_onnxruntime": lambda: detector.session.run(None, {"images": images}),
             "letterbox": lambda: letterbox(frame),
             "detector": lambda: detector.detect(frame),
             "crop": lambda: crop_face(frame, fer_square(face)),
             "detector_and_crop": lambda: [crop_face(frame, fer_square(f)) for f in detector.detect(frame)]}
    if runtimes:
        steps["network_torch"] = torch_network(images)
        tflite = tflite_network(wheel, images) if wheel is not None else None
        if tflite is not None:
            steps["network_tflite"] = tflite
    return {"frame": "a CREMA-D frame (1001_DFA_ANG_XX, frame 30) upscaled to 640x480", "repeats": repeats,
            **timed(steps, repeats)}


def torch_network(images: np.ndarray):
    """A call of the same network in torch (scripts/convert_blazeface.py's BlazeFaceNet). Its weights are left as
    initialised: they change no operation, so not the time."""
    import importlib.util

    import torch

    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_blazeface.py"
    spec = importlib.util.spec_from_file_location("convert_blazeface", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = module.BlazeFaceNet().eval()
    inputs = torch.from_numpy(images)

    def run() -> None:
        with torch.inference_mode():
            network(inputs)

    return run


def tflite_network(wheel: Path, images: np.ndarray):
    """A call of the original .tflite in ai-edge-litert (one thread), or None where it is not installed."""
    import zipfile

    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    with zipfile.ZipFile(wheel) as archive:
        model = archive.read("mediapipe/modules/face_detection/face_detection_short_range.tflite")
    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    pixels = np.ascontiguousarray(images.transpose(0, 2, 3, 1))  # TFLite takes NHWC

    def run() -> None:
        interpreter.set_tensor(index, pixels)
        interpreter.invoke()

    return run


def report(result: dict) -> str:
    fit, video, fast = result.get("fer_crop"), result.get("crema_video"), result.get("speed")
    lines = ["# Face detector: BlazeFace short-range and the FER2013-style crop", "",
             f"Command: `{result['command']}` (`--resume` kept parts already measured; without it every part "
             f"runs again)  ", f"Machine: {result['machine']['cpu']}, {result['machine']['cores']} cores shared with "
             f"other jobs, one thread; load average at the start of each part: "
             f"{result.get('load_average_at_start')}. Speeds on a loaded machine are upper bounds.", ""]
    if fit:
        f = fit["fit"]
        lines += ["## The crop rule, fitted on FER2013 validation", "",
                  f"{f['images']} images upscaled {FIT_UPSCALE}x onto a 640x480 grey canvas; a face found in "
                  f"{f['detected']} ({f['missed']} missed).", "",
                  "| quantity | median | 5 % | 95 % |", "| --- | --- | --- | --- |"]
        for key, label in (("scale", "FER side / box side"), ("shift_x", "centre shift x (box sides)"),
                           ("shift_y", "centre shift y (box sides, + is down)")):
            lines.append(f"| {label} | {f[key]['median']} | {f[key]['p05']} | {f[key]['p95']} |")
        lines += ["", f"Fitted: scale {f['fitted']['scale']}, shift {f['fitted']['shift']}; shipped in "
                      f"crop.py: scale {f['shipped']['scale']}, shift {f['shipped']['shift']}.", "",
                  "Robustness of the shipped rule (detector's square vs FER's own):", "",
                  "| upscale | centre at | recall | IoU median | IoU 5 % | IoU < 0.7 | crop difference | "
                  "FER's square re-cropped | an unrelated face |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in fit["agreement"]:
            lines.append(f"| {row['upscale']}x | {row['centre_at']} | {row['recall']} | {row['iou']['median']} | "
                         f"{row['iou']['p05']} | {row['iou_below_0.7']} | {row['mean_abs_difference']['median']} | "
                         f"{row['exact_square_difference']['median']} | {row['unrelated_face_difference']['median']} |")
        lines += ["", "Differences: median over images of the mean absolute difference of the 48x48 crop from "
                      "FER's own image, in grey levels of 255."]
    if result.get("small_images"):
        lines += ["", "## Images that are already a face crop (FER2013's 48x48, given as they are)", "",
                  "| size | with a face | IoU of its square with the whole image (median, 5 %) | IoU < 0.7 |",
                  "| --- | --- | --- | --- |"]
        for row in result["small_images"]:
            lines.append(f"| {row['size']} px | {row['with_a_face']} | {row['iou_with_whole_image'].get('median')}, "
                         f"{row['iou_with_whole_image'].get('p05')} | {row['iou_below_0.7']} |")
    if video:
        lines += ["", "## CREMA-D video frames (speaker 1001, six clips, every frame)", "",
                  f"Recall: {video['with_a_face']} of {video['frames']} frames ({video['recall']}); frames with "
                  f"more than one face: {video['frames_with_several']}.  ",
                  f"Score median {video['score']['median']} (5 %: {video['score']['p05']}); box side / frame width "
                  f"median {video['box_side_over_frame_width']['median']}.  ",
                  f"Steadiness between consecutive frames: IoU median {video['consecutive_iou']['median']} "
                  f"(5 %: {video['consecutive_iou']['p05']}); centre jump median "
                  f"{video['centre_jump_in_box_sides']['median']} box sides (95 %: "
                  f"{video['centre_jump_in_box_sides']['p95']})."]
    if fast:
        lines += ["", "## Speed per 640x480 frame, one thread (median ms)", "",
                  f"{fast['repeats']} rounds, the steps taking turns in each. The network alone on each runtime "
                  f"(torch: the same network, scripts/convert_blazeface.py; tflite: the wheel's original file in "
                  f"ai-edge-litert); detector = letterbox + network + decoding + NMS; crop = the FER2013-style "
                  f"48x48 crop of the largest face. CPU: this thread's CPU time, the figure to compare on a "
                  f"loaded machine; wall: what the caller waited.", "",
                  "| step | CPU ms | wall ms |", "| --- | --- | --- |"]
        for key in ("network_onnxruntime", "network_torch", "network_tflite", "letterbox", "detector", "crop",
                    "detector_and_crop"):
            if fast.get(key) is not None:
                lines.append(f"| {key.replace('_', ' ')} | {fast[key]['cpu_ms']} | {fast[key]['wall_ms']} |")
    lines += ["", "## What was chosen, and why", "",
              "- **Runtime: onnxruntime**, already a core dependency. The original .tflite in `ai-edge-litert` is a "
              "little cheaper (table above), not enough to add a 20 MB dependency (with flatbuffers and protobuf; "
              "no macOS x86 wheel after 1.0.1); the same network in torch takes about 3x the CPU time of "
              "onnxruntime on one thread (its depthwise convolutions).",
              "- **Crop rule**: FER2013's square is CROP_SCALE x the box side, its centre CROP_SHIFT box sides from "
              "the box's (medians above). FER's own crops vary in tightness (scale 5-95 %: see the fit), so no "
              "fixed rule reproduces every one; the classifier should be trained with crop scale and shift jitter "
              "of about that spread.",
              "- **Small images** (`crop=\"auto\"`): an image of at most 96 px on its longer side is taken whole as "
              "one face. On FER2013's own 48x48 images the detector usually finds something, but its square "
              "disagrees with the image (IoU < 0.7) for about a third of them, while the whole image is exactly "
              "FER's crop; `crop=\"detect\"` and `crop=\"whole\"` force either way."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="the corpora folder (default ../shared/data)")
    parser.add_argument("--parts", default="fer_crop,small_images,crema_video,speed")
    parser.add_argument("--limit", type=int, default=None, help="at most N FER2013 images (smoke runs)")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--runtimes", action="store_true", help="also time the network in torch (and TFLite)")
    parser.add_argument("--wheel", type=Path, default=None, help="the mediapipe-0.10.21 wheel, for the TFLite timing")
    parser.add_argument("--out", default=None, help="JSON result")
    parser.add_argument("--md", default=None, help="Markdown report")
    parser.add_argument("--resume", action="store_true", help="keep the parts already in --out")
    args = parser.parse_args(argv)

    import sys

    import torch

    torch.set_num_threads(1)
    data = resolve_data(args.data)
    parts = set(args.parts.split(","))
    detector = FaceDetector(threads=1)
    result: dict = {"command": "python -m benchmarks.face_detector " + " ".join(sys.argv[1:] if argv is None else argv),
                    "machine": machine_info()}
    # Each part is saved as it ends; with --resume, parts already in --out are kept and not run again.
    if args.resume and args.out and Path(args.out).is_file():
        saved = json.loads(Path(args.out).read_text())
        result.update({part: saved[part] for part in parts if part in saved})
        result["load_average_at_start"] = {part: load for part, load in saved.get("load_average_at_start", {}).items()
                                           if part in result}
    faces = fer_images(data, args.limit) if (parts - set(result)) & {"fer_crop", "small_images"} else []
    steps = {
        "fer_crop": lambda: {"fit": fit_fer_crop(detector, faces),
                             "agreement": [crop_agreement(detector, faces, upscale, at) for upscale, at in
                                           ((4, (0.5, 0.5)), (3, (0.5, 0.5)), (5, (0.5, 0.5)), (3, (0.3, 0.4)))]},
        "small_images": lambda: [small_images(detector, faces, upscale) for upscale in (1, 2)],
        "crema_video": lambda: crema_video(detector, data / "CREMA-D-video"),
        "speed": lambda: speed(detector, video_frames(data / "CREMA-D-video" / "1001_DFA_ANG_XX.flv")[30],
                               args.repeats, args.runtimes, args.wheel),
    }
    for part, step in steps.items():
        if part in parts and part not in result:
            result.setdefault("load_average_at_start", {})[part] = [round(x, 2) for x in os.getloadavg()]
            result[part] = step()
            write_json(args.out, result)
    return finish(result, report(result), args.out, args.md)


if __name__ == "__main__":
    raise SystemExit(main())
