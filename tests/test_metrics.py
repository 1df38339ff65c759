"""Every metric's values on small fixed predictions, against numbers worked out by hand."""

import math

import numpy as np
import pytest

from processors.metrics import METRICS, compute_metrics

# Binary: 3 true positives, 2 false positives, 1 false negative, 4 true negatives.
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
PREDS = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
ACCURACY = 7 / 10  # (TP + TN) / n
F1 = 2 * 3 / (2 * 3 + 2 + 1)  # 2 TP / (2 TP + FP + FN) = 2/3
MCC = (3 * 4 - 2 * 1) / math.sqrt((3 + 2) * (3 + 1) * (4 + 2) * (4 + 1))  # 10 / sqrt(600)

# Regression: the predictions rank as the labels' 2, 1, 4, 3, 5 do; 10 is an outlier.
SCORES = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
GOLD = np.array([2.0, 1.0, 4.0, 3.0, 5.0])
PEARSON = 18 / math.sqrt(50 * 10)  # deviations (-3, -2, -1, 0, 6) and (-1, -2, 1, 0, 2)
SPEARMAN = 1 - 6 * (1 + 1 + 1 + 1 + 0) / (5 * (25 - 1))  # ranks differ by 1 four times

# Multi-label, 4 rows x 3 labels: row 0 exact; one false positive in rows 1 and 3, one
# false negative in row 2. Per label (TP, FP, FN): (2, 1, 0), (1, 0, 1), (2, 1, 0).
MULTI_GOLD = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=np.float32)
MULTI_PREDS = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 0], [1, 0, 1]])

CASES = {
    "accuracy": (np.array([0, 2, 2, 2, 1]), np.array([0, 1, 2, 2, 1]), {"accuracy": 4 / 5}),
    "mcc": (PREDS, LABELS, {"mcc": MCC, "accuracy": ACCURACY}),
    "f1": (PREDS, LABELS, {"f1": F1, "accuracy": ACCURACY}),
    "acc_and_f1": (PREDS, LABELS, {"acc_and_f1": (ACCURACY + F1) / 2,  # 0.68333...
                                   "accuracy": ACCURACY, "f1": F1}),
    "corr": (SCORES, GOLD, {"corr": (PEARSON + SPEARMAN) / 2, "pearson": PEARSON,
                            "spearmanr": SPEARMAN}),
    "micro_f1": (MULTI_PREDS, MULTI_GOLD, {"micro_f1": 2 * 5 / (2 * 5 + 2 + 1),
                                           "macro_f1": (4 / 5 + 2 / 3 + 4 / 5) / 3,
                                           "exact_match": 1 / 4}),
}


def test_every_metric_has_a_case():
    assert set(CASES) == set(METRICS)


@pytest.mark.parametrize("metric", sorted(CASES))
def test_metric_values(metric):
    preds, labels, expected = CASES[metric]
    assert compute_metrics(metric, preds, labels) == pytest.approx(expected, abs=1e-12)


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        compute_metrics("auc", PREDS, LABELS)
