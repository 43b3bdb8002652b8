"""Faces as FaceCNN takes them: square, tight crops as FER2013's, grayscale, 48x48, float in [0, 1].

FER2013's faces were registered automatically and cropped square and tight:
forehead to chin, ear to ear. The crop is placed from the detector's box by a
fixed rule, measured rather than chosen by eye: each FER2013 validation image
was upscaled onto a larger grey canvas, BlazeFace run on it, and the scale and
shift that carry the detected box onto FER2013's own square taken as medians
over the images (benchmarks/face_detector.py, `fer_crop` in
docs/results/face-detector.md):

    side   = CROP_SCALE * box side
    centre = box centre + CROP_SHIFT * box side

Parts of the square outside the picture repeat its edge pixels.

Pictures that are already a face crop (FER2013's own 48x48 ones, a thumbnail)
are too small and too tight for the detector, which expects a face with some
picture around it; what it finds there is often partial. `crop="auto"` (the
default) therefore takes any picture of at most SMALL_IMAGE pixels on its longer
side whole, as one face, and runs the detector on larger ones; `"detect"`
always detects (no face found: no faces), `"whole"` never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from emotionnet.models.face.detector import FaceBox, FaceDetector
from emotionnet.models.face.images import as_rgb
from emotionnet.models.face.network import FACE_SIZE

# Medians over the FER2013 validation images with a face found (3,524 of 3,589 when fitted; re-fitted after
# the letterbox change: 3,505, scale 1.216, shift (0.001, -0.105); 5-95 %: scale 0.93-1.61, shift y
# -0.20-0.03): FER's square is a fifth larger than BlazeFace's box and sits a tenth of it higher.
CROP_SCALE = 1.216
CROP_SHIFT = (0.002, -0.105)  # (x, y) in box sides; y grows downwards
SMALL_IMAGE = 96  # pixels on the longer side at most: an image taken whole by crop="auto"

CropMode = Literal["auto", "detect", "whole"]
CROP_MODES: tuple[str, ...] = ("auto", "detect", "whole")


@dataclass(frozen=True)
class FaceCrop:
    """One face ready for FaceCNN, and where it came from."""

    pixels: np.ndarray  # (48, 48) float32 in [0, 1]
    box: FaceBox | None  # the detection; None when the whole image was taken as the face
    region: tuple[float, float, float, float]  # (x, y, w, h) of the part of the image cropped, in its pixels


def fer_square(box: FaceBox) -> tuple[float, float, float]:
    """(x, y, side) of FER2013's square crop around a detected face, in the image's pixels."""
    side = (box.w + box.h) / 2
    centre_x = box.x + box.w / 2 + CROP_SHIFT[0] * side
    centre_y = box.y + box.h / 2 + CROP_SHIFT[1] * side
    crop_side = CROP_SCALE * side
    return centre_x - crop_side / 2, centre_y - crop_side / 2, crop_side


def crop_face(image: np.ndarray, square: tuple[float, float, float], size: int = FACE_SIZE) -> np.ndarray:
    """(size, size) float32 grayscale in [0, 1] of the square (x, y, side) of a uint8 gray or RGB image.

    Only the part of the image under the square is converted and resampled (antialiased bilinear, sub-pixel
    placed), so a face in a 50-megapixel photo costs what it costs in a small one.
    """
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    x, y, side = square
    if not side > 0:
        raise ValueError(f"a crop needs a positive side, got {side}")
    left, top = math.floor(x), math.floor(y)
    right, bottom = max(math.ceil(x + side), left + 1), max(math.ceil(y + side), top + 1)
    rows, cols = (max(top, 0), min(bottom, height)), (max(left, 0), min(right, width))
    if rows[0] >= rows[1] or cols[0] >= cols[1]:
        raise ValueError(f"the square {x:.1f}, {y:.1f}, side {side:.1f} lies outside the {width}x{height} image")
    gray = np.asarray(Image.fromarray(rgb[rows[0]:rows[1], cols[0]:cols[1]]).convert("L"))
    gray = np.pad(gray, ((rows[0] - top, bottom - rows[1]), (cols[0] - left, right - cols[1])), mode="edge")
    region = (x - left, y - top, x - left + side, y - top + side)
    patch = Image.fromarray(gray).resize((size, size), Image.BILINEAR, box=region)
    return np.asarray(patch, dtype=np.float32) / np.float32(255.0)


def whole_face(image: np.ndarray, size: int = FACE_SIZE) -> FaceCrop:
    """The whole image as one face (a face crop already): resized to size x size, aspect not kept."""
    rgb = as_rgb(image)
    gray = Image.fromarray(rgb).convert("L").resize((size, size), Image.BILINEAR)
    height, width = rgb.shape[:2]
    return FaceCrop(np.asarray(gray, dtype=np.float32) / np.float32(255.0), None,
                    (0.0, 0.0, float(width), float(height)))


def find_faces(image: np.ndarray, detector: FaceDetector, crop: CropMode = "auto",
               max_faces: int | None = None, min_score: float | None = None) -> list[FaceCrop]:
    """The faces of one uint8 image as FaceCNN inputs, largest first (see the module docstring for `crop`)."""
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}")
    rgb = as_rgb(image)
    if crop == "whole" or (crop == "auto" and max(rgb.shape[:2]) <= SMALL_IMAGE):
        return [whole_face(rgb)]
    faces = detector.detect(rgb, min_score)[:max_faces]
    crops = []
    for face in faces:
        x, y, side = fer_square(face)
        crops.append(FaceCrop(crop_face(rgb, (x, y, side)), face, (x, y, side, side)))
    return crops
