"""Task metrics, computed by scikit-learn and scipy. A processor names one in `metric`.

scikit-learn and scipy load on the first computation (seconds), not with the table of
metric names that the flag checks read.
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


def _correlation(function, preds: np.ndarray, labels: np.ndarray) -> float:
    """A correlation, or 0.0 where it is undefined (constant predictions)."""
    value = float(function(preds, labels)[0]) if min(np.ptp(preds), np.ptp(labels)) > 0 \
        else math.nan
    return 0.0 if math.isnan(value) else value


def compute_metrics(metric: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The keys METRICS lists for `metric`.

    `preds` are class ids, or scores (corr), or 0/1 matrices (micro_f1), as `labels`.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    if metric == "corr":
        pearson, spearman = (_correlation(f, preds, labels) for f in (pearsonr, spearmanr))
        return {"corr": (pearson + spearman) / 2, "pearson": pearson, "spearmanr": spearman}
    if metric == "micro_f1":
        labels = labels.astype(np.int64)
        return {"micro_f1": float(f1_score(labels, preds, average="micro", zero_division=0.0)),
                "macro_f1": float(f1_score(labels, preds, average="macro", zero_division=0.0)),
                "exact_match": float(accuracy_score(labels, preds))}
    results = {"accuracy": float(accuracy_score(labels, preds))}
    if metric == "mcc":
        results["mcc"] = float(matthews_corrcoef(labels, preds))
    elif metric in ("f1", "acc_and_f1"):
        results["f1"] = float(f1_score(labels, preds, zero_division=0.0))
        if metric == "acc_and_f1":
            results["acc_and_f1"] = (results["accuracy"] + results["f1"]) / 2
    return results
