"""Decision thresholds tuned on dev: one per label (multi-label) or one for a binary task's
positive class, each maximising that label's F1.

Among thresholds with the same best F1, 0.5 wins when it is one of them; otherwise the
midpoint of the best interval of scores nearest 0.5 (a threshold anywhere between two
neighbouring dev scores makes the same dev predictions; the midpoint is the least tied to
one dev row). A label with no positive row in dev keeps 0.5 (F1 is 0 at every threshold).

The thresholds are stored in the model's config.json under THRESHOLDS_KEY, as
{label name: threshold}: multi-label, every label; binary, the positive label (id 1),
which is predicted when its probability is at least the threshold.
"""

from typing import Optional, Sequence

import numpy as np

from modeling.heads import MULTI_LABEL

THRESHOLDS_KEY = "decision_thresholds"
TIE_EPS = 1e-12


def _candidates(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                np.ndarray]:
    """F1 and (low, high] of each run of predictions `scores >= t` can make (one per
    distinct score, high that score; low the next lower score, or -inf)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], truth[order]
    tp = np.cumsum(t)
    predicted = np.arange(1, len(s) + 1)
    last = np.append(s[1:] != s[:-1], True)  # the last of each run of equal scores
    f1 = 2 * tp[last] / (predicted[last] + t.sum())
    high = s[last]
    low = np.append(high[1:], -np.inf)
    return f1, low, high


def best_threshold(scores: Sequence[float], truth: Sequence[int]) -> float:
    """The F1-maximising threshold for `scores >= threshold`, ties to 0.5 (module doc)."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64) > 0.5
    if not truth.any():
        return 0.5
    f1, low, high = _candidates(scores, truth)
    best = f1 >= f1.max() - TIE_EPS
    choices = []
    for lo, hi in zip(low[best], high[best]):
        if lo < 0.5 <= hi:
            return 0.5
        choices.append(hi / 2 if lo == -np.inf else (lo + hi) / 2)
    return float(min(choices, key=lambda c: (abs(c - 0.5), c)))


def tune(probabilities: np.ndarray, labels: np.ndarray, problem_type: str,
         label_list: Sequence[str]) -> dict[str, float]:
    """{label: threshold}: each label's (multi-label) or the positive class's (binary)."""
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels)
    if problem_type == MULTI_LABEL:
        return {name: best_threshold(probabilities[:, j], labels[:, j])
                for j, name in enumerate(label_list)}
    if len(label_list) != 2:
        raise ValueError("a tuned threshold needs a binary task")
    return {label_list[1]: best_threshold(probabilities[:, 1], labels == 1)}


def as_array(thresholds: Optional[dict], label_list: Sequence[str], problem_type: str,
             default: float = 0.5):
    """What evaluation.decide takes: a float (no stored thresholds), an array per label
    (multi-label) or a 1-tuple (binary's positive class)."""
    if not thresholds:
        return default
    if problem_type == MULTI_LABEL:
        return np.asarray([thresholds.get(name, default) for name in label_list])
    return (float(thresholds[label_list[1]]),)


def decide(probabilities: np.ndarray, problem_type: str, threshold) -> np.ndarray:
    """Predictions from probabilities: 0/1 rows (multi-label, `threshold` a float or one per
    label), the positive class where its probability is >= threshold[0] (binary, tuned), or
    the argmax."""
    if problem_type == MULTI_LABEL:
        return (probabilities >= np.asarray(threshold)).astype(np.int64)
    if isinstance(threshold, tuple):
        return (probabilities[:, 1] >= threshold[0]).astype(np.int64)
    return probabilities.argmax(-1)
