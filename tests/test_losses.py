"""Losses per problem type, class weights, label counts and the new metrics."""

import math

import numpy as np
import pytest
import torch

from modeling.bert import to_transformers
from modeling.forward import classifier_logits
from modeling.losses import (balanced_class_weights, compute_loss, label_distribution,
                             parse_class_weights, training_loss)
from modeling.model import build_model, load_config, resolve_source
from processors import InputError
from processors.metrics import compute_metrics

LABELS = ["neg", "neu", "pos"]


def test_balanced_weights_are_n_over_k_times_count():
    ids = [0] * 6 + [1] * 3 + [2]  # n = 10, k = 3
    weights = balanced_class_weights(ids, LABELS)
    assert weights == pytest.approx((10 / 18, 10 / 9, 10 / 3))
    from sklearn.utils.class_weight import compute_class_weight
    assert weights == pytest.approx(tuple(compute_class_weight("balanced", classes=np.arange(3),
                                                               y=np.array(ids))))


def test_balanced_weights_need_every_class():
    with pytest.raises(InputError, match="--class_weights=balanced: label 'neu' has no train"):
        balanced_class_weights([0, 2, 2], LABELS)


@pytest.mark.parametrize("spec,expected", [
    ("none", None), ("balanced", "balanced"), ("1,2.5,0.5", (1.0, 2.5, 0.5))])
def test_parse_class_weights(spec, expected):
    assert parse_class_weights(spec, LABELS, "single_label_classification") == expected


@pytest.mark.parametrize("spec,problem_type,message", [
    ("1,2", "single_label_classification", "expected none, balanced, or 3 positive numbers, "
                                           "one per label in order: neg, neu, pos"),
    ("1,0,1", "single_label_classification", "3 positive numbers"),
    ("1,x,1", "single_label_classification", "3 positive numbers"),
    ("1,nan,1", "single_label_classification", "3 positive numbers"),
    ("balanced", "regression", "only for single-label classification (this task is regression)"),
    ("1,1,1", "multi_label_classification", "only for single-label classification"),
])
def test_bad_class_weights(spec, problem_type, message):
    with pytest.raises(InputError) as info:
        parse_class_weights(spec, LABELS, problem_type)
    assert str(info.value).startswith(f"--class_weights={spec}: ") and message in str(info.value)


def test_weighted_loss_is_the_hand_computed_mean():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 0.0, 3.0]])
    labels = torch.tensor([0, 1, 1])
    weights = torch.tensor([0.5, 2.0, 1.0])
    unweighted = compute_loss(logits, labels, "single_label_classification")
    weighted = compute_loss(logits, labels, "single_label_classification", weights)
    log_softmax = [[x - math.log(sum(math.exp(v) for v in row)) for x in row]
                   for row in logits.tolist()]
    nll = [-log_softmax[i][j] for i, j in enumerate(labels.tolist())]
    assert unweighted.item() == pytest.approx(sum(nll) / 3, rel=1e-6)
    assert weighted.item() == pytest.approx((0.5 * nll[0] + 2 * nll[1] + 2 * nll[2]) / 3,
                                            rel=1e-6)
    assert abs(weighted.item() - unweighted.item()) > 0.1


def test_weighted_loss_splits_into_chunks_exactly():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    weights = torch.tensor([0.2, 1.0, 3.0])
    whole = compute_loss(logits, labels, None, weights)
    halves = sum(compute_loss(logits[i:i + 4], labels[i:i + 4], None, weights) * 0.5
                 for i in (0, 4))
    assert whole.item() == pytest.approx(halves.item(), rel=1e-6)


@pytest.fixture(scope="module")
def models(tiny_bert):
    """A tiny model per problem type, in eval mode (no dropout)."""
    source = resolve_source(tiny_bert, None, None)
    out = {}
    for problem_type, labels in (("single_label_classification", LABELS), ("regression", None),
                                 ("multi_label_classification", LABELS)):
        config = load_config(source.config_file, 1 if labels is None else 3, labels,
                             problem_type)
        out[problem_type] = build_model(source, config).eval()
    return out


@pytest.mark.parametrize("problem_type,labels", [
    ("single_label_classification", torch.tensor([0, 2])),
    ("regression", torch.tensor([0.5, 4.0])),
    ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])),
])
def test_unweighted_training_loss_equals_transformers(models, problem_type, labels):
    inputs = {"input_ids": torch.tensor([[2, 10, 11, 3], [2, 12, 3, 0]]),
              "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
              "token_type_ids": torch.zeros(2, 4, dtype=torch.long)}
    model = models[problem_type]
    with torch.no_grad():
        expected = to_transformers(model)(**inputs, labels=labels).loss.item()
        logits = classifier_logits(model, **inputs)
        assert training_loss(logits, labels, problem_type).item() == pytest.approx(expected,
                                                                                   rel=1e-5)
        if problem_type == "single_label_classification":
            weighted = training_loss(logits, labels, problem_type, (1.0, 1.0, 5.0)).item()
            assert weighted != pytest.approx(expected, rel=1e-3)


def test_label_distribution_lines():
    assert label_distribution([0, 0, 2, 0], LABELS) == (
        "neg: 3 (75.0%), neu: 0 (0.0%), pos: 1 (25.0%)")
    assert label_distribution([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]], LABELS) == (
        "neg: 2 (100.0%), neu: 0 (0.0%), pos: 1 (50.0%)")
    assert label_distribution([1.0, 3.0], None) == (
        "2 scores, mean 2.000, std 1.000, min 1.000, max 3.000")


def test_regression_metrics():
    labels = np.array([0.0, 1.0, 2.0, 3.0, 5.0])
    preds = np.array([0.1, 0.9, 2.5, 2.6, 4.0])
    from scipy.stats import pearsonr, spearmanr
    results = compute_metrics("corr", preds, labels)
    assert results["pearson"] == pytest.approx(pearsonr(preds, labels)[0])
    assert results["spearmanr"] == pytest.approx(spearmanr(preds, labels)[0]) == 1.0
    assert results["corr"] == pytest.approx((results["pearson"] + 1.0) / 2)
    assert sorted(results) == ["corr", "pearson", "spearmanr"]
    assert compute_metrics("corr", np.ones(5), labels)["corr"] == 0.0  # undefined -> 0


def test_multi_label_metrics():
    labels = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=np.float64)
    preds = np.array([[1, 0, 1], [0, 1, 1], [0, 0, 0], [1, 0, 0]])
    results = compute_metrics("micro_f1", preds, labels)
    # tp = 4, fp = 1, fn = 1 -> micro F1 = 8 / 10; per label F1: 1, 2/3, 2/3.
    assert results == pytest.approx({"micro_f1": 0.8, "macro_f1": (1 + 2 / 3 + 2 / 3) / 3,
                                     "exact_match": 0.5})
