"""The face model's softmax temperature, fitted on FER2013 validation images (each image alone)."""

from __future__ import annotations

import numpy as np
import torch

from emotionnet.evaluation.metrics import expected_calibration_error, log_loss


def answer_probabilities(logits: torch.Tensor | np.ndarray, answered: list[int], temperature: float) -> np.ndarray:
    """(n, len(answered)) probabilities over the answered classes only: other logits (surprise) are left out."""
    logits = torch.as_tensor(logits, dtype=torch.float32)[:, answered]
    return torch.softmax(logits / temperature, dim=1).numpy()


def fit_temperature(logits: torch.Tensor | np.ndarray, labels: np.ndarray, answered: list[int]) -> dict:
    """The temperature minimising log-loss over the images whose label is answered, with ECE before and after."""
    labels = np.asarray(labels)
    keep = np.isin(labels, answered)
    logits = torch.as_tensor(logits)[torch.from_numpy(keep)]
    truth = np.searchsorted(np.array(answered), labels[keep])
    grid = np.exp(np.linspace(np.log(0.3), np.log(5.0), 80))
    losses = [log_loss(truth, answer_probabilities(logits, answered, float(t))) for t in grid]
    best = float(grid[int(np.argmin(losses))])
    return {"temperature": best, "images": int(keep.sum()),
            "ece_before": expected_calibration_error(truth, answer_probabilities(logits, answered, 1.0)),
            "ece": expected_calibration_error(truth, answer_probabilities(logits, answered, best)),
            "log_loss": float(min(losses))}
