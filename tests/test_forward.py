"""The fast forward pass: its dropout, and its training-mode equality with transformers'."""

import pytest
import torch
import torch.nn.functional as F

from modeling.forward import (CPU_MATH_ATTENTION_MAX, DropoutBits, NoDropout, _attend, _Mask,
                              _attention_mask, _cls_layer, _rest, classifier_logits,
                              dropout_bits, dropout_elements, input_embeddings,
                              logits_from_embeddings)
from modeling.bert import to_transformers
from modeling.model import build_model, load_config, resolve_source

KEEP_SCALE = 65536 / (65536 - round(0.1 * 65536))


def dropout(x, p):
    """One CPU dropout with its own draw of bits."""
    return DropoutBits(DropoutBits.draw(x.numel())).dropout(x, p)


def dropout_add(x, residual, p):
    return DropoutBits(DropoutBits.draw(x.numel())).dropout_add(x, residual, p)


def test_dropout_drops_p_of_the_elements_and_scales_the_rest():
    torch.manual_seed(0)
    x = torch.ones(1000, 1000)
    y = dropout(x, 0.1)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002  # 1e6 draws: the standard error is 0.0003
    assert torch.all((y == 0) | (y == KEEP_SCALE))
    assert abs(y.mean().item() - 1.0) < 0.003  # unbiased: E[y] = x
    rows, cols = (y == 0).float().mean(1), (y == 0).float().mean(0)
    assert rows.std() < 0.02 and cols.std() < 0.02  # no position is favoured


def test_dropout_is_fixed_by_the_seed_and_varies_without_it():
    x = torch.randn(64, 33)
    torch.manual_seed(7)
    first, second = dropout(x, 0.5), dropout(x, 0.5)
    torch.manual_seed(7)
    assert torch.equal(dropout(x, 0.5), first)
    assert not torch.equal(first, second)


def test_dropout_gradient_is_the_mask_times_the_scale():
    x = torch.randn(50, 7, requires_grad=True)
    y = dropout(x, 0.1)
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y != 0).float() * KEEP_SCALE)


def test_dropout_is_the_identity_in_eval_and_keeps_the_dtype():
    x = torch.randn(5, 9).bfloat16()
    assert NoDropout().dropout(x, 0.1) is x and dropout(x, 0.0) is x
    assert dropout(x, 0.1).dtype == torch.bfloat16


def test_dropout_add_is_dropout_then_the_residual_with_the_same_mask_and_gradients():
    x = torch.randn(40, 9, requires_grad=True)
    residual = torch.randn(40, 9, requires_grad=True)
    torch.manual_seed(3)
    fused = dropout_add(x, residual, 0.1)
    fused.sum().backward()
    grads = x.grad.clone(), residual.grad.clone()
    x.grad = residual.grad = None
    torch.manual_seed(3)
    separate = dropout(x, 0.1) + residual
    separate.sum().backward()
    torch.testing.assert_close(fused, separate)
    assert ((fused - residual).detach() == 0).any()  # some elements were dropped
    torch.testing.assert_close(grads[0], x.grad)
    torch.testing.assert_close(grads[1], torch.ones_like(residual))
    assert torch.equal(DropoutBits(None).dropout_add(x, residual, 0.0), x + residual)


def test_bf16_dropout_scales_by_the_exact_rate_before_rounding():
    x = torch.full((256, 256), 7.0, dtype=torch.bfloat16)  # 7 x the bf16-rounded rate differs
    kept = dropout(x, 0.1)
    assert kept.dtype == torch.bfloat16
    assert set(kept.unique().tolist()) == {0.0, torch.tensor(7.0 * KEEP_SCALE).bfloat16().item()}


def test_training_attention_without_drops_equals_sdpa():
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    mask = torch.ones(2, 1, 1, 5, dtype=torch.bool)
    mask[1, ..., 3:] = False
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    bits = DropoutBits(DropoutBits.draw(q.numel() // 4 * 5))
    torch.testing.assert_close(_attend(q, k, v, _Mask(mask[:, 0, 0].long(), True), 1e-7, 0.3,
                                       bits), expected)  # p rounds to 0


@pytest.mark.parametrize("length, sdpa_calls", [(5, 0), (CPU_MATH_ATTENTION_MAX + 1, 1)])
def test_cpu_eval_attention_is_the_plain_product_on_short_rows_and_sdpa_beyond(
        monkeypatch, length, sdpa_calls):
    q, k, v = (torch.randn(2, 3, length, 4) for _ in range(3))
    mask = torch.ones(2, 1, 1, length, dtype=torch.bool)
    mask[1, ..., 3:] = False
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.3)
    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return expected
    monkeypatch.setattr(F, "scaled_dot_product_attention", counted)
    built = _Mask(mask[:, 0, 0].long(), True)
    torch.testing.assert_close(_attend(q, k, v, built, 0.1, 0.3, NoDropout()), expected)
    assert len(calls) == sdpa_calls
    calls.clear()
    gpu = _Mask(mask[:, 0, 0].long(), False)  # cuda_path: SDPA at every length
    torch.testing.assert_close(_attend(q, k, v, gpu, 0.1, 0.3, NoDropout()), expected)
    assert len(calls) == 1


def test_the_attention_mask_is_built_once_per_forward(tiny_bert, monkeypatch):
    """One additive mask for every layer, the same logits as the boolean one gives."""
    from modeling import forward
    built = []
    real = forward._Mask.additive

    def counting(self, dtype):
        mask = real(self, dtype)
        built.append(id(mask))
        return mask
    monkeypatch.setattr(forward._Mask, "additive", counting)
    model = without_dropout(tiny_bert).eval()
    ids = torch.randint(5, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    logits = classifier_logits(model, ids, mask, torch.zeros_like(ids), cuda_path=True)
    assert len(built) == model.config.num_hidden_layers and len(set(built)) == 1
    expected = to_transformers(model)(input_ids=ids, attention_mask=mask,
                                      token_type_ids=torch.zeros_like(ids))
    torch.testing.assert_close(logits, expected.logits, rtol=1e-5, atol=1e-5)


def without_dropout(tiny_bert):
    source = resolve_source(tiny_bert, None, None)
    config = load_config(source.config_file, 2, ["0", "1"])
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.classifier_dropout = None
    torch.manual_seed(0)  # the same classifier head each time
    return build_model(source, config).train()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_training_forward_and_gradients_equal_the_transformers_model(tiny_bert, dtype):
    """With dropout off, train mode checks the full-layer path, and backward, exactly."""
    ids = torch.randint(5, 60, (4, 12))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    types = (torch.arange(12) >= 6).long().expand(4, 12)
    grads = []
    for forward in (lambda m: m(input_ids=ids, attention_mask=mask, token_type_ids=types).logits,
                    lambda m: classifier_logits(m, ids, mask, types)):
        model = without_dropout(tiny_bert)
        if not grads:  # transformers' own class and forward, with the same weights
            model = to_transformers(model)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            logits = forward(model)
        logits.float().pow(2).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {
        "rtol": 0.05, "atol": 0.02}
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 30
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], **tolerance, msg=name)


def cls_layer_with_keys_and_values(layer, hidden, mask, drop):
    """The last layer at [CLS] the direct way: every token's key and value formed."""
    attention = layer.attention.self
    batch, length, width = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size

    def split(x):
        return x.view(batch, x.shape[1], heads, size).transpose(1, 2)

    query = split(attention.query(hidden[:, :1]))
    scores = query @ split(attention.key(hidden)).transpose(-1, -2) * attention.scaling
    probs = drop.dropout(scores.masked_fill(~mask.keep, float("-inf")).softmax(-1),
                         attention.dropout.p)
    context = (probs @ split(attention.value(hidden))).transpose(1, 2).reshape(batch, 1, width)
    return _rest(layer, context, hidden[:, :1], drop)


def test_folded_cls_layer_equals_the_direct_one_with_dropout_and_padding(tiny_bert):
    """Dropped attention weights no longer sum to 1: the value bias must follow their sum."""
    source = resolve_source(tiny_bert, None, None)
    config = load_config(source.config_file, 2, ["0", "1"])
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.3
    layer = build_model(source, config).bert.encoder.layer[-1].train()
    with torch.no_grad():  # biases start at 0 and weights small: make every term count
        for p in layer.parameters():
            p.normal_(0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    attention_mask = torch.ones(5, 9, dtype=torch.long)
    attention_mask[2, 4:] = 0
    mask = _attention_mask(attention_mask)
    outputs, grads = [], []
    bits = DropoutBits.draw(5 * config.num_attention_heads * 9 + 2 * 5 * config.hidden_size)
    for forward in (_cls_layer, cls_layer_with_keys_and_values):
        hidden = torch.randn(5, 9, config.hidden_size, generator=torch.Generator().manual_seed(1),
                             requires_grad=True)
        out = forward(layer, hidden, mask, DropoutBits(bits))
        out.pow(2).sum().backward()
        outputs.append(out)
        grads.append([hidden.grad] + [p.grad.clone() for p in layer.parameters()])
        layer.zero_grad()
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    for folded, direct in zip(*grads):
        torch.testing.assert_close(folded, direct, rtol=1e-4, atol=1e-5)
    assert grads[0][0][2, 4:].abs().max() == 0  # padded tokens get no gradient


def test_a_training_pass_uses_exactly_the_bits_dropout_elements_counts(tiny_bert):
    source = resolve_source(tiny_bert, None, None)
    model = build_model(source, load_config(source.config_file, 2, ["0", "1"])).train()
    ids = torch.randint(5, 60, (3, 7))
    mask, types = torch.ones_like(ids), torch.zeros_like(ids)
    embedded = input_embeddings(model, ids, types)
    count = dropout_elements(model, 3, 7)
    assert count > 3 * 7 * model.config.hidden_size
    bits = DropoutBits.draw(count)
    assert bits.shape == (count,) and bits.dtype == torch.int16
    logits_from_embeddings(model, embedded, mask, bits)  # every bit used...
    with pytest.raises(RuntimeError):  # ...and one fewer is too few
        logits_from_embeddings(model, embedded, mask, bits[1:])
    torch.manual_seed(5)
    first = classifier_logits(model, ids, mask, types)
    torch.manual_seed(5)
    torch.testing.assert_close(logits_from_embeddings(model, embedded, mask,
                                                      dropout_bits(model, ids)), first)
    assert dropout_bits(model.eval(), ids) is None


def test_predict_casts_each_weight_to_bf16_once_per_call_not_once_per_batch(tiny_bert):
    """Autocast reuses a weight's cast only outside inference mode: predict_logits runs
    under no_grad, so three batches cast each weight matrix once."""
    from torch.profiler import ProfilerActivity, profile

    from processors.cache import FeatureSet
    from processors.features import InputFeatures
    from training.evaluation import predict_logits
    model = without_dropout(tiny_bert)
    rows = [InputFeatures([2] + [7 + i % 40] * 9, [1] * 10, [0] * 10, 0) for i in range(12)]
    dataset = FeatureSet.from_features(rows)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        predict_logits(model, dataset, 4, torch.device("cpu"), "bf16")  # three batches
    weight = list(model.bert.encoder.layer[0].intermediate.dense.weight.shape)  # [64, 32]
    casts = [e for e in prof.events() if e.name == "aten::_to_copy"
             and e.input_shapes and e.input_shapes[0] == weight]
    assert len(casts) == len(model.bert.encoder.layer)


def test_without_gradients_the_attention_input_is_cast_once_with_the_same_logits(
        tiny_bert, monkeypatch):
    from modeling import forward
    model = without_dropout(tiny_bert).eval()
    ids = torch.randint(5, 60, (3, 9))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0
    casts = []
    real = forward._cast_once

    def counted(hidden):
        out = real(hidden)
        casts.append(out.dtype)
        return out
    monkeypatch.setattr(forward, "_cast_once", counted)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        once = classifier_logits(model, ids, mask, torch.zeros_like(ids))
        monkeypatch.setattr(forward, "_cast_once", lambda hidden: hidden)
        thrice = classifier_logits(model, ids, mask, torch.zeros_like(ids))
    assert casts == [torch.bfloat16] * (model.config.num_hidden_layers - 1)
    assert torch.equal(once, thrice)
