"""Images in: JPEG, PNG or WebP of any size -> an RGB uint8 array, or one clear error.

The face family's counterpart of emotionnet/audio.py. It lives inside the family
because only the face model reads pictures (video frames come through PyAV),
and the family touches nothing outside itself and the registry.

- The format is found from the content (Pillow reads the header), never the
  file name; anything but JPEG, PNG or WebP is refused by name.
- EXIF orientation is applied, so a phone photo taken upright is upright.
- Every mode becomes 8-bit RGB: transparency (RGBA, LA, palette with a
  transparent colour) is laid over white, as viewers show it; 16-bit
  grayscale is scaled down (not clipped at 255, which is what Pillow's own
  conversion does); CMYK JPEGs are converted.
- A picture of more than `max_pixels` (100 megapixels by default: larger than
  any phone camera's) is refused from its header, before its pixels are
  decoded: a small file can claim gigapixels (a "decompression bomb").
  Pillow's own refusal past 179 megapixels stays in force whatever `max_pixels` says.
- A file that is missing, truncated, not an image or an unsupported one raises
  `ImageError` (a ValueError) whose message names the file.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from emotionnet.errors import ImageError  # noqa: F401 (raised here; the error tree holds it)

FORMATS = ("JPEG", "PNG", "WEBP")
MAX_PIXELS = 100_000_000

ImageSource = str | Path | bytes | np.ndarray | Image.Image



def load_image(source: ImageSource, max_pixels: float = MAX_PIXELS, name: str | None = None) -> np.ndarray:
    """(height, width, 3) uint8 RGB of a path, the bytes of a file, a PIL image or a uint8 array.

    Arrays pass through as RGB ((h, w) gray is repeated into three channels). `name` is what errors call
    the input (default: the path, or `<bytes>` / `<array>` / `<image>`).
    """
    if isinstance(source, np.ndarray):
        rgb = as_rgb(source, name or "<array>")
        _check_size((rgb.shape[1], rgb.shape[0]), name or "<array>", max_pixels)
        return rgb
    if isinstance(source, Image.Image):
        name = name or "<image>"
        _check_size(source.size, name, max_pixels)
        return _to_rgb(ImageOps.exif_transpose(source), name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name, stream = name or "<bytes>", io.BytesIO(bytes(source))
    elif isinstance(source, (str, Path)):
        name, path = name or str(source), Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: no such file" if not path.exists() else f"{name}: not a file")
        stream = path
    else:
        raise ImageError(f"{name or '<input>'}: an image must be a path, bytes, a PIL image or a uint8 array, "
                         f"got {type(source).__name__}")
    try:
        with warnings.catch_warnings():  # Pillow warns past 89 MP; our limit is checked just below instead
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=FORMATS)
        with image:
            _check_size(image.size, name, max_pixels)
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image), name)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a JPEG, PNG or WebP image") from None
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name}: refused as a decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow's "truncated", "broken data stream", bad headers
        if isinstance(exc, ImageError):
            raise
        raise ImageError(f"{name}: a damaged or unreadable image ({exc})") from None


def _check_size(size: tuple[int, int], name: str, max_pixels: float) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise ImageError(f"{name}: an empty image ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
                         f"{max_pixels / 1e6:g} allowed (a decompression bomb? raise max_pixels to read it)")


def _to_rgb(image: Image.Image, name: str) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale (PNG): Pillow's convert("L") would clip everything above 255 to white.
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.round(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ImageError(f"{name}: image mode {image.mode} could not be read as RGB")
    return rgb


def as_rgb(array: np.ndarray, name: str = "<array>") -> np.ndarray:
    """(height, width, 3) uint8 of a gray (h, w), (h, w, 1) or RGB (h, w, 3) uint8 array; ImageError otherwise."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ImageError(f"{name}: an image array must be uint8 (0-255), got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"{name}: an image array must be (height, width) or (height, width, 3), "
                         f"got shape {array.shape}")
    if min(array.shape[:2]) < 1:
        raise ImageError(f"{name}: an empty image ({array.shape[1]}x{array.shape[0]})")
    return array
