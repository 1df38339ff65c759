"""Every metric's values on small fixed predictions, against numbers worked out by hand,
and on random ones against scikit-learn's and scipy's."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.metrics import METRICS, compute_metrics, confusion, label_counts, per_class

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


# The numpy metrics against scikit-learn's and scipy's definitions, on random data.
@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, n - 1), min_size=1, max_size=40),
    st.lists(st.integers(0, n - 1), min_size=40, max_size=40))))
def test_classification_metrics_match_sklearn(data):
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef
    labels = np.array(data[0])
    preds = np.array(data[1][:len(labels)])
    mine = compute_metrics("mcc", preds, labels)
    assert mine["mcc"] == pytest.approx(matthews_corrcoef(labels, preds), abs=1e-12)
    assert mine["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    binary_labels, binary_preds = labels % 2, preds % 2
    assert compute_metrics("f1", binary_preds, binary_labels)["f1"] == pytest.approx(
        f1_score(binary_labels, binary_preds, zero_division=0.0), abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.floats(-5, 5)), min_size=2, max_size=30))
def test_correlations_match_scipy(pairs):
    from scipy.stats import pearsonr, spearmanr
    preds = np.array([p for p, _ in pairs], np.float64)  # ties on purpose
    labels = np.array([round(g, 1) for _, g in pairs])
    mine = compute_metrics("corr", preds, labels)
    if min(np.ptp(preds), np.ptp(labels)) == 0:
        assert mine == {"corr": 0.0, "pearson": 0.0, "spearmanr": 0.0}
        return
    assert mine["pearson"] == pytest.approx(pearsonr(preds, labels)[0], abs=1e-9)
    assert mine["spearmanr"] == pytest.approx(spearmanr(preds, labels)[0], abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 4).flatmap(lambda width: st.tuples(  # (one column: sklearn reads binary)
    st.lists(st.lists(st.integers(0, 1), min_size=width, max_size=width), min_size=1,
             max_size=12),
    st.lists(st.lists(st.integers(0, 1), min_size=width, max_size=width), min_size=12,
             max_size=12))))
def test_multi_label_metrics_match_sklearn(data):
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support
    labels = np.array(data[0], np.float32)
    preds = np.array(data[1][:len(labels)])
    mine = compute_metrics("micro_f1", preds, labels)
    gold = labels.astype(np.int64)
    assert mine["micro_f1"] == pytest.approx(
        f1_score(gold, preds, average="micro", zero_division=0.0), abs=1e-12)
    assert mine["macro_f1"] == pytest.approx(
        f1_score(gold, preds, average="macro", zero_division=0.0), abs=1e-12)
    assert mine["exact_match"] == pytest.approx(accuracy_score(gold, preds), abs=1e-12)
    expected = precision_recall_fscore_support(gold, preds, zero_division=0)
    for got, want in zip(label_counts(gold, preds), expected):
        np.testing.assert_allclose(got, want, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                         min_size=1, max_size=30))))
def test_confusion_and_per_class_match_sklearn(data):
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
    n, pairs = data
    labels, preds = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    ids = list(range(n))
    matrix = confusion(labels, preds, n)
    np.testing.assert_array_equal(matrix, confusion_matrix(labels, preds, labels=ids))
    expected = precision_recall_fscore_support(labels, preds, labels=ids, zero_division=0)
    for got, want in zip(per_class(matrix), expected):
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_metrics_import_neither_sklearn_nor_scipy():
    code = ("import sys, numpy as np; from processors.metrics import compute_metrics; "
            "[compute_metrics(m, np.array([0, 1, 1]), np.array([0, 1, 0])) for m in "
            "('mcc', 'f1', 'corr')]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "[]"
