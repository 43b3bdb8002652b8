"""The model-family registry: each family declared once, in its folder; nothing else names one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import emotionnet
from emotionnet.models.family import HParam, ModelFamily, ModelSpecError
from emotionnet.models.registry import FAMILIES, build_model, get_family
from emotionnet.models.spec import ModelSpec

PACKAGE = Path(emotionnet.__file__).parent
# Where a family may be named: its own folder, the registry and its interface, the table of shipped
# model names, and the modules of the training recipe a family's `recipe` kind selects ("encoder-head":
# the encoder cache, the head trainer and the recipe that writes the file).
MAY_NAME_FAMILIES = {"models/registry.py", "models/family.py", "models/names.py",
                     "training/whisper_recipe.py", "training/encoder_cache.py", "training/head_training.py",
                     "training/face_recipe.py",
                     "training/statistics_cache.py",
                     # the feature normalisation called "whisper" (Whisper's log-mel scaling), a name model files hold
                     "features.py"}


# A family's folder: the package its declaration lives in (the face-cnn family's is models/face/).
FAMILY_FOLDERS = {name: family.build.__module__.split(".")[2] for name, family in FAMILIES.items()}


def _names_a_family(path: Path) -> list[str]:
    """Lines of `path` that import a family's folder, compare with a family's name, pass one as an
    argument or list two or more of them (a hand-written switch or choice list)."""
    family_names = set(FAMILIES)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["emotionnet", "models"] and len(parts) > 2 and parts[2] in FAMILY_FOLDERS.values():
                found.append(f"{node.lineno}: imports {node.module}")
        elif isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if isinstance(side, ast.Constant) and side.value in family_names:
                    found.append(f"{node.lineno}: compares with {side.value!r}")
        elif isinstance(node, ast.Call):
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and arg.value in family_names:
                    found.append(f"{node.lineno}: passes {arg.value!r}")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            named = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in family_names]
            if len(named) >= 2:
                found.append(f"{node.lineno}: lists {named}")
    return found


def test_no_module_outside_a_familys_folder_and_the_registry_names_a_family():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.split("/")[:2] in (["models", folder] for folder in FAMILY_FOLDERS.values()) \
                or relative in MAY_NAME_FAMILIES:
            continue
        offenders += [f"{relative}:{line}" for line in _names_a_family(path)]
    assert not offenders


def test_the_check_finds_a_switch(tmp_path):
    """The check above would fail on the code it replaced."""
    old = tmp_path / "old.py"
    old.write_text('from emotionnet.models.whisper.head import WhisperEmotionNet\n'
                   'if spec.arch == "whisper":\n    pass\n'
                   'parser.add_argument("--arch", choices=("cnn", "crnn", "whisper"))\n'
                   'default_hparams("whisper", 80)\n')
    assert len(_names_a_family(old)) == 4


def test_every_family_declares_what_loading_and_training_ask():
    for name, family in FAMILIES.items():
        assert family.name == name and family.modality in ("audio", "face") and family.recipe
        hparams = family.default_hparams()
        assert hparams["n_classes"] == 6
        if family.features is not None:  # an audio family's network hears its front end's mel bands
            assert hparams["n_mels"] == family.features.n_mels
        network = build_model(name)
        assert sum(p.numel() for p in network.parameters()) > 0


def test_one_default_per_hyper_parameter_and_what_old_files_meant():
    """The whisper head: a new model gets "stats", a file that names no head was "attentive"."""
    whisper = get_family("whisper")
    assert whisper.default_hparams()["head"] == "stats"
    digest = "a" * 64
    old = {k: v for k, v in whisper.default_hparams().items() if k != "head"}
    spec = ModelSpec("whisper", {**old, "encoder_digest": digest}, whisper.features)
    meta = spec.to_metadata()
    del meta["model"]["hparams"]["head"]
    assert ModelSpec.from_metadata(meta).hparams["head"] == "attentive"


def test_a_family_with_more_outputs_than_labels_is_declared_by_its_hyper_parameters():
    """A network's outputs are `n_classes`, checked against what the model file says its outputs are."""
    family = get_family("cnn")
    checked = family.check_hparams({**family.default_hparams(n_classes=7)}, family.features, n_classes=7)
    assert checked["n_classes"] == 7 and build_model("cnn", **checked).head.out_features == 7
    with pytest.raises(ModelSpecError, match="n_classes is 7"):
        family.check_hparams(family.default_hparams(n_classes=7), family.features, n_classes=6)


def test_unknown_families_and_bad_declarations_are_one_clear_error():
    with pytest.raises(ModelSpecError, match="unknown architecture 'mlp'; this version knows cnn, crnn, whisper"):
        get_family("mlp")
    with pytest.raises(ValueError, match="modality 'smell'"):
        ModelFamily("nose", "smell", (), dict, get_family("cnn").features, "log-mel")
    with pytest.raises(ModelSpecError, match="model.hparams.depth must be an integer from 1 to 4, got 9"):
        HParam("depth", 2, "int", 1, 4).check(9)
