"""A faster classification forward pass for BertForSequenceClassification's weights.

Three savings over `model(**inputs)`, with the same modules and weights (so the
saved model is unchanged and its logits are the same):
- The classifier reads one vector per row, the pooled [CLS] state of the last
  layer. So that layer computes only the [CLS] query, its attention output and
  its feed-forward pass, and it never forms keys and values: per head, with
  query q, q . (W_k x + b_k) = (W_k^T q) . x + q . b_k, and the attention-weighted
  sum of W_v x + b_v is W_v (sum p x) + b_v sum p. The [CLS] query is folded into
  the key weights and the weighted sum into the value weights. On CoLA's rows
  the layer then costs under a tenth of a full one: a 6-layer model does 15% less.
- On the CPU, dropout draws 16 random bits per element instead of torch's one
  Mersenne-Twister call per element (`bernoulli_`, about 10% of a MiniLM training
  step on 2 cores), and every dropout of a forward pass takes its bits from one
  draw (`DropoutBits`), made before the pass: four elements to one 64-bit word of
  torch's generator, so the seed and checkpoints still fix them, and a compiled
  pass (`compiled.py`) gets the same masks as this eager one. The drop rate is p
  rounded to 1/65536 (the kept values are scaled by the exact rate). The mask is
  made as 0 or 1/(1-p) per element, so a dropout that feeds a residual add is one
  `addcmul` forward and one multiply backward. GPUs keep torch's own fused dropout.
- On the CPU, attention without dropout (eval, predict) over rows of up to 64 tokens is
  the plain product, mask and softmax, which inductor fuses; torch's CPU SDPA kernel
  costs more on short rows.
The attention mask is built once per forward (`_Mask`): SDPA's additive form (0 or -inf)
in the attention's dtype, made at the first layer and reused by every other, instead of
SDPA converting a boolean mask in each layer.

`cuda_path=True` makes a CPU run take exactly the branches a CUDA run takes (torch's
dropout, SDPA at every length): the tests run the GPU's code path on the CPU with it.
"""

from typing import Optional, Union

import torch
import torch.nn.functional as F

from . import families


class DropoutBits:
    """The CPU dropout masks of one forward pass, cut in order from one draw of bits."""

    def __init__(self, bits: torch.Tensor):
        self.bits, self.used = bits, 0

    @staticmethod
    def draw(count: int) -> torch.Tensor:
        """`count` random int16s from torch's generator (four to one 64-bit draw)."""
        words = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-2 ** 63, None)
        return words.view(torch.int16)[:count]

    def kept_scale(self, x: torch.Tensor, p: float) -> torch.Tensor:
        """Float32 dropout mask for x: 0 with probability p, else the exact 1/(1-p) rate."""
        bits = self.bits[self.used:self.used + x.numel()].view(x.shape)
        self.used += x.numel()
        cut = round(p * 65536)
        return torch.where(bits >= cut - 32768, 65536 / (65536 - cut), 0.0)

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        return x if p == 0.0 else (x * self.kept_scale(x, p)).to(x.dtype)

    def dropout_add(self, x: torch.Tensor, residual: torch.Tensor, p: float) -> torch.Tensor:
        """dropout(x) + residual in one pass each way."""
        return x + residual if p == 0.0 else torch.addcmul(residual, x, self.kept_scale(x, p))


class TorchDropout:
    """torch's own dropout (GPUs)."""

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        return F.dropout(x, p, True) if p else x

    def dropout_add(self, x: torch.Tensor, residual: torch.Tensor, p: float) -> torch.Tensor:
        return self.dropout(x, p) + residual


class NoDropout:
    """Eval: every dropout is the identity."""

    def dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        return x

    def dropout_add(self, x: torch.Tensor, residual: torch.Tensor, p: float) -> torch.Tensor:
        return x + residual


Dropout = Union[DropoutBits, TorchDropout, NoDropout]
# torch's CPU SDPA (flash attention) costs more than the plain softmax(QK^T)V on short
# rows: 3.7 ms against 1.6 for 64 rows of 15 tokens in bf16, the same at 40, less at 128.
CPU_MATH_ATTENTION_MAX = 64


def dropout_elements(model, batch: int, length: int) -> int:
    """How many elements the CPU dropouts of one training pass mask (the bits drawn)."""
    bert, config = model.bert, model.config
    width, heads = config.hidden_size, config.num_attention_heads

    def masked(p: float, count: int) -> int:
        return count if p > 0.0 else 0

    total = masked(bert.embeddings.dropout.p, batch * length * width)
    total += masked(model.dropout.p, batch * width)
    *layers, last = bert.encoder.layer
    for layer, rows in [(layer, length) for layer in layers] + [(last, 1)]:
        total += masked(layer.attention.self.dropout.p, batch * heads * rows * length)
        total += masked(layer.attention.output.dropout.p, batch * rows * width)
        total += masked(layer.output.dropout.p, batch * rows * width)
    return total


def dropout_bits(model, input_ids: torch.Tensor, cuda_path: bool = False
                 ) -> Optional[torch.Tensor]:
    """The bits of a CPU training pass (None in eval, on GPUs and with `cuda_path`)."""
    if not model.training or input_ids.device.type != "cpu" or cuda_path:
        return None
    return DropoutBits.draw(dropout_elements(model, *input_ids.shape))


class _Mask:
    """One forward's attention mask, built once: `keep` (True = attend, batch x 1 x 1 x
    length) and, at the first layer, its additive form in the attention's dtype (0 or
    -inf), which every layer adds (the same probabilities as masking with -inf). Always
    passed, so no step syncs with the GPU to ask whether a batch has padding."""

    def __init__(self, attention_mask: torch.Tensor, cpu_branches: bool):
        self.keep = attention_mask[:, None, None, :].bool()
        self.cpu_branches = cpu_branches  # the CPU's plain short-row attention may be taken
        self._additive = None

    def additive(self, dtype: torch.dtype) -> torch.Tensor:
        if self._additive is None or self._additive.dtype != dtype:
            self._additive = torch.zeros(self.keep.shape, dtype=dtype,
                                         device=self.keep.device).masked_fill_(
                                             ~self.keep, float("-inf"))
        return self._additive


def _attention_mask(attention_mask: torch.Tensor, cpu_branches: bool = True) -> _Mask:
    return _Mask(attention_mask, cpu_branches)


def _attend(query, key, value, mask: _Mask, p: float, scale: float, drop: Dropout
            ) -> torch.Tensor:
    """Scaled dot-product attention; CPU dropout from `drop`'s bits. On the CPU, rows of
    up to `CPU_MATH_ATTENTION_MAX` tokens take the plain product, mask and softmax."""
    plain = (isinstance(drop, DropoutBits) and p > 0.0) or (
        mask.cpu_branches and query.device.type == "cpu"
        and key.shape[-2] <= CPU_MATH_ATTENTION_MAX)
    bias = mask.additive(query.dtype)
    if not plain:
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=bias,
            dropout_p=p if isinstance(drop, TorchDropout) else 0.0, scale=scale)
    scores = (query @ key.transpose(-1, -2)) * scale
    return drop.dropout((scores + bias).softmax(-1), p) @ value


def input_embeddings(model, input_ids: torch.Tensor, token_type_ids: torch.Tensor
                     ) -> torch.Tensor:
    """BertEmbeddings.forward for absolute positions up to its LayerNorm: the word,
    token-type and position lookups and their sum (the same sums, in the same order).
    A compiled training pass leaves them outside its graph: the word table's gradient is
    sparse, and inductor's backward of the other lookups adds rows with atomics, in no
    fixed order, so two runs of one seed would differ."""
    embeddings = model.bert.embeddings
    positions = embeddings.position_ids[:, :input_ids.shape[1]]
    hidden = (embeddings.word_embeddings(input_ids)
              + embeddings.token_type_embeddings(token_type_ids))
    return hidden + embeddings.position_embeddings(positions)


def _cast_once(hidden: torch.Tensor) -> torch.Tensor:
    """Without gradients, `hidden` cast to autocast's dtype once for the query, key and value
    projections, which would each cast it (the same values; with gradients the three
    backward casts keep summing in float32)."""
    device = hidden.device.type
    if torch.is_grad_enabled() or not torch.is_autocast_enabled(device):
        return hidden
    return hidden.to(torch.get_autocast_dtype(device))


def _layer(layer, hidden: torch.Tensor, mask, drop: Dropout) -> torch.Tensor:
    """One BertLayer (the same sums as BertLayer.forward)."""
    attention = layer.attention.self
    batch, length, _ = hidden.shape
    heads, size = attention.num_attention_heads, attention.attention_head_size

    def split(x):
        return x.view(batch, length, heads, size).transpose(1, 2)

    inputs = _cast_once(hidden)
    context = _attend(split(attention.query(inputs)), split(attention.key(inputs)),
                      split(attention.value(inputs)), mask, attention.dropout.p,
                      attention.scaling, drop)
    return _rest(layer, context.transpose(1, 2).reshape(batch, length, heads * size), hidden,
                 drop)


def _cls_layer(layer, hidden: torch.Tensor, mask, drop: Dropout) -> torch.Tensor:
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
    probs = (scores + mask.additive(scores.dtype)[:, 0]).softmax(-1)
    probs = drop.dropout(probs, attention.dropout.p)
    values = attention.value.weight.view(heads, size, width)
    context = (torch.einsum("bhw,hdw->bhd", probs @ hidden, values)
               + attention.value.bias.view(heads, size) * probs.sum(-1, keepdim=True))
    return _rest(layer, context.reshape(batch, 1, heads * size), cls, drop)


def _rest(layer, context: torch.Tensor, queries: torch.Tensor, drop: Dropout) -> torch.Tensor:
    """A BertLayer after self-attention: output projection, residuals, feed-forward."""
    out = layer.attention.output
    attended = out.LayerNorm(drop.dropout_add(out.dense(context), queries, out.dropout.p))
    out = layer.output
    return out.LayerNorm(drop.dropout_add(out.dense(layer.intermediate(attended)), attended,
                                          out.dropout.p))


def classifier_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor, cuda_path: bool = False) -> torch.Tensor:
    """Logits of a BertForSequenceClassification, computed as described above (CUDA's
    branches on any device with `cuda_path`); any other family's model runs its own
    forward."""
    if model.config.model_type != "bert":
        return families.logits(model, input_ids, attention_mask, token_type_ids)
    return logits_from_embeddings(model, input_embeddings(model, input_ids, token_type_ids),
                                  attention_mask, dropout_bits(model, input_ids, cuda_path),
                                  cuda_path)


def logits_from_embeddings(model, embedded: torch.Tensor, attention_mask: torch.Tensor,
                           bits: Optional[torch.Tensor], cuda_path: bool = False
                           ) -> torch.Tensor:
    """classifier_logits after `input_embeddings`; `bits` from `dropout_bits`."""
    bert = model.bert
    drop = (NoDropout() if not model.training else DropoutBits(bits) if bits is not None
            else TorchDropout())
    hidden = drop.dropout(bert.embeddings.LayerNorm(embedded), bert.embeddings.dropout.p)
    mask = _attention_mask(attention_mask, not cuda_path)
    *layers, last = bert.encoder.layer
    for layer in layers:
        hidden = _layer(layer, hidden, mask, drop)
    cls = _cls_layer(last, hidden, mask, drop)[:, 0]
    pooled = bert.pooler.activation(bert.pooler.dense(cls))
    return model.classifier(drop.dropout(pooled, model.dropout.p))
