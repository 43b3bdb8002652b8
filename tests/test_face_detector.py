"""The face detector (BlazeFace short-range on onnxruntime), FER2013-style crops and image decoding."""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emotionnet.models.face.crop import (
    CROP_SCALE,
    CROP_SHIFT,
    SMALL_IMAGE,
    crop_face,
    fer_square,
    find_faces,
)
from emotionnet.models.face.detector import (
    DetectorFileError,
    FaceBox,
    FaceDetector,
    ssd_anchors,
    weighted_nms,
    weights_path,
)
from emotionnet.models.face.images import ImageError, load_image

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FER_VALIDATION = SHARED_DATA / "FER2013" / "validation"


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def fer_faces(n: int) -> list[np.ndarray]:
    """The first `n` FER2013 validation images of the happy and neutral folders (skip without the corpus)."""
    if not FER_VALIDATION.is_dir():
        pytest.skip(f"FER2013 not found at {FER_VALIDATION} (see ../shared/README.md); no real face image "
                    f"ships with the package, so the detector's positive cases need the corpus")
    paths = sorted((FER_VALIDATION / "happy").glob("*.jpg"))[: n // 2] + \
        sorted((FER_VALIDATION / "neutral").glob("*.jpg"))[: n - n // 2]
    return [np.asarray(Image.open(p).convert("L")) for p in paths]


def on_canvas(face: np.ndarray, upscale: int = 4, x: int = 220, y: int = 120) -> tuple[np.ndarray, tuple]:
    side = face.shape[0] * upscale
    canvas = np.full((480, 640), 128, dtype=np.uint8)
    canvas[y:y + side, x:x + side] = np.asarray(Image.fromarray(face).resize((side, side), Image.BICUBIC))
    return canvas, (x, y, side)


# --------------------------------------------------------------------------- the detector

def test_no_face_in_generated_images(detector):
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 640, dtype=np.float32)
    images = [np.full((480, 640, 3), 128, np.uint8),
              rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
              np.broadcast_to(ramp, (480, 640)).astype(np.uint8),
              np.kron(rng.integers(0, 2, (12, 16)), np.ones((40, 40))).astype(np.uint8) * 255]  # a checkerboard
    assert [detector.detect(image) for image in images] == [[], [], [], []]


def test_real_faces_give_one_box_around_the_face(detector):
    faces = fer_faces(10)
    found = 0
    for face in faces:
        canvas, (x, y, side) = on_canvas(face)
        boxes = detector.detect(canvas)
        assert len(boxes) <= 1, boxes
        if boxes:
            found += 1
            box = boxes[0]
            assert box.score >= 0.5
            centre = (box.x + box.w / 2, box.y + box.h / 2)
            assert x < centre[0] < x + side and y < centre[1] < y + side
            assert 0.4 * side < box.w < 1.2 * side
            right_eye, left_eye = box.keypoints["right_eye"], box.keypoints["left_eye"]
            # The subject's right eye is on the image's left, both above the mouth.
            assert right_eye[0] < left_eye[0] and max(right_eye[1], left_eye[1]) < box.keypoints["mouth_center"][1]
    assert found >= 9, f"a face found in {found} of 10 upscaled FER2013 images"


def test_boxes_follow_the_face_in_the_image(detector):
    """The same face moved and shrunk: the box moves and shrinks with it (letterbox undone correctly)."""
    face = fer_faces(2)[0]
    a = detector.detect(on_canvas(face, 6, 100, 60)[0])[0]
    b = detector.detect(on_canvas(face, 3, 400, 300)[0])[0]
    assert b.w == pytest.approx(a.w / 2, rel=0.15)
    # Within a tenth of the face: the network sees the small face at 29 px, its boxes are coarser there.
    assert (b.x - 400) == pytest.approx((a.x - 100) / 2, abs=0.1 * 144)
    assert (b.y - 300) == pytest.approx((a.y - 60) / 2, abs=0.1 * 144)
    portrait = np.full((900, 400), 128, np.uint8)  # a tall image: letterboxed left and right
    portrait[500:788, 100:388] = np.asarray(Image.fromarray(face).resize((288, 288), Image.BICUBIC))
    c = detector.detect(portrait)[0]
    # A tenth of the face again (the network sees it at 41 px here, 58 px in `a`); a wrong letterbox offset
    # would move the box by the 35 px of padding on the left of the input, 246 px of this image.
    assert (c.x - 100, c.y - 500) == pytest.approx((a.x - 100, a.y - 60), abs=0.1 * 288)


def test_a_batch_answers_as_one_by_one(detector):
    faces = fer_faces(2)
    images = [on_canvas(faces[0])[0], np.full((200, 300), 90, np.uint8), on_canvas(faces[1], 3)[0]]
    batch = detector.detect_batch(images)
    single = [detector.detect(image) for image in images]
    assert [len(b) for b in batch] == [len(s) for s in single]
    for b, s in zip(batch, single):
        for one, other in zip(b, s):
            assert one.box == pytest.approx(other.box, abs=0.2)


def test_min_score_filters(detector):
    canvas = on_canvas(fer_faces(2)[0])[0]
    boxes = detector.detect(canvas, min_score=0.0)  # every anchor, merged: many boxes
    assert len(boxes) > 1
    assert detector.detect(canvas, min_score=1.0) == []
    with pytest.raises(ValueError, match="min_score"):
        FaceDetector(min_score=1.5)


def test_anchors_are_mediapipes():
    anchors = ssd_anchors()
    assert anchors.shape == (896, 2)
    assert anchors[0] == pytest.approx([1 / 32, 1 / 32]) and anchors[1] == pytest.approx([1 / 32, 1 / 32])
    assert anchors[2] == pytest.approx([3 / 32, 1 / 32])
    assert anchors[512] == pytest.approx([1 / 16, 1 / 16]) and anchors[517] == pytest.approx([1 / 16, 1 / 16])
    assert anchors[-1] == pytest.approx([15 / 16, 15 / 16])


def test_weighted_nms_merges_overlaps_by_score():
    corners = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=float)
    keypoints = np.zeros((3, 6, 2))
    keypoints[1] += 4.0
    merged = weighted_nms(corners, keypoints, np.array([0.9, 0.3, 0.6]))
    assert len(merged) == 2
    (box, points, score), (other, _, other_score) = merged
    assert score == 0.9 and other_score == 0.6
    assert box == pytest.approx([0.25, 0.25, 10.25, 10.25])  # (0 * 0.9 + 1 * 0.3) / 1.2
    assert points[0] == pytest.approx([1.0, 1.0])
    assert other == pytest.approx([50, 50, 60, 60])


def test_shipped_weights_pass_their_digest_and_a_changed_file_does_not(tmp_path):
    FaceDetector()  # the shipped file: no error
    changed = tmp_path / "blazeface.onnx"
    shutil.copy(weights_path(), changed)
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 1
    changed.write_bytes(bytes(data))
    with pytest.raises(DetectorFileError, match="sha256"):
        FaceDetector(weights=changed)
    with pytest.raises(DetectorFileError, match="cannot be read"):
        FaceDetector(weights=tmp_path / "missing.onnx")
    assert "Apache License" in weights_path().with_suffix(".LICENSE").read_text()


# --------------------------------------------------------------------------- the crop

def test_crop_is_48x48_float_in_unit_range_and_takes_the_square():
    image = np.zeros((100, 120, 3), np.uint8)
    image[20:60, 30:70] = 255  # a white square on black
    inside = crop_face(image, (30, 20, 40))
    assert inside.shape == (48, 48) and inside.dtype == np.float32
    assert inside.min() >= 0.99
    around = crop_face(image, (10, 0, 80))
    assert 0.0 <= around.min() < 0.01 and around.max() > 0.99
    assert around[24, 24] > 0.99 and around[2, 2] < 0.01


def test_crop_past_the_border_repeats_the_edge():
    image = np.zeros((50, 50), np.uint8)
    image[:, :25] = 200  # left half light
    crop = crop_face(image, (-40, 0, 50))  # four fifths left of the picture
    assert crop.shape == (48, 48)
    assert crop == pytest.approx(np.full((48, 48), 200 / 255), abs=1e-6)
    with pytest.raises(ValueError, match="outside"):
        crop_face(image, (60, 60, 10))


def test_fer_square_is_scaled_and_shifted_from_the_box():
    box = FaceBox(100.0, 50.0, 80.0, 80.0, 0.9, {})
    x, y, side = fer_square(box)
    assert side == pytest.approx(CROP_SCALE * 80)
    assert x + side / 2 == pytest.approx(140 + 80 * CROP_SHIFT[0])
    assert y + side / 2 == pytest.approx(90 + 80 * CROP_SHIFT[1])


def test_detected_square_lands_on_fers_own(detector):
    overlaps = []
    for face in fer_faces(8):
        canvas, (x, y, side) = on_canvas(face)
        crops = find_faces(canvas, detector)
        if not crops:
            continue
        assert crops[0].box is not None and crops[0].pixels.shape == (48, 48)
        cx, cy, cw, ch = crops[0].region
        inter = max(0, min(cx + cw, x + side) - max(cx, x)) * max(0, min(cy + ch, y + side) - max(cy, y))
        overlaps.append(inter / (cw * ch + side * side - inter))
    assert len(overlaps) >= 7 and float(np.median(overlaps)) > 0.7, overlaps


def test_small_images_are_taken_whole_and_the_modes(detector):
    tiny = np.full((48, 48), 100, np.uint8)  # no face at all: auto still answers, as one whole face
    (whole,) = find_faces(tiny, detector)
    assert whole.box is None and whole.region == (0.0, 0.0, 48.0, 48.0)
    assert whole.pixels == pytest.approx(np.full((48, 48), 100 / 255), abs=1e-6)
    assert find_faces(tiny, detector, crop="detect") == []
    big = np.full((SMALL_IMAGE + 1, 200), 100, np.uint8)
    assert find_faces(big, detector) == []  # large and faceless: no face
    assert len(find_faces(big, detector, crop="whole")) == 1
    with pytest.raises(ValueError, match="crop must be one of"):
        find_faces(big, detector, crop="centre")


# --------------------------------------------------------------------------- image decoding

def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_formats_decode_by_content_not_name(tmp_path, format):
    picture = Image.new("RGB", (64, 32), (200, 30, 40))
    path = tmp_path / "picture.gif"  # the name lies
    path.write_bytes(encoded(picture, format, **({"quality": 95} if format != "PNG" else {})))
    rgb = load_image(path)
    assert rgb.shape == (32, 64, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - [200, 30, 40]).max() <= 6


def test_exif_orientation_is_applied():
    picture = Image.new("RGB", (60, 20), (0, 0, 0))
    picture.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    rgb = load_image(encoded(picture, "JPEG", exif=exif, quality=95))
    assert rgb.shape == (60, 20, 3)
    assert rgb[:8].mean() > 200 and rgb[-8:].mean() < 50  # the white band is now at the top


def test_transparency_over_white_and_16_bit_scaled():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    rgb = load_image(encoded(rgba, "PNG"))
    assert rgb[4, 4].tolist() == [255, 255, 255] and rgb[0, 0].tolist() == [10, 20, 30]
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((4, 4))
    assert load_image(encoded(palette, "PNG", transparency=palette.getpixel((4, 4))))[4, 4].tolist() == [255] * 3
    deep = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    gray = load_image(encoded(deep, "PNG"))
    assert gray[0, :, 0].tolist() == [0, 128, 255]


def test_bad_files_are_one_clear_error_naming_them(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    with pytest.raises(ImageError, match=r"notes\.jpg: not a JPEG, PNG or WebP image"):
        load_image(text)
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(encoded(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG")[:2000])
    with pytest.raises(ImageError, match=r"cut\.jpg: a damaged or unreadable image"):
        load_image(truncated)
    gif = tmp_path / "a.gif"
    gif.write_bytes(encoded(Image.new("RGB", (4, 4)), "GIF"))
    with pytest.raises(ImageError, match="not a JPEG, PNG or WebP"):
        load_image(gif)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="uint8"):
        load_image(np.zeros((4, 4), np.float32))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (8-bit gray) and whose pixel data is absent."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_pixel_bombs_are_refused_from_the_header():
    with pytest.raises(ImageError, match=r"<bytes>: 12000x10000 is 120 megapixels, more than the 100 allowed"):
        load_image(png_header_only(12_000, 10_000))
    with pytest.raises(ImageError, match=r"bomb\.png: refused as a decompression bomb"):
        load_image(png_header_only(40_000, 40_000), name="bomb.png")  # past Pillow's own limit too
    with pytest.raises(ImageError, match="more than the 0.0001 allowed"):
        load_image(encoded(Image.new("L", (20, 20)), "PNG"), max_pixels=100)
