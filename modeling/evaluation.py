"""Evaluation and prediction: length-sorted batches, outputs in the original row order."""

import json
import logging
import os

import numpy as np
import torch

from processors.fileio import atomic_write_text
from processors.metrics import compute_metrics

from .data import inference_batches, iterate
from .device import autocast
from .forward import classifier_logits

logger = logging.getLogger(__name__)


@torch.inference_mode()
def predict_logits(model, dataset, batch_size: int, device: torch.device, precision: str
                   ) -> np.ndarray:
    """Float32 logits for every row, in the dataset's order.

    One autocast region around all batches: the weights are cast to bf16/fp16
    once and reused, instead of once per batch.
    """
    model.eval()
    batches = inference_batches(dataset.lengths(), batch_size)
    outputs = []
    with autocast(device, precision):
        for batch in iterate(dataset, batches, device):
            batch.pop("labels", None)
            outputs.append(classifier_logits(model, **batch).float())
    logits = torch.cat(outputs).cpu().numpy() if outputs else np.zeros((0, 0), np.float32)
    order = np.concatenate([np.asarray(b, dtype=np.int64) for b in batches])
    restored = np.empty_like(logits)
    restored[order] = logits
    return restored


def evaluate(model, dataset, metric: str, batch_size: int, device, precision: str) -> dict:
    """Dev-set loss and metrics (keys without Google's `eval_` prefix)."""
    logits = predict_logits(model, dataset, batch_size, device, precision)
    labels = np.asarray(dataset.labels)
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                             torch.from_numpy(labels)).item()
    results = compute_metrics(metric, logits.argmax(-1), labels)
    results["loss"] = loss
    return results


def write_eval_results(output_dir: str, results: dict, global_step: int) -> dict:
    """Writes eval_results.txt (Google's sorted `key = value` lines) and .json."""
    out = {f"eval_{k}": v for k, v in results.items()}
    out["global_step"] = global_step
    out["loss"] = results["loss"]  # Google's Estimator reports the eval loss twice
    lines = "".join(f"{key} = {out[key]}\n" for key in sorted(out))
    atomic_write_text(os.path.join(output_dir, "eval_results.txt"), lines)
    atomic_write_text(os.path.join(output_dir, "eval_results.json"),
                      json.dumps(out, indent=2, sort_keys=True) + "\n")
    logger.info("***** Eval results *****\n%s", lines.rstrip())
    return out


def write_predictions(output_dir: str, logits: np.ndarray, label_list: list[str]) -> None:
    """test_results.tsv (class probabilities, no header) and predictions.tsv (labels)."""
    probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
    rows = "".join("\t".join(repr(float(p)) for p in row) + "\n" for row in probs)
    assert rows.count("\n") == len(logits)
    atomic_write_text(os.path.join(output_dir, "test_results.tsv"), rows)
    names = "".join(f"{i}\t{label_list[j]}\n" for i, j in enumerate(probs.argmax(-1)))
    atomic_write_text(os.path.join(output_dir, "predictions.tsv"), "index\tprediction\n" + names)
    logger.info("Wrote %d predictions to %s", len(logits), output_dir)
