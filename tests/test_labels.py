"""Labels belong to the model file: a model answers with its own, and metrics check what they count."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import voiced, write_wav
from safetensors.torch import save_file

from emotionnet import LABELS, load_model
from emotionnet.batch.predictor import BatchPredictor
from emotionnet.evaluation import metrics
from emotionnet.features import FeatureConfig, log_mel
from emotionnet.models import build_model, count_parameters
from emotionnet.models.file import METADATA_KEY, read_model_file, save_model_file
from emotionnet.models.spec import ModelSpec

FOUR = ["angry", "happy", "neutral", "sad"]  # as TurEV-DB's and BanglaSER's classes


def _model_file(path, labels, answers=None, seed=0):
    torch.manual_seed(seed)
    hparams = {"channels": [8, 16], "convs_per_block": 1, "dropout": 0.0, "n_classes": len(labels)}
    model = build_model("cnn", **hparams).eval()
    spec = ModelSpec("cnn", hparams, FeatureConfig(), labels=tuple(labels), answers=answers)
    save_model_file(path, model, {**spec.to_metadata(), "training": {"recipe": "untrained test fixture"},
                                  "model": {**spec.to_metadata()["model"], "parameters": count_parameters(model)}})
    return path


def test_a_model_with_four_labels_predicts_them(tmp_path):
    path = _model_file(tmp_path / "four.safetensors", FOUR)
    clip = write_wav(tmp_path / "clip.wav", voiced(2.0))
    recognizer = load_model(path)
    assert recognizer.labels == tuple(FOUR) and read_model_file(path)[1]["labels"] == FOUR
    timeline = recognizer.predict_timeline(voiced(7.0), 16_000)
    assert list(timeline.prediction.probabilities) == FOUR and timeline.prediction.emotion in FOUR
    assert sum(timeline.prediction.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(list(s.prediction.probabilities) == FOUR for s in timeline.segments if s.prediction)
    [row] = BatchPredictor(str(path), load_options={"vad": "energy"}).predict_paths([str(clip)])
    assert [c for c in row if c.startswith("p_")] == [f"p_{label}" for label in FOUR] and row["emotion"] in FOUR
    assert BatchPredictor(str(path)).schema().names == list(row)


def test_a_network_with_more_outputs_than_answers_answers_a_softmax_over_its_answers(tmp_path):
    """FER2013's seven classes with surprise, answering the six: the six logits' softmax, surprise dropped."""
    seven = [*LABELS, "surprise"]
    path = _model_file(tmp_path / "seven.safetensors", seven, answers=LABELS)
    recognizer = load_model(path)
    assert recognizer.labels == LABELS and recognizer.spec.labels == tuple(seven)
    clip = voiced(3.0)
    answer = recognizer.predict(clip, 16_000)
    scored = recognizer.log_mel_scorer().scores([log_mel(clip, recognizer.features)])[0]
    with torch.inference_mode():
        windows = recognizer.network(torch.zeros(1, 64, 300))
    assert windows.shape[-1] == 7 and scored.logits.shape[-1] == 6
    assert list(answer.probabilities) == list(LABELS)
    assert sum(answer.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_files_written_before_labels_were_the_models_own_load_as_the_six(tmp_path, tiny_model_file):
    tensors, meta = read_model_file(tiny_model_file)
    del meta["labels"]
    path = tmp_path / "old.safetensors"
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    old, today = load_model(path), load_model(tiny_model_file)
    assert old.labels == LABELS
    clip = voiced(3.0)
    assert old.predict(clip, 16_000) == today.predict(clip, 16_000)


def test_metrics_check_their_inputs_and_take_the_labels():
    with pytest.raises(ValueError, match="y_true holds -1, not an index of the 6 labels"):
        metrics.summary([-1, 0, 1], [0, 0, 1])  # once counted as "sad"
    with pytest.raises(ValueError, match="y_pred holds 6"):
        metrics.summary([0, 1], [0, 6])
    with pytest.raises(ValueError, match="y_true has 3 labels but y_pred 2"):
        metrics.summary([0, 1, 2], [0, 1])  # once a NumPy broadcast error
    with pytest.raises(ValueError, match="y_true has 2 labels but probabilities 3 rows"):
        metrics.expected_calibration_error([0, 1], np.full((3, 6), 1 / 6))
    with pytest.raises(ValueError, match="must hold label indices"):
        metrics.summary([0.5, 1], [0, 1])
    report = metrics.report([0, 3, 2, 1], [0, 3, 1, 1], ["a"] * 4, "m", "test", labels=FOUR)
    assert report["confusion"]["labels"] == FOUR and list(report["per_class"]) == FOUR
    assert report["overall"]["uar"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="y_true holds 4"):
        metrics.report([4], [0], ["a"], "m", "test", labels=FOUR)
