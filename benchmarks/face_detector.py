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
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import finish, machine_info, resolve_data
from emotionnet.corpora.fer2013 import IMAGE_SUFFIXES
from emotionnet.models.face import crop as face_crop
from emotionnet.models.face.crop import crop_face, fer_square
from emotionnet.models.face.detector import FaceBox, FaceDetector, letterbox

CANVAS = (480, 640)  # height, width
FIT_UPSCALE = 4


def fer_images(data: Path, limit: int | None) -> list[np.ndarray]:
    folder = data / "FER2013" / "validation"
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit:
        paths = paths[:: max(1, len(paths) // limit)][:limit]
    return [np.asarray(Image.open(p).convert("L")) for p in paths]


def on_canvas(face: np.ndarray, upscale: int, at: tuple[float, float] = (0.5, 0.5)) -> tuple[np.ndarray, tuple]:
    """The 48x48 face upscaled onto a grey 640x480 canvas with its centre at `at` (fractions of the canvas);
    returns the canvas and FER's square (x, y, side) on it."""
    side = face.shape[0] * upscale
    big = np.asarray(Image.fromarray(face).resize((side, side), Image.BICUBIC))
    canvas = np.full(CANVAS, 128, dtype=np.uint8)
    x = int(round(at[0] * CANVAS[1] - side / 2))
    y = int(round(at[1] * CANVAS[0] - side / 2))
    canvas[y:y + side, x:x + side] = big
    return canvas, (float(x), float(y), float(side))


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
    """With the shipped rule: IoU of the detector's square with FER's and the 48x48 crops' mean difference."""
    ious, differences, missed = [], [], 0
    for face in faces:
        canvas, square = on_canvas(face, upscale, at)
        found = detector.detect(canvas)
        if not found:
            missed += 1
            continue
        ours = fer_square(found[0])
        ious.append(square_iou(ours, square))
        differences.append(float(np.abs(crop_face(canvas, ours) * 255.0 - face.astype(np.float32)).mean()))
    return {"upscale": upscale, "centre_at": list(at), "images": len(faces), "detected": len(ious),
            "recall": round(len(ious) / len(faces), 4), "iou": summary(ious),
            "iou_below_0.7": round(sum(i < 0.7 for i in ious) / max(1, len(ious)), 4),
            "mean_abs_difference": summary(differences, 2)}


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


def timed(function, repeats: int) -> float:
    """Median milliseconds of `repeats` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def speed(detector: FaceDetector, frame: np.ndarray, repeats: int, runtimes: bool, wheel: Path | None) -> dict:
    frame = np.asarray(Image.fromarray(frame).resize((640, 480), Image.BILINEAR))
    canvas, _ = letterbox(frame)
    network_input = {"images": canvas.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1.0}
    face = detector.detect(frame)[0]
    result = {"frame": "a CREMA-D frame (1001_DFA_ANG_XX) upscaled to 640x480", "repeats": repeats,
              "network_onnxruntime_ms": timed(lambda: detector.session.run(None, network_input), repeats),
              "letterbox_ms": timed(lambda: letterbox(frame), repeats),
              "detector_ms": timed(lambda: detector.detect(frame), repeats),
              "crop_ms": timed(lambda: crop_face(frame, fer_square(face)), repeats),
              "detector_and_crop_ms": timed(lambda: [crop_face(frame, fer_square(f)) for f in detector.detect(frame)],
                                            repeats)}
    if runtimes:
        result["network_torch_ms"] = torch_network_ms(network_input["images"], repeats)
        if wheel is not None:
            result["network_tflite_ms"] = tflite_network_ms(wheel, canvas, repeats)
    return result


def torch_network_ms(images: np.ndarray, repeats: int) -> float:
    """The same network in torch (scripts/convert_blazeface.py's), weights from the shipped ONNX file."""
    import importlib.util

    import onnx
    import torch
    from onnx import numpy_helper

    from emotionnet.models.face.detector import weights_path

    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_blazeface.py"
    spec = importlib.util.spec_from_file_location("convert_blazeface", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    network = module.BlazeFaceNet().eval()
    initialisers = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy())
                    for i in onnx.load(str(weights_path())).graph.initializer}
    network.load_state_dict({name: initialisers[name] for name in network.state_dict()})
    inputs = torch.from_numpy(images)
    with torch.inference_mode():
        return timed(lambda: network(inputs), repeats)


def tflite_network_ms(wheel: Path, canvas: np.ndarray, repeats: int) -> float | None:
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
    pixels = canvas[None].astype(np.float32) / 127.5 - 1.0

    def run() -> None:
        interpreter.set_tensor(index, pixels)
        interpreter.invoke()

    return timed(run, repeats)


def report(result: dict) -> str:
    fit, video, fast = result.get("fer_crop"), result.get("crema_video"), result.get("speed")
    lines = ["# Face detector: BlazeFace short-range and the FER2013-style crop", "",
             f"Command: `{result['command']}`  ", f"Machine: {result['machine']['cpu']}, "
             f"load average at start {result['machine']['load_average']} (a shared 2-core machine: "
             f"speeds are upper bounds), one thread.", ""]
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
                  "| upscale | centre at | recall | IoU median | IoU 5 % | IoU < 0.7 | crop mean abs diff (/255) |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in fit["agreement"]:
            lines.append(f"| {row['upscale']}x | {row['centre_at']} | {row['recall']} | {row['iou']['median']} | "
                         f"{row['iou']['p05']} | {row['iou_below_0.7']} | {row['mean_abs_difference']['median']} |")
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
        lines += ["", "## Speed per 640x480 frame, one thread (median ms)", "", "| step | ms |", "| --- | --- |"]
        for key in ("network_onnxruntime_ms", "network_torch_ms", "network_tflite_ms", "letterbox_ms",
                    "detector_ms", "crop_ms", "detector_and_crop_ms"):
            if fast.get(key) is not None:
                lines.append(f"| {key.removesuffix('_ms').replace('_', ' ')} | {fast[key]} |")
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
    args = parser.parse_args(argv)

    import sys

    import torch

    torch.set_num_threads(1)
    data = resolve_data(args.data)
    parts = set(args.parts.split(","))
    detector = FaceDetector(threads=1)
    result: dict = {"command": "python -m benchmarks.face_detector " + " ".join(sys.argv[1:] if argv is None else argv),
                    "machine": machine_info()}
    faces = fer_images(data, args.limit) if parts & {"fer_crop", "small_images"} else []
    if "fer_crop" in parts:
        result["fer_crop"] = {"fit": fit_fer_crop(detector, faces),
                              "agreement": [crop_agreement(detector, faces, upscale, at) for upscale, at in
                                            ((4, (0.5, 0.5)), (3, (0.5, 0.5)), (5, (0.5, 0.5)), (3, (0.3, 0.4)))]}
    if "small_images" in parts:
        result["small_images"] = [small_images(detector, faces, upscale) for upscale in (1, 2)]
    if "crema_video" in parts:
        result["crema_video"] = crema_video(detector, data / "CREMA-D-video")
    if "speed" in parts:
        frame = video_frames(data / "CREMA-D-video" / "1001_DFA_ANG_XX.flv")[30]
        result["speed"] = speed(detector, frame, args.repeats, args.runtimes, args.wheel)
    return finish(result, report(result), args.out, args.md)


if __name__ == "__main__":
    raise SystemExit(main())
