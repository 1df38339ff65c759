"""Tuned thresholds: each label's F1-best, ties to 0.5; at least as good as 0.5 on dev."""

import csv
import os

import numpy as np
from sklearn.metrics import f1_score

from modeling.heads import MULTI_LABEL, SINGLE_LABEL
from training.thresholds import as_array, best_threshold, decide, tune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_best_threshold_separates_and_ties_to_half():
    assert best_threshold([0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]) == 0.25
    assert best_threshold([0.1, 0.9], [0, 1]) == 0.5  # 0.5 is among the best
    assert best_threshold([0.2, 0.3], [0, 0]) == 0.5  # no positive row
    t = best_threshold([0.6, 0.7, 0.8, 0.9], [0, 0, 0, 1])
    assert 0.8 < t <= 0.9
    assert best_threshold([0.7, 0.7, 0.7], [1, 1, 0]) == 0.5  # all predicted either way


def test_binary_threshold_and_decide():
    probs = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.9, 0.1]])
    stored = tune(probs, np.array([0, 1, 1, 0]), SINGLE_LABEL, ["no", "yes"])
    assert list(stored) == ["yes"] and 0.2 < stored["yes"] <= 0.3
    threshold = as_array(stored, ["no", "yes"], SINGLE_LABEL)
    assert decide(probs, SINGLE_LABEL, threshold).tolist() == [0, 1, 1, 0]
    assert decide(probs, SINGLE_LABEL, 0.5).tolist() == [0, 0, 0, 0]  # argmax


def multilabel_dev():
    with open(os.path.join(ROOT, "data", "multilabel", "dev.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    names = sorted({n for r in rows for n in r["labels"].split("|") if n})
    labels = np.array([[n in r["labels"].split("|") for n in names] for r in rows], np.int64)
    return names, labels


def test_tuned_macro_f1_at_least_half_threshold_on_the_bundled_sample():
    names, labels = multilabel_dev()
    rng = np.random.default_rng(0)
    probs = np.clip(0.3 * labels + rng.normal(0.2, 0.15, labels.shape), 0, 1)  # too timid
    stored = tune(probs, labels, MULTI_LABEL, names)
    assert list(stored) == names
    tuned = decide(probs, MULTI_LABEL, as_array(stored, names, MULTI_LABEL))
    half = decide(probs, MULTI_LABEL, 0.5)
    tuned_f1 = f1_score(labels, tuned, average="macro", zero_division=0)
    half_f1 = f1_score(labels, half, average="macro", zero_division=0)
    assert tuned_f1 >= half_f1 and tuned_f1 > 0.6
    for j in range(len(names)):  # each label's own F1 is the best any threshold gives
        grid = [f1_score(labels[:, j], probs[:, j] >= t, zero_division=0)
                for t in np.linspace(0, 1, 101)]
        assert f1_score(labels[:, j], tuned[:, j], zero_division=0) >= max(grid) - 1e-9
