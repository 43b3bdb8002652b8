"""The training losses: hard labels and a teacher's soft labels, each over the classes a clip's corpus has."""

from __future__ import annotations

import torch


def masked_log_probabilities(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the present classes only; 0 (not -inf) at the others, so sums stay finite."""
    log_probs = torch.log_softmax(logits.float().masked_fill(~present, float("-inf")), dim=-1)
    return log_probs.masked_fill(~present, 0.0)


def masked_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, present: torch.Tensor, smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy over the classes each clip's corpus has, label smoothing spread over those only.

    A class a corpus lacks is neither a target nor a competitor for its clips: the loss
    never teaches that a corpus's voices are never, say, disgusted.
    """
    log_probs = masked_log_probabilities(logits, present)
    target = log_probs.gather(1, labels[:, None])[:, 0]
    spread = log_probs.sum(dim=-1) / present.sum(dim=-1)
    return -((1 - smoothing) * target + smoothing * spread).mean()


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the student against the teacher's probabilities, over the classes each
    clip's corpus has (as `masked_cross_entropy`); a row of zeros (no soft label) adds nothing."""
    log_probs = masked_log_probabilities(logits, present)
    target = teacher.float().masked_fill(~present, 0.0)
    target = target / target.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return -(target * log_probs).sum(dim=-1).mean()
