"""Task metrics, computed by scikit-learn. A processor names one in `metric`."""

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

METRICS = ("accuracy", "mcc", "f1", "acc_and_f1")


def compute_metrics(metric: str, preds: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy plus the named metric; the named metric's key equals its name."""
    results = {"accuracy": float(accuracy_score(labels, preds))}
    if metric == "mcc":
        results["mcc"] = float(matthews_corrcoef(labels, preds))
    elif metric in ("f1", "acc_and_f1"):
        results["f1"] = float(f1_score(labels, preds, zero_division=0.0))
        if metric == "acc_and_f1":
            results["acc_and_f1"] = (results["accuracy"] + results["f1"]) / 2
    elif metric != "accuracy":
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    return results
