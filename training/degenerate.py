"""Say what is degenerate: warning lines for results that look like numbers but mean
little (a metric undefined on the data given, a train set with one class), and for a run
that silently does something else than the user may think (a new head on a checkpoint
that had one, evaluating a model recorded for another task).

Each function returns a list of one-line warnings (empty: nothing to say); the caller logs
them and puts them in report.html. Values come in as plain arguments.
"""

from typing import Optional, Sequence

import numpy as np

from modeling.heads import MULTI_LABEL, REGRESSION

_UNDEFINED_ON_ONE_CLASS = {"f1": "F1", "acc_and_f1": "F1", "mcc": "MCC"}


def _name(label_list: Optional[Sequence[str]], label_id) -> str:
    return str(label_list[int(label_id)]) if label_list else str(label_id)


def metric_warnings(metric: str, labels: np.ndarray, predictions: np.ndarray,
                    label_list: Optional[Sequence[str]] = None) -> list[str]:
    """Dev metrics that are undefined (reported as 0.0) on these labels and predictions."""
    labels = np.asarray(labels)
    out = []
    if metric in _UNDEFINED_ON_ONE_CLASS and len(labels):
        classes = np.unique(labels)
        if len(classes) == 1:
            out.append(f"dev has one class only ({_name(label_list, classes[0])}): "
                       f"{_UNDEFINED_ON_ONE_CLASS[metric]} is undefined there "
                       "(reported as 0.0)")
    if metric == "corr" and len(labels):
        if np.ptp(labels) == 0:
            out.append(f"dev targets are all {float(labels[0]):g}: correlation is undefined "
                       "(reported as 0.0)")
        elif len(predictions) and np.ptp(np.asarray(predictions)) == 0:
            out.append("the model predicts the same score for every dev row: correlation is "
                       "undefined (reported as 0.0)")
    if metric == "micro_f1" and labels.ndim == 2 and len(labels):
        absent = [_name(label_list, j) for j in np.flatnonzero(labels.sum(0) == 0)]
        if absent:
            out.append(f"dev has no row with label(s) {', '.join(absent)}: their F1 counts "
                       "as 0.0 in macro F1")
    return out


def train_warnings(labels: np.ndarray, problem_type: str,
                   label_list: Optional[Sequence[str]] = None) -> list[str]:
    """A train set the model can learn nothing from but one answer."""
    labels = np.asarray(labels)
    if not len(labels) or problem_type == MULTI_LABEL:
        return []
    if problem_type == REGRESSION:
        return ([f"train targets are all {float(labels[0]):g}: the model can only learn "
                 "that score"] if np.ptp(labels) == 0 else [])
    one_class = bool((labels == labels[0]).all())  # (one pass: no sort of every label)
    return ([f"train has one class only ({_name(label_list, labels[0])}): the model can "
             "only learn to predict it"] if one_class else [])


def new_head_warnings(checkpoint: str, trained_problem_type: Optional[str],
                      trained_labels: Sequence, problem_type: str,
                      labels: Optional[Sequence[str]]) -> list[str]:
    """A fine-tuned checkpoint whose head is not reused (other labels or problem type)."""
    if not trained_labels:
        return []
    old = ", ".join(map(str, trained_labels))
    new = ", ".join(labels) if labels else "(one score)"
    return [f"{checkpoint}: its classifier head was trained for {trained_problem_type} with "
            f"labels {old}; a new head for {problem_type} with labels {new} starts from "
            "random weights"]


def task_warnings(recorded_task: Optional[str], task: str, model_dir: str) -> list[str]:
    """Evaluating a model whose config.json records another task (same label names)."""
    if not recorded_task or recorded_task.lower() == task.lower():
        return []
    return [f"{model_dir}: its model was fine-tuned for task {recorded_task}, and is "
            f"evaluated on task {task}"]
