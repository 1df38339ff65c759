"""The degenerate-case warnings, one per case the issue names."""

import numpy as np

from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from training.degenerate import (metric_warnings, new_head_warnings, task_warnings,
                                 train_warnings)


def test_one_class_in_dev_for_f1_and_mcc():
    for metric, name in (("f1", "F1"), ("acc_and_f1", "F1"), ("mcc", "MCC")):
        [line] = metric_warnings(metric, np.array([0, 0, 0]), np.array([0, 1, 0]), ["0", "1"])
        assert line == (f"dev has one class only (0): {name} is undefined there "
                        "(reported as 0.0)")
    assert metric_warnings("f1", np.array([0, 1]), np.array([0, 0])) == []
    assert metric_warnings("accuracy", np.array([0, 0]), np.array([0, 0])) == []


def test_constant_targets_and_predictions_for_correlation():
    assert metric_warnings("corr", np.array([2.0, 2.0]), np.array([1.0, 3.0])) == [
        "dev targets are all 2: correlation is undefined (reported as 0.0)"]
    assert "same score" in metric_warnings("corr", np.array([1.0, 2.0]), np.array([3.0, 3.0]))[0]


def test_multi_label_absent_label():
    labels = np.array([[1, 0], [1, 0]])
    assert metric_warnings("micro_f1", labels, labels, ["a", "b"]) == [
        "dev has no row with label(s) b: their F1 counts as 0.0 in macro F1"]


def test_one_class_train_set():
    assert train_warnings(np.array([1, 1]), SINGLE_LABEL, ["neg", "pos"]) == [
        "train has one class only (pos): the model can only learn to predict it"]
    assert train_warnings(np.array([0, 1]), SINGLE_LABEL) == []
    assert train_warnings(np.array([3.0, 3.0]), REGRESSION)
    assert train_warnings(np.array([[1, 1]]), MULTI_LABEL) == []


def test_new_head_names_the_old_labels():
    [line] = new_head_warnings("/m", SINGLE_LABEL, ["neg", "pos"], SINGLE_LABEL,
                               ["a", "b", "c"])
    assert "labels neg, pos" in line and "labels a, b, c" in line and line.startswith("/m:")
    assert new_head_warnings("/m", None, [], SINGLE_LABEL, ["a"]) == []


def test_task_mismatch():
    assert task_warnings("sst-2", "cola", "/out") == [
        "/out: its model was fine-tuned for task sst-2, and is evaluated on task cola"]
    assert task_warnings("CoLA", "cola", "/out") == [] == task_warnings(None, "cola", "/o")
