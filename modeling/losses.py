"""Losses from logits for each problem type, class weights, and label counts.

The training step computes its loss here from the model's logits, so that
single-label classification can weight classes.
Without weights the losses equal transformers' for the same `problem_type`.
"""

import functools
import logging
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .heads import MULTI_LABEL, REGRESSION, parse_class_weights

logger = logging.getLogger(__name__)


def compute_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: Optional[str],
                 class_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """MSE (regression), BCE on sigmoids (multi-label), or cross-entropy.

    With `class_weights`, the cross-entropy is the mean over examples of
    weight[label] * loss: normalised by the example count (not by the weights'
    sum, as torch's `weight=` does) so that a batch split into gradient
    accumulation chunks still gives the same gradient.
    """
    logits = logits.float()
    if problem_type == REGRESSION:
        return F.mse_loss(logits.squeeze(-1), labels.float())
    if problem_type == MULTI_LABEL:
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    losses = F.cross_entropy(logits, labels, reduction="none")
    return (losses * class_weights[labels]).mean() if class_weights is not None else losses.mean()


@functools.lru_cache(maxsize=4)
def _weights_on(weights: tuple[float, ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(weights, dtype=torch.float, device=device)


def training_loss(logits: torch.Tensor, labels: torch.Tensor, problem_type: Optional[str],
                  class_weights: Optional[tuple[float, ...]] = None) -> torch.Tensor:
    """compute_loss with the class weights as a (cached) tensor on the logits' device."""
    weights = None if class_weights is None else _weights_on(class_weights, logits.device)
    return compute_loss(logits, labels, problem_type, weights)


def resolve_class_weights(spec: str, labels: Optional[Sequence[str]], problem_type: str,
                          train_label_ids: Sequence) -> Optional[tuple[float, ...]]:
    """--class_weights as one weight per label (balanced: from the train labels), or None."""
    weights = parse_class_weights(spec, labels, problem_type)
    if weights == "balanced":
        weights = balanced_class_weights(train_label_ids, labels)
    if weights:
        logger.info("Class weights: %s", ", ".join(f"{n}: {w:.4f}"
                                                   for n, w in zip(labels, weights)))
    return weights


def label_counts(label_ids: Sequence, num_labels: int) -> np.ndarray:
    """Examples per label: class ids, or 0/1 rows (multi-label: examples with each label)."""
    ids = np.asarray(label_ids)
    if ids.ndim == 2:
        return ids.sum(0).astype(np.int64)
    return np.bincount(ids.astype(np.int64, copy=False), minlength=num_labels)


def balanced_class_weights(label_ids: Sequence[int], labels: Sequence[str]
                           ) -> tuple[float, ...]:
    """n / (k * count_c) per class, from the train labels (scikit-learn's "balanced")."""
    counts = label_counts(label_ids, len(labels))
    if not counts.all():
        missing = labels[int(np.argmin(counts))]
        raise InputError(f"--class_weights=balanced: label {missing!r} has no train examples")
    return tuple(float(len(label_ids) / (len(labels) * c)) for c in counts)


def label_distribution(label_ids: Sequence, labels: Optional[Sequence[str]]) -> str:
    """One line: count and share per label, or a score summary for regression."""
    if labels is None:
        scores = np.asarray(label_ids, dtype=np.float64)
        return (f"{len(scores)} scores, mean {scores.mean():.3f}, std {scores.std():.3f}, "
                f"min {scores.min():.3f}, max {scores.max():.3f}")
    counts = label_counts(label_ids, len(labels))
    return ", ".join(f"{name}: {c} ({100 * c / max(1, len(label_ids)):.1f}%)"
                     for name, c in zip(labels, counts))
