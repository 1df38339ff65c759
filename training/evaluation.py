"""Evaluation and prediction: length-sorted batches, outputs in the original row order.

The model's `config.problem_type` picks the outputs: softmax and argmax
(single-label), sigmoid and a threshold (multi-label), or the raw score (regression).
"""

import contextlib
import functools
import logging
import os

import numpy as np
import torch

from modeling.compiled import compiled_predictor
from modeling.device import autocast
from modeling.disk import atomic_write_text, finite_json
from modeling.forward import classifier_logits
from modeling.heads import MULTI_LABEL, REGRESSION
from modeling.losses import compute_loss
from processors.cells import table_cell
from processors.metrics import compute_metrics
from processors.windows import document_labels, pool_windows

from . import distributed, thresholds
from .data import inference_batches, iterate

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict_logits(model, dataset, batch_size: int, device: torch.device, precision: str,
                   compile_: bool = False) -> np.ndarray:
    """Float32 logits for every row, in the dataset's order (under torchrun: on every rank).

    With windows, one row per document: its windows' logits pooled (`dataset.pooling`),
    once every rank's windows are gathered. One autocast region around all batches: the
    weights are cast to bf16/fp16 once and reused, instead of once per batch (under
    no_grad: in inference mode autocast casts them again for every batch). `compile_`:
    a compiled copy with its weights in that precision (`compiled.compiled_predictor`).
    """
    model.eval()
    batches = distributed.my_share(inference_batches(dataset.lengths(), batch_size))
    outputs = []
    predict = compiled_predictor(model, precision) if compile_ else functools.partial(
        classifier_logits, model)
    with contextlib.nullcontext() if compile_ else autocast(device, precision):
        for batch in iterate(dataset, batches, device):
            batch.pop("labels", None)
            outputs.append(predict(**batch).float())
    logits = torch.cat(outputs).cpu().numpy() if outputs else np.zeros((0, 0), np.float32)
    order = np.asarray([i for b in batches for i in b], dtype=np.int64)
    logits, order = distributed.gather_rows(logits, order)
    restored = np.empty_like(logits)
    restored[order] = logits
    return pool_windows(restored, getattr(dataset, "doc_offsets", None),
                        getattr(dataset, "pooling", "mean"))


def outputs(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """What test_results.tsv holds: scores (regression), sigmoids, or softmax probabilities."""
    if problem_type == REGRESSION:
        return logits[:, 0]
    tensor = torch.from_numpy(logits)
    if problem_type == MULTI_LABEL:
        return torch.sigmoid(tensor).numpy()
    return torch.softmax(tensor, dim=-1).numpy()


def decide(logits: np.ndarray, problem_type: str, threshold: float) -> np.ndarray:
    """Predictions: scores, 0/1 rows (sigmoid >= threshold, one or one per label), or class
    ids (argmax; a binary task's positive class where its probability is >= threshold[0]
    when `threshold` is a 1-tuple, see thresholds.py)."""
    if problem_type == REGRESSION:
        return logits[:, 0]
    if problem_type == MULTI_LABEL or isinstance(threshold, tuple):
        return thresholds.decide(outputs(logits, problem_type), problem_type, threshold)
    return logits.argmax(-1)


def evaluate(model, dataset, metric: str, batch_size: int, device, precision: str,
             threshold: float = 0.5) -> tuple[dict, np.ndarray]:
    """Dev-set loss (unweighted) and metrics (keys without Google's `eval_` prefix), per
    document with windows; and the logits they come from."""
    logits = predict_logits(model, dataset, batch_size, device, precision)
    labels = np.asarray(document_labels(dataset))
    problem_type = model.config.problem_type
    loss = compute_loss(torch.from_numpy(logits), torch.from_numpy(labels), problem_type).item()
    results = compute_metrics(metric, decide(logits, problem_type, threshold), labels)
    results["loss"] = loss
    return results, logits


def write_eval_results(output_dir: str, results: dict, global_step: int) -> dict:
    """Writes eval_results.txt (Google's sorted `key = value` lines) and .json."""
    out = {f"eval_{k}": v for k, v in results.items()}
    out["global_step"] = global_step
    out["loss"] = results["loss"]  # Google's Estimator reports the eval loss twice
    lines = "".join(f"{key} = {out[key]}\n" for key in sorted(out))
    atomic_write_text(os.path.join(output_dir, "eval_results.txt"), lines)
    atomic_write_text(os.path.join(output_dir, "eval_results.json"), finite_json(out, True))
    logger.info("***** Eval results *****\n%s", lines.rstrip())
    return out


def _prediction_names(logits: np.ndarray, label_list, problem_type: str, threshold: float,
                      separator: str) -> list[str]:
    """predictions.tsv's column: a label, `separator`-joined labels (multi-label), or a score.
    Labels are `table_cell`s: one a spreadsheet would run as a formula gets a leading `'`."""
    decided = decide(logits, problem_type, threshold)
    if problem_type == REGRESSION:
        return [repr(float(score)) for score in decided]
    if problem_type == MULTI_LABEL:
        return [table_cell(separator.join(label_list[j] for j in np.flatnonzero(row)))
                for row in decided]
    cells = [table_cell(label) for label in label_list]
    return [cells[j] for j in decided]


def write_predictions(output_dir: str, logits: np.ndarray, label_list, problem_type: str,
                      threshold: float = 0.5, separator: str = "|") -> None:
    """test_results.tsv (probabilities or scores, no header) and predictions.tsv.

    `separator` joins a multi-label row's names: the processor's `label_separator`.
    """
    values = outputs(logits, problem_type).reshape(len(logits), -1)
    rows = "".join("\t".join(repr(float(p)) for p in row) + "\n" for row in values)
    atomic_write_text(os.path.join(output_dir, "test_results.tsv"), rows)
    names = _prediction_names(logits, label_list, problem_type, threshold, separator)
    lines = "".join(f"{i}\t{name}\n" for i, name in enumerate(names))
    atomic_write_text(os.path.join(output_dir, "predictions.tsv"), "index\tprediction\n" + lines)
    logger.info("Wrote %d predictions to %s", len(logits), output_dir)


def onnx_logits(path: str, dataset, batch_size: int) -> np.ndarray:
    """Float32 logits of every row from the exported model, in the dataset's order."""
    from modeling.onnx_export import session  # (needs the onnx extra)
    runner = session(path)
    wanted = [i.name for i in runner.get_inputs()]
    batches = inference_batches(dataset.lengths(), batch_size)
    outputs = []
    for indices in batches:
        batch = dataset.batch(indices)
        feed = {name: batch[name].numpy() for name in wanted}
        outputs.append(runner.run(["logits"], feed)[0])
    logits = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
    restored = np.empty_like(logits)
    restored[np.asarray([i for b in batches for i in b], dtype=np.int64)] = logits
    return restored
