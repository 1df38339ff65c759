"""Calibrated probabilities: temperature scaling, folded into the saved model.

Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides
the logits by one number T > 0, fitted on the dev set by minimising the negative
log-likelihood. Argmax is unchanged, so predicted labels and accuracy stay as they were;
only how far a probability can be trusted changes. Multi-label heads get one temperature
per label (each label's sigmoid is its own binary problem); regression has nothing to
calibrate.

The temperature is folded into the classifier's last Linear layer (weight and bias divided
by T), so the saved model gives calibrated probabilities wherever it runs (test_results.tsv,
transformers.pipeline, ONNX and int8 exports) with no code of ours at load time.

ECE (expected calibration error): predictions are put into 15 equal-width bins of
confidence over [0, 1]; ECE is the mean over bins, weighted by their share of rows, of
|accuracy - mean confidence|. Single-label: confidence is the top probability, correct
means argmax == label. Multi-label: every (row, label) cell is one binary prediction,
confidence max(p, 1 - p), correct means (p >= 0.5) == truth.
"""

import numpy as np
import torch

from modeling.heads import MULTI_LABEL, REGRESSION

from .evaluation import outputs

ECE_BINS = 15


def probabilities(logits: np.ndarray, problem_type: str) -> np.ndarray:
    """Softmax rows (single-label) or sigmoids (multi-label), float64."""
    return outputs(np.asarray(logits, dtype=np.float64), problem_type)


def _confidence_and_correct(logits, labels, problem_type) -> tuple[np.ndarray, np.ndarray]:
    probs = probabilities(logits, problem_type)
    labels = np.asarray(labels)
    if problem_type == MULTI_LABEL:
        predicted = probs >= 0.5
        return (np.maximum(probs, 1 - probs).ravel(),
                (predicted == (labels > 0.5)).ravel().astype(np.float64))
    return probs.max(-1), (probs.argmax(-1) == labels.astype(np.int64)).astype(np.float64)


def reliability(logits: np.ndarray, labels: np.ndarray, problem_type: str,
                bins: int = ECE_BINS) -> list[dict]:
    """Per equal-width confidence bin: its bounds, count, accuracy and mean confidence."""
    confidence, correct = _confidence_and_correct(logits, labels, problem_type)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": n,
                     "accuracy": float(correct[inside].mean()) if n else 0.0,
                     "confidence": float(confidence[inside].mean()) if n else 0.0})
    return rows


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, problem_type: str,
                               bins: int = ECE_BINS) -> float:
    """ECE over `bins` equal-width bins (see the module's docstring); 0.0 with no rows."""
    rows = reliability(logits, labels, problem_type, bins)
    total = sum(r["count"] for r in rows)
    if not total:
        return 0.0
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total)


def _nll(logits: torch.Tensor, labels: torch.Tensor, problem_type: str) -> torch.Tensor:
    if problem_type == MULTI_LABEL:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            logits, labels, reduction="none").mean(0).sum()  # labels are independent
    return torch.nn.functional.cross_entropy(logits, labels)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, problem_type: str) -> np.ndarray:
    """The temperature(s) minimising dev NLL: shape (1,), or (labels,) for multi-label.

    L-BFGS on log T (T stays positive), starting at T = 1.
    """
    if problem_type == REGRESSION:
        raise ValueError("regression has no probabilities to calibrate")
    x = torch.from_numpy(np.asarray(logits, dtype=np.float64))
    multi = problem_type == MULTI_LABEL
    y = torch.from_numpy(np.asarray(labels, dtype=np.float64 if multi else np.int64))
    log_t = torch.zeros(x.shape[1] if multi else 1, dtype=torch.float64, requires_grad=True)
    if len(x) == 0:
        return np.ones(log_t.shape[0])
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = _nll(x / log_t.clamp(-7, 7).exp(), y, problem_type)
        loss.backward()
        return loss

    optimizer.step(closure)
    return log_t.detach().clamp(-7, 7).exp().numpy()


def final_linear(model) -> torch.nn.Linear:
    """The classifier's last Linear layer: the last one with one output per label
    (BERT's `classifier`, RoBERTa's `classifier.out_proj`, ...)."""
    found = [m for m in model.modules()
             if isinstance(m, torch.nn.Linear) and m.out_features == model.config.num_labels]
    if not found:
        raise ValueError("the model has no Linear layer with one output per label")
    return found[-1]


@torch.no_grad()
def fold_temperature(model, temperature) -> None:
    """Divides the last layer's weight and bias (row j by T_j) so logits come out / T."""
    layer = final_linear(model)
    t = torch.as_tensor(np.asarray(temperature, dtype=np.float64).reshape(-1))
    t = t.expand(layer.out_features).to(layer.weight.device, layer.weight.dtype)
    layer.weight.div_(t[:, None])
    if layer.bias is not None:
        layer.bias.div_(t)


def calibrate(model, logits: np.ndarray, labels: np.ndarray, problem_type: str) -> dict:
    """Fits the temperature on dev `logits` (the model's own), folds it into `model`;
    returns what eval_results reports: the temperature(s) and the ECE before and after."""
    temperature = fit_temperature(logits, labels, problem_type)
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    fold_temperature(model, temperature)
    return {"temperature": [float(t) for t in temperature],
            "ece_before": expected_calibration_error(logits, labels, problem_type),
            "ece_after": expected_calibration_error(scaled, labels, problem_type),
            "logits": scaled.astype(np.float32)}
