"""Temperature scaling: it lowers NLL and ECE on an over-confident set, keeps the argmax,
and the temperature folded into the last layer gives the same probabilities as logits / T."""

import numpy as np
import pytest
import torch

from modeling.heads import MULTI_LABEL, SINGLE_LABEL
from training.calibration import (calibrate, expected_calibration_error, fit_temperature,
                                  fold_temperature, reliability)


def overconfident(n=2000, k=3, scale=4.0, seed=0):
    """Labels drawn from softmax(z); the logits a model gives are scale * z (too sure)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k))
    p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
    labels = np.array([rng.choice(k, p=row) for row in p])
    return (scale * z).astype(np.float32), labels


def nll(logits, labels):
    return torch.nn.functional.cross_entropy(torch.from_numpy(logits).double(),
                                             torch.from_numpy(labels)).item()


def test_temperature_lowers_nll_and_ece_and_keeps_argmax():
    logits, labels = overconfident()
    t = fit_temperature(logits, labels, SINGLE_LABEL)
    assert t.shape == (1,) and 3.0 < t[0] < 5.5  # the true scale is 4
    scaled = (logits / t).astype(np.float32)
    assert nll(scaled, labels) < nll(logits, labels) - 0.1
    before = expected_calibration_error(logits, labels, SINGLE_LABEL)
    after = expected_calibration_error(scaled, labels, SINGLE_LABEL)
    assert after < before / 2 and after < 0.05
    assert (scaled.argmax(-1) == logits.argmax(-1)).all()


def test_ece_of_a_perfectly_confident_right_model_is_zero():
    logits = np.array([[20.0, -20.0], [-20.0, 20.0]], np.float32)
    assert expected_calibration_error(logits, np.array([0, 1]), SINGLE_LABEL) < 1e-6
    assert expected_calibration_error(logits, np.array([1, 0]), SINGLE_LABEL) > 0.99
    rows = reliability(logits, np.array([0, 1]), SINGLE_LABEL)
    assert len(rows) == 15 and rows[-1]["count"] == 2 and rows[0]["low"] == 0.0


def test_multi_label_one_temperature_per_label():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3000, 2))
    labels = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(np.float32)
    logits = (z * np.array([3.0, 0.5])).astype(np.float32)  # label 0 too sure, 1 too timid
    t = fit_temperature(logits, labels, MULTI_LABEL)
    assert t.shape == (2,) and t[0] > 2 and t[1] < 0.8
    assert expected_calibration_error(logits / t, labels, MULTI_LABEL) < \
        expected_calibration_error(logits, labels, MULTI_LABEL)


@pytest.mark.parametrize("problem_type,temperature", [(SINGLE_LABEL, [2.5]),
                                                      (MULTI_LABEL, [2.0, 0.5, 3.0])])
def test_folded_weights_give_logits_over_t(problem_type, temperature):
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=3,
                        problem_type=problem_type)
    model = BertForSequenceClassification(config).eval()
    ids = torch.randint(0, 50, (4, 7))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        fold_temperature(model, temperature)
        after = model(input_ids=ids).logits
    expected = before / torch.tensor(temperature)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-6)


def test_calibrate_reports_and_folds():
    from transformers import BertConfig, BertForSequenceClassification
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, num_labels=3)
    model = BertForSequenceClassification(config)
    bias = model.classifier.bias.detach().clone() + 1.0
    with torch.no_grad():
        model.classifier.bias.copy_(bias)
    logits, labels = overconfident(500)
    out = calibrate(model, logits, labels, SINGLE_LABEL)
    assert out["ece_after"] < out["ece_before"]
    t = out["temperature"][0]
    torch.testing.assert_close(model.classifier.bias, bias / t)
    np.testing.assert_allclose(out["logits"], logits / t, rtol=1e-5)
