"""Faces in an image: MediaPipe's BlazeFace short-range detector, run by onnxruntime.

The network is Google's BlazeFace "short range" model (faces within about 2 m of
the camera, i.e. a face taking at least ~1/8 of the picture) from the
`mediapipe==0.10.21` wheel, Apache-2.0. Its float16 weights were converted
once, unchanged, from the wheel's .tflite to ONNX (scripts/convert_blazeface.py,
which checks the outputs against the .tflite's) and ship as
`emotionnet/assets/blazeface-short-range.onnx` with the licence beside it; the
file's sha256 is checked on load. onnxruntime, already a dependency, runs it:
no TFLite interpreter to install, and about a third of the CPU time of the same
network in torch on one thread (docs/results/face-detector.md).

What surrounds the network follows MediaPipe's face_detection_short_range
graph: the image is letterboxed to 128x128 in [-1, 1]; 896 SSD anchors
(a 16x16 grid with 2 per cell and an 8x8 grid with 6, all of unit size) decode
the 16 regressed numbers (box centre and size, six keypoints) per anchor;
sigmoid scores at or above `min_score` (0.5) are merged by weighted non-maximum
suppression (IoU > 0.3: boxes and keypoints averaged by score, the best score kept).

    detector = FaceDetector()
    for face in detector.detect(rgb_uint8):      # largest face first
        print(face.box, face.score, face.keypoints["nose_tip"])
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from emotionnet.errors import DetectorFileError
from emotionnet.models.face.images import as_rgb

WEIGHTS_FILE = "blazeface-short-range.onnx"
BLAZEFACE_SHA256 = "a9484a5c3037c20ad19903096358150774b938536abbb1851ad006ee8e488026"
INPUT_SIZE = 128
ANCHORS_16, ANCHORS_8 = 2, 6  # anchors per cell of the 16x16 and the 8x8 grid
# The subject's own right and left, as MediaPipe names them.
KEYPOINTS: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")
MIN_SCORE = 0.5  # MediaPipe's short-range graph
NMS_IOU = 0.3
SCORE_CLIP = 100.0  # raw scores are clipped to +-100 before the sigmoid, as MediaPipe does


@dataclass(frozen=True)
class FaceBox:
    """One face: its box in pixels of the image given (top-left x, y, width, height), score and keypoints."""

    x: float
    y: float
    w: float
    h: float
    score: float
    keypoints: dict[str, tuple[float, float]]

    @property
    def box(self) -> list[float]:
        """[x, y, w, h] in pixels, rounded to 0.1 px: what JSON answers carry."""
        return [round(v, 1) for v in (self.x, self.y, self.w, self.h)]

    @property
    def area(self) -> float:
        return self.w * self.h


def ssd_anchors() -> np.ndarray:
    """(896, 2) anchor centres in [0, 1] (x, y): MediaPipe's SsdAnchorsCalculator for the short-range model
    (strides 8, 16, 16, 16; fixed unit anchor size, so only the centres matter)."""
    centres = []
    for grid, per_cell in ((INPUT_SIZE // 8, ANCHORS_16), (INPUT_SIZE // 16, ANCHORS_8)):
        for row in range(grid):
            for col in range(grid):
                centres += [((col + 0.5) / grid, (row + 0.5) / grid)] * per_cell
    return np.asarray(centres, dtype=np.float32)


def weights_path() -> Path:
    return Path(str(resources.files("emotionnet") / "assets" / WEIGHTS_FILE))


def load_blazeface(path: str | Path | None = None, threads: int = 1):
    """An onnxruntime session of the network, after checking the file's sha256 (DetectorFileError if it differs).

    Inputs `images` (batch, 3, 128, 128) float32 RGB in [-1, 1]; outputs `regressors` (batch, 896, 16) and
    `scores` (batch, 896, 1) logits.
    """
    import onnxruntime

    path = Path(path) if path is not None else weights_path()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DetectorFileError(f"{path}: the face detector's weights cannot be read ({exc.strerror}); "
                                f"reinstall emotionnet") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != BLAZEFACE_SHA256:
        raise DetectorFileError(f"{path}: sha256 {digest[:16]}... is not the shipped BlazeFace weights' "
                                f"{BLAZEFACE_SHA256[:16]}... (a damaged or replaced file; reinstall emotionnet)")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- the detector

@dataclass(frozen=True)
class Fit:
    """How an image was fitted into the 128x128 input: scaled per axis, then padded on the left and top."""

    scale: np.ndarray  # (x, y): input pixels per image pixel (equal but for rounding)
    pad: np.ndarray  # (x, y): input pixels of black left of and above the image


def letterbox(image: np.ndarray) -> tuple[np.ndarray, Fit]:
    """The image scaled to fit 128x128 (aspect kept), centred on black.

    Pillow first averages whole blocks of pixels (`reducing_gap=1.0`: a 640x480 frame in 5x5 blocks), then
    resamples the rest of the way bilinearly. For a 640x480 frame that took 0.24 ms of CPU here where a
    bilinear filter over the whole frame took 1.36, and the boxes stayed put (measured once, on 47 CREMA-D
    frames: IoU median 0.987 with the slower filter's; the FER2013 crop fit on 200 images moved by 0.002).
    """
    height, width = image.shape[:2]
    scale = INPUT_SIZE / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR, reducing_gap=1.0))
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), dtype=np.uint8)
    pad_x, pad_y = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
    canvas[pad_y:pad_y + new_h, pad_x:pad_x + new_w] = resized
    return canvas, Fit(np.array([new_w / width, new_h / height]), np.array([pad_x, pad_y], dtype=float))


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box with each row of `others`."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def weighted_nms(corners: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression.

    Takes the best remaining detection and every remaining one overlapping it by IoU > `iou_threshold`,
    averages their corners and keypoints weighted by score, keeps the best score; repeats on the rest.
    """
    order = np.argsort(-scores, kind="stable")
    merged = []
    while order.size:
        best = order[0]
        overlapping = _iou(corners[best], corners[order]) > iou_threshold
        group, order = order[overlapping], order[~overlapping]
        weights = scores[group][:, None]
        merged.append(((corners[group] * weights).sum(0) / weights.sum(),
                       (keypoints[group] * weights[:, :, None]).sum(0) / weights.sum(),
                       float(scores[best])))
    return merged


class FaceDetector:
    """BlazeFace short-range: `detect(image)` -> the faces in it, largest first.

    `min_score` is the detection threshold (MediaPipe's 0.5 by default); `threads` the CPU threads of
    onnxruntime (one, as everywhere in the package, unless the caller says otherwise).
    """

    def __init__(self, min_score: float = MIN_SCORE, iou_threshold: float = NMS_IOU, threads: int = 1,
                 weights: str | Path | None = None) -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {min_score}")
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.session = load_blazeface(weights, threads)
        self.anchors = ssd_anchors()

    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[FaceBox]:
        """Faces in one uint8 image, (height, width) gray or (height, width, 3) RGB, largest first."""
        return self.detect_batch([image], min_score)[0]

    def detect_batch(self, images: Sequence[np.ndarray], min_score: float | None = None) -> list[list[FaceBox]]:
        """`detect` for several images (video frames, say) through the network at once."""
        if not len(images):
            return []
        boxed = [letterbox(as_rgb(image, f"image {i}")) for i, image in enumerate(images)]
        pixels = np.stack([canvas for canvas, _ in boxed]).transpose(0, 3, 1, 2).astype(np.float32)
        regressors, logits = self.session.run(None, {"images": pixels / np.float32(127.5) - np.float32(1.0)})
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[:, :, 0].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        threshold = self.min_score if min_score is None else min_score
        return [self._decode(regressors[i], scores[i], threshold, fit) for i, (_, fit) in enumerate(boxed)]

    def _decode(self, raw: np.ndarray, scores: np.ndarray, threshold: float, fit: Fit) -> list[FaceBox]:
        keep = scores >= threshold
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep].astype(np.float64), scores[keep].astype(np.float64), self.anchors[keep]
        # Offsets are in input pixels relative to the anchor centre; sizes in input pixels (unit anchors).
        centres = raw[:, 0:2] + anchors * INPUT_SIZE
        half = raw[:, 2:4] / 2
        corners = np.concatenate([centres - half, centres + half], axis=1)
        keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :] * INPUT_SIZE
        faces = []
        for corner, points, score in weighted_nms(corners, keypoints, scores, self.iou_threshold):
            (x0, y0), (x1, y1) = (corner[:2] - fit.pad) / fit.scale, (corner[2:] - fit.pad) / fit.scale
            points = (points - fit.pad) / fit.scale
            faces.append(FaceBox(float(x0), float(y0), float(x1 - x0), float(y1 - y0), score,
                                 {name: (float(px), float(py)) for name, (px, py) in zip(KEYPOINTS, points)}))
        return sorted(faces, key=lambda face: face.area, reverse=True)
