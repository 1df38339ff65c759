"""A faster classification forward pass for BertForSequenceClassification's weights.

Two savings over `model(**inputs)`, with the same modules and weights (so the
saved model is unchanged and its logits are the same):
- The classifier reads one vector per row, the pooled [CLS] state of the last
  layer. So that layer computes only the [CLS] query, its attention output and
  its feed-forward pass, and it never forms keys and values: per head, with
  query q, q . (W_k x + b_k) = (W_k^T q) . x + q . b_k, and the attention-weighted
  sum of W_v x + b_v is W_v (sum p x) + b_v sum p. The [CLS] query is folded into
  the key weights and the weighted sum into the value weights. On CoLA's rows
  the layer then costs under a tenth of a full one: a 6-layer model does 15% less.
- On the CPU, dropout draws 16 random bits per element, four elements to one
  64-bit draw, instead of torch's one Mersenne-Twister call per element
  (`bernoulli_`, about 10% of a MiniLM training step on 2 cores). The drop rate
  is p rounded to 1/65536 (the kept values are scaled by the exact rate), and the
  bits come from torch's generator, so the seed and checkpoints still fix them.
  The mask is made once as 0 or 1/(1-p) per element, so a dropout that feeds a
  residual add is one `addcmul` forward and one multiply backward. GPUs keep
  torch's own fused dropout.
"""

import torch
import torch.nn.functional as F

from . import families


def _kept_scale(x: torch.Tensor, p: float) -> torch.Tensor:
    """Float32 dropout mask for x: 0 with probability p, else the exact 1/(1-p) rate."""
    cut = round(p * 65536)
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None)
    bits = words.view(torch.int16)[:x.numel()].view(x.shape)
    return torch.where(bits >= cut - 32768, 65536 / (65536 - cut), 0.0)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout: zeroes each element with probability p, scales the rest up."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    return (x * _kept_scale(x, p)).to(x.dtype)


def dropout_add(x: torch.Tensor, residual: torch.Tensor, p: float, training: bool
                ) -> torch.Tensor:
    """dropout(x) + residual; on the CPU, one pass each way (see module doc)."""
    if not training or p == 0.0 or x.device.type != "cpu":
        return dropout(x, p, training) + residual
    return torch.addcmul(residual, x, _kept_scale(x, p))


def _attend(query, key, value, mask, p: float, scale: float) -> torch.Tensor:
    """Scaled dot-product attention, with the dropout above on the CPU when training."""
    if p == 0.0 or query.device.type != "cpu":
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=p,
                                              scale=scale)
    scores = (query @ key.transpose(-1, -2)) * scale
    probs = scores.masked_fill(~mask, float("-inf")).softmax(-1)
    return dropout(probs, p, True) @ value


def _attention_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """SDPA's boolean mask (True = attend); always passed, so no step syncs with the GPU."""
    return attention_mask[:, None, None, :].bool()


def _embed(embeddings, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
           training: bool) -> torch.Tensor:
    """BertEmbeddings.forward for absolute positions (the same sums, in the same order)."""
    positions = embeddings.position_ids[:, :input_ids.shape[1]]
    hidden = (embeddings.word_embeddings(input_ids)
              + embeddings.token_type_embeddings(token_type_ids))
    hidden = embeddings.LayerNorm(hidden + embeddings.position_embeddings(positions))
    return dropout(hidden, embeddings.dropout.p, training)


def _layer(layer, hidden: torch.Tensor, mask, training: bool) -> torch.Tensor:
    """One BertLayer (the same sums as BertLayer.forward)."""
    attention = layer.attention.self
    batch, length, _ = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size

    def split(x):
        return x.view(batch, length, heads, size).transpose(1, 2)

    context = _attend(split(attention.query(hidden)), split(attention.key(hidden)),
                      split(attention.value(hidden)), mask,
                      attention.dropout.p if training else 0.0, attention.scaling)
    return _rest(layer, context.transpose(1, 2).reshape(batch, length, heads * size), hidden,
                 training)


def _cls_layer(layer, hidden: torch.Tensor, mask, training: bool) -> torch.Tensor:
    """The last BertLayer at [CLS] only, keys and values folded away (see module doc)."""
    attention = layer.attention.self
    batch, _, width = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size
    cls = hidden[:, :1]
    query = attention.query(cls).view(batch, heads, size)
    keys = attention.key.weight.view(heads, size, width)
    folded = torch.einsum("bhd,hdw->bhw", query, keys)
    offset = (query * attention.key.bias.view(heads, size)).sum(-1, keepdim=True)
    scores = (folded @ hidden.transpose(1, 2) + offset) * attention.scaling
    probs = scores.masked_fill(~mask[:, 0], float("-inf")).softmax(-1)
    probs = dropout(probs, attention.dropout.p, training)
    values = attention.value.weight.view(heads, size, width)
    context = (torch.einsum("bhw,hdw->bhd", probs @ hidden, values)
               + attention.value.bias.view(heads, size) * probs.sum(-1, keepdim=True))
    return _rest(layer, context.reshape(batch, 1, heads * size), cls, training)


def _rest(layer, context: torch.Tensor, queries: torch.Tensor, training: bool) -> torch.Tensor:
    """A BertLayer after self-attention: output projection, residuals, feed-forward."""
    out = layer.attention.output
    attended = out.LayerNorm(dropout_add(out.dense(context), queries, out.dropout.p, training))
    out = layer.output
    return out.LayerNorm(dropout_add(out.dense(layer.intermediate(attended)), attended,
                                     out.dropout.p, training))


def classifier_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor) -> torch.Tensor:
    """Logits of a BertForSequenceClassification, computed as described above; any other
    family's model runs its own forward."""
    if model.config.model_type != "bert":
        return families.logits(model, input_ids, attention_mask, token_type_ids)
    bert, training = model.bert, model.training
    hidden = _embed(bert.embeddings, input_ids, token_type_ids, training)
    mask = _attention_mask(attention_mask)
    *layers, last = bert.encoder.layer
    for layer in layers:
        hidden = _layer(layer, hidden, mask, training)
    cls = _cls_layer(last, hidden, mask, training)[:, 0]
    pooled = bert.pooler.activation(bert.pooler.dense(cls))
    return model.classifier(dropout(pooled, model.dropout.p, training))
