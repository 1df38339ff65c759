"""After a dev evaluation: calibration, tuned thresholds, ECE, warnings, and report.html.

The model's config records what a later run and other tools need: the tuned thresholds
(thresholds.THRESHOLDS_KEY), the temperature folded into the head (TEMPERATURE_KEY, for
information only: the weights already hold it) and the task it was fine-tuned for
(transformers' `finetuning_task`). Values come in as plain arguments.
"""

import logging
from typing import Optional, Sequence

import numpy as np
import torch

from modeling.errors import InputError
from modeling.heads import MULTI_LABEL, REGRESSION
from modeling.losses import compute_loss
from processors.metrics import compute_metrics

from . import calibration, degenerate, plot, thresholds
from .evaluation import decide
from .report import ReportInputs, write_report

logger = logging.getLogger(__name__)
TEMPERATURE_KEY = "calibration_temperature"


def forget_records(config) -> None:
    """A model about to be trained again: its old thresholds and temperature no longer hold."""
    for key in (thresholds.THRESHOLDS_KEY, TEMPERATURE_KEY):
        if hasattr(config, key):
            delattr(config, key)


def record_task(model, tokenizer, task_name: str, max_seq_length: int) -> None:
    """Before saving: the task in config.json, and the tokenizer's model_max_length set to
    the training --max_seq_length, so `transformers.pipeline` truncates as training did."""
    model.config.finetuning_task = task_name
    tokenizer.model_max_length = max_seq_length


def decision_threshold(config, label_list, problem_type: str, number: Optional[float]):
    """What evaluation.decide takes: the stored thresholds if any, else `number` (a float
    for multi-label; for a binary task a 1-tuple, or argmax when None)."""
    stored = getattr(config, thresholds.THRESHOLDS_KEY, None)
    if stored:
        return thresholds.as_array(stored, label_list, problem_type)
    if problem_type == MULTI_LABEL:
        return 0.5 if number is None else number
    return 0.5 if number is None else (float(number),)


def _metrics(metric, logits, labels, problem_type, threshold) -> dict:
    results = compute_metrics(metric, decide(logits, problem_type, threshold), labels)
    results["loss"] = compute_loss(torch.from_numpy(np.asarray(logits, np.float32)),
                                   torch.from_numpy(labels), problem_type).item()
    return results


def finish_eval(model, logits: np.ndarray, labels: np.ndarray, metric: str,
                label_list: Optional[Sequence[str]], calibrate: bool, tune: bool,
                number: Optional[float]) -> tuple[dict, np.ndarray, object]:
    """Dev results of the final model (calibrated first, when asked; thresholds tuned and
    stored in its config, when asked), with `ece`; returns (results, logits, threshold)."""
    problem_type = model.config.problem_type
    extra = {}
    if calibrate and problem_type != REGRESSION:
        fitted = calibration.calibrate(model, logits, labels, problem_type)
        logits = fitted.pop("logits")
        setattr(model.config, TEMPERATURE_KEY, fitted["temperature"])
        extra = {"temperature": (fitted["temperature"][0] if len(fitted["temperature"]) == 1
                                 else fitted["temperature"]),
                 "ece_before_calibration": fitted["ece_before"]}
    if tune and problem_type != REGRESSION:
        probs = calibration.probabilities(logits, problem_type)
        setattr(model.config, thresholds.THRESHOLDS_KEY,
                thresholds.tune(probs, labels, problem_type, label_list))
        at_half = _metrics(metric, logits, labels, problem_type,
                           0.5 if problem_type == MULTI_LABEL else (0.5,))
        extra.update({f"{k}_at_0.5": at_half[k] for k in ("f1", "micro_f1", "macro_f1")
                      if k in at_half})
        extra["thresholds"] = getattr(model.config, thresholds.THRESHOLDS_KEY)
    threshold = decision_threshold(model.config, label_list, problem_type, number)
    results = _metrics(metric, logits, labels, problem_type, threshold)
    if problem_type != REGRESSION:
        results["ece"] = calibration.expected_calibration_error(logits, labels, problem_type)
    results.update(extra)
    return results, logits, threshold


def eval_warnings(metric: str, logits, labels, problem_type: str, threshold, label_list,
                  recorded_task: Optional[str], task: str, model_dir: str) -> list[str]:
    """The dev set's degenerate metrics, and a model recorded for another task; logged."""
    lines = degenerate.metric_warnings(metric, labels, decide(logits, problem_type, threshold),
                                       label_list)
    lines += degenerate.task_warnings(recorded_task, task, model_dir)
    for line in lines:
        logger.warning("%s", line)
    return lines


def dev_texts(examples) -> list[str]:
    """One text per dev row (document): text_a, and text_b after ` [SEP] ` for a pair."""
    return [e.text_a if e.text_b is None else f"{e.text_a} [SEP] {e.text_b}" for e in examples]


def read_stats(output_dir: str) -> list:
    """training_stats.json's per-epoch rows (`plot.read_stats`), or [] (none, or unreadable:
    the report then shows no curves)."""
    try:
        return plot.read_stats(output_dir)
    except InputError:
        return []


def report(output_dir: str, summary: dict, results: dict, problem_type: str, label_list,
           logits, labels, texts, threshold, warnings: list, doc_offsets=None) -> str:
    """Writes report.html for this evaluation; returns its path."""
    stats = read_stats(output_dir)
    seconds = sum(float(r.get("time_s", 0)) for r in stats)
    summary = {**summary, "training time": f"{seconds:.1f} s" if stats else "(no training)"}
    windows = None if doc_offsets is None else np.diff(np.asarray(doc_offsets)).tolist()
    path = write_report(output_dir, ReportInputs(
        summary=summary, results=results, problem_type=problem_type, label_list=label_list,
        logits=logits, labels=labels, texts=texts, threshold=threshold,
        stats=stats, warnings=warnings, windows=windows))
    logger.info("Report: %s", path)
    return path
