"""The package's import graph: every module in a layer, no import upwards, no cycle.

Imports inside functions count too (a lazy import is still a dependency: the
recognizer <-> ONNX backend cycle was one), except those under
`if TYPE_CHECKING:`. `from emotionnet import NAME` counts as an import of the
module that defines NAME (the package root only names things lazily).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import emotionnet

PACKAGE = Path(emotionnet.__file__).parent

# Lowest first. A module may import its own layer and the layers below it.
LAYERS = [
    ("emotionnet", "emotionnet.labels", "emotionnet.digest", "emotionnet.extras",  # the root imports nothing when loaded
     "emotionnet.fusion",  # voice and face probabilities in one answer: labels and NumPy only
     "emotionnet.errors"),  # the error tree's root
    ("emotionnet.audio", "emotionnet.video"),  # a video's audio track goes through the audio contract
    ("emotionnet.vad",),
    ("emotionnet.features",),
    ("emotionnet.cache",),  # the feature cache and the one cache root
    ("emotionnet.corpora",  # finding files: corpus parsers, and which modality a file holds
     "emotionnet.media"),
    ("emotionnet.models",),
    ("emotionnet.inference",  # scoring under the public recognizer, the ONNX backend
     "emotionnet.environment"),  # the variables the surfaces read, checked (names models)
    ("emotionnet.evaluation",),
    ("emotionnet.training",),
    ("emotionnet.streaming",),
    ("emotionnet.serving", "emotionnet.batch"),
    ("emotionnet.app",),
    ("emotionnet.cli", "emotionnet.__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """The layer of the longest prefix of `module` named in LAYERS."""
    best, found = -1, None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), index
    if found is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _resolve(name: str, attribute: str | None) -> str:
    if attribute and f"{name}.{attribute}" in MODULES:
        return f"{name}.{attribute}"
    if name == "emotionnet" and attribute in emotionnet._EXPORTS:
        return emotionnet._EXPORTS[attribute]
    return name


def imports_of(path: Path) -> set[str]:
    """The package modules a file imports, wherever in the file the import stands."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "emotionnet")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "emotionnet":
            found.update(_resolve(node.module, a.name) for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {m for m in found if m in MODULES}


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_has_a_layer():
    assert len(MODULES) > 40
    for name in MODULES:
        layer_of(name)


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
              for m, deps in GRAPH.items() for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert upward == []


def test_no_import_cycle():
    # Package __init__ files re-export their submodules; a submodule importing its own
    # package's __init__ would close a loop, and is caught here like any other.
    assert find_cycle(GRAPH) is None, " -> ".join(find_cycle(GRAPH))


def test_the_checks_can_fail():
    """The checkers themselves: a made-up upward import and a made-up cycle are found."""
    assert layer_of("emotionnet.features") < layer_of("emotionnet.inference.recognizer")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("elsewhere.module")
    # The lazy import that made the recognizer <-> ONNX backend cycle would be seen.
    tree = "def f():\n    from emotionnet.inference.recognizer import EmotionRecognizer\n"
    source = PACKAGE / "inference" / "onnx_backend.py"
    probe = source.with_name("_probe_layers.py")
    try:
        probe.write_text(tree)
        assert imports_of(probe) == {"emotionnet.inference.recognizer"}
    finally:
        probe.unlink()


def test_the_command_line_entry_does_not_load_torch():
    """`emotionnet --help` and `--version` stay fast: neither the package root nor the CLI's
    entry imports torch (commands import what they need when they run)."""
    code = ("import sys, emotionnet, emotionnet.cli.main; "
            "sys.exit(1 if {'torch', 'numpy', 'soundfile'} & set(sys.modules) else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = subprocess.run([sys.executable, "-m", "emotionnet", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"emotionnet {emotionnet.__version__}"


MAX_FUNCTION_LINES = 80


def test_no_package_function_is_over_80_lines():
    """Long functions hide what they do: each part of the package does one thing at a time."""
    import ast

    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long


def test_the_version_is_written_once():
    """pyproject.toml holds the version; the package reads it from its metadata, and the
    training code (which records it in every model file) reads it there too, not from the root."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    assert emotionnet.__version__ == pyproject["project"]["version"]
    assert f'"{emotionnet.__version__}"' not in (PACKAGE / "__init__.py").read_text()
    for path in (PACKAGE / "training").rglob("*.py"):
        assert "from emotionnet import" not in path.read_text(), path


def test_the_core_install_is_light():
    """`pip install emotionnet` (predict, the API, evaluate, train) pulls no UI, plotting,
    audio-device package, nor onnx (export): those come as extras, and `dev` pulls them all."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!~\[ ;]", requirement)[0].lower() for requirement in project["dependencies"]}
    # onnxruntime is core: the speech detector (silero-vad) runs on it three times faster than on torch
    assert not core & {"streamlit", "matplotlib", "sounddevice", "onnx"}
    extras = project["optional-dependencies"]
    assert {"app", "live", "onnx"} <= set(extras)
    assert any("app,live,onnx" in requirement for requirement in extras["dev"])


def test_a_missing_extra_is_one_line_naming_the_install_command(monkeypatch, capsys):
    from emotionnet.cli.main import main

    monkeypatch.setitem(sys.modules, "streamlit", None)  # as if not installed
    assert main(["app", "--port", "8599"]) == 1
    err = capsys.readouterr().err
    assert err == 'emotionnet: error: the app needs streamlit (pip install "emotionnet[app]")\n'
