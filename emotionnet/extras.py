"""Optional dependencies: the core install predicts, serves the API, evaluates, trains and
exports to nothing but PyTorch; the rest comes as extras, and a missing one is one line
naming the install command:

    emotionnet: error: the app needs streamlit (pip install "emotionnet[app]")

| extra | packages | for |
| --- | --- | --- |
| `app` | streamlit, matplotlib | `emotionnet app`, `evaluate --out`'s confusion.png, `tune`'s trials.png |
| `live` | sounddevice | `emotionnet listen` from a microphone |
| `onnx` | onnx, onnxruntime | `--backend onnx`, `.onnx` model files, `emotionnet export` |
| `serve`, `ray`, `tune`, `bench` | see pyproject.toml | `serve`, `batch --engine ray`, `tune`, the benchmarks |
"""

from __future__ import annotations

import importlib
from types import ModuleType

from emotionnet.errors import EmotionNetError


class MissingExtraError(EmotionNetError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra."""

    def __init__(self, what: str, package: str, extra: str | None, hint: str | None = None):
        """`extra`: the extra that brings `package` (None for a core dependency, whose `hint` says what to do)."""
        self.what = f"{what} needs {package}"
        self.hint = hint or f'pip install "emotionnet[{extra}]"'
        super().__init__(f"{self.what} ({self.hint})")


def require(module: str, what: str, extra: str, package: str | None = None) -> ModuleType:
    """`import module`, or a MissingExtraError saying `what` needs it and which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(what, package or module.split(".")[0], extra) from None
