"""Task metrics, in numpy. A processor names one in `metric`.

They are the GLUE metrics as scikit-learn and scipy define them (tests check every one
against both): accuracy, Matthews correlation, binary F1 of label 1, micro and macro F1
over multi-label rows (0 where undefined), Pearson and Spearman correlation. numpy
computes them in microseconds; importing those libraries costs a run more than that.
"""

import math

import numpy as np

from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL

# metric name -> every key it reports; the first is the metric itself (higher is better).
METRICS = {
    "accuracy": ("accuracy",),
    "mcc": ("mcc", "accuracy"),
    "f1": ("f1", "accuracy"),
    "acc_and_f1": ("acc_and_f1", "accuracy", "f1"),
    "corr": ("corr", "pearson", "spearmanr"),  # regression: the mean of the two
    "micro_f1": ("micro_f1", "macro_f1", "exact_match"),  # multi-label
}
# metric name -> the problem type it scores; f1 and acc_and_f1 need exactly two labels.
PROBLEM_TYPES = {"accuracy": SINGLE_LABEL, "mcc": SINGLE_LABEL, "f1": SINGLE_LABEL,
                 "acc_and_f1": SINGLE_LABEL, "corr": REGRESSION, "micro_f1": MULTI_LABEL}


def confusion(labels: np.ndarray, preds: np.ndarray, n: int) -> np.ndarray:
    """n x n counts: row the true class id, column the predicted one."""
    labels, preds = np.asarray(labels, np.int64), np.asarray(preds, np.int64)
    return np.bincount(labels * n + preds, minlength=n * n).reshape(n, n)


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """top / bottom, 0 where bottom is 0 (scikit-learn's zero_division=0)."""
    top, bottom = np.asarray(top, np.float64), np.asarray(bottom, np.float64)
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom != 0)


def _scores(tp, predicted, support) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support from the true positives, the predicted and the
    true counts (0 where undefined)."""
    return (_ratio(tp, predicted), _ratio(tp, support), _ratio(2 * tp, predicted + support),
            support)


def _counts(gold: np.ndarray, guess: np.ndarray) -> tuple[np.ndarray, ...]:
    """(true positives, predicted, true) of boolean arrays, per column."""
    return (gold & guess).sum(0), guess.sum(0), gold.sum(0)


def per_class(matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall, F1 and support of each class of a confusion matrix."""
    return _scores(np.diag(matrix), matrix.sum(0), matrix.sum(1))


def label_counts(labels: np.ndarray, preds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per label of 0/1 matrices: precision, recall, F1 and support (as `per_class`)."""
    return _scores(*_counts(np.asarray(labels) > 0.5, np.asarray(preds) > 0.5))


def _mcc(matrix: np.ndarray) -> float:
    """Matthews correlation of a confusion matrix (the multi-class form; 0 if undefined)."""
    m = matrix.astype(np.float64)
    true, predicted, correct, total = m.sum(1), m.sum(0), np.trace(m), m.sum()
    denominator = math.sqrt((total ** 2 - predicted @ predicted) * (total ** 2 - true @ true))
    return float((correct * total - true @ predicted) / denominator) if denominator else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties given their average rank (scipy's rankdata)."""
    order = np.argsort(x, kind="stable")
    ordered = x[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r, or 0.0 where it is undefined (a constant side)."""
    dx, dy = x - x.mean(), y - y.mean()
    scale = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(np.clip(dx @ dy / scale, -1.0, 1.0)) if scale > 0 else 0.0


def _correlations(preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    x, y = np.asarray(preds, np.float64).ravel(), np.asarray(labels, np.float64).ravel()
    if min(np.ptp(x), np.ptp(y)) <= 0:
        return {"corr": 0.0, "pearson": 0.0, "spearmanr": 0.0}
    pearson, spearman = _pearson(x, y), _pearson(_ranks(x), _ranks(y))
    return {"corr": (pearson + spearman) / 2, "pearson": pearson, "spearmanr": spearman}


def compute_metrics(metric: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The keys METRICS lists for `metric`.

    `preds` are class ids, or scores (corr), or 0/1 matrices (micro_f1), as `labels`.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if metric == "corr":
        return _correlations(preds, labels)
    if metric == "micro_f1":
        gold, guess = np.asarray(labels) > 0.5, np.asarray(preds) > 0.5
        tp, predicted, support = _counts(gold, guess)
        return {"micro_f1": float(_ratio(2 * tp.sum(), predicted.sum() + support.sum())),
                "macro_f1": float(_scores(tp, predicted, support)[2].mean()),
                "exact_match": float((gold == guess).all(-1).mean())}
    labels, preds = np.asarray(labels, np.int64), np.asarray(preds, np.int64)
    results = {"accuracy": float((labels == preds).mean())}
    if metric == "mcc":
        n = int(max(labels.max(initial=0), preds.max(initial=0))) + 1
        results["mcc"] = _mcc(confusion(labels, preds, n))
    elif metric in ("f1", "acc_and_f1"):
        results["f1"] = float(_scores(*_counts(labels == 1, preds == 1))[2])
        if metric == "acc_and_f1":
            results["acc_and_f1"] = (results["accuracy"] + results["f1"]) / 2
    return results
