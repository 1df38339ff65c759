"""InputExamples -> feature arrays in the layout of any family's own tokenizer.

For encoders other than BERT, each row's ids and token types are exactly
`tokenizer(text_a, text_b, truncation="longest_first", max_length=max_seq_length)`:
the tokenizer's own pair layout (RoBERTa's `<s> A </s></s> B </s>`, DeBERTa's
`[CLS] A [SEP] B [SEP]`), its token types (zeros where it makes none), and the
truncation that takes from the longer side first. The texts go to the fast (Rust)
tokenizer in two batched calls (single texts, pairs). Returns the same arrays as
`features.feature_arrays` (a `FeatureArrays`), so the cache, batching and models take
them as they are.
"""

import numpy as np

from .features import FeatureArrays, _flat, check_tokens, label_ids


def _encode(tokenizer, texts_a: list, texts_b, max_seq_length: int):
    """(ids, token types, whether each side kept a token) of one batched tokenizer call."""
    if not texts_a:
        return [], [], np.zeros((0, 2), bool)
    encoded = tokenizer(texts_a, texts_b, truncation="longest_first", max_length=max_seq_length)
    ids = encoded["input_ids"]
    types = encoded.get("token_type_ids") or [[0] * len(row) for row in ids]
    sides = np.array([[0 in e.sequence_ids, texts_b is None or 1 in e.sequence_ids]
                      for e in encoded.encodings], bool)
    return ids, types, sides


def tokenizer_feature_arrays(examples, label_list, max_seq_length: int, tokenizer
                             ) -> FeatureArrays:
    """The rows in the tokenizer's own layout, end to end (labels None for test). Pure."""
    pairs = np.array([e.text_b is not None for e in examples], bool)
    single = np.flatnonzero(~pairs)
    paired = np.flatnonzero(pairs)
    ids_1, types_1, sides_1 = _encode(tokenizer, [examples[i].text_a for i in single], None,
                                      max_seq_length)
    ids_2, types_2, sides_2 = _encode(tokenizer, [examples[i].text_a for i in paired],
                                      [examples[i].text_b for i in paired], max_seq_length)
    order = np.argsort(np.concatenate([single, paired]), kind="stable")
    ids = [(ids_1 + ids_2)[i] for i in order]
    types = [(types_1 + types_2)[i] for i in order]
    sides = np.concatenate([sides_1, sides_2])[order] if len(order) else np.ones((0, 2), bool)
    check_tokens(examples, sides[:, 0].astype(np.int64), sides[:, 1].astype(np.int64))
    input_ids, _, lengths = _flat(ids)
    segment_ids, _, _ = _flat(types)
    return FeatureArrays(input_ids, segment_ids.astype(np.int8), lengths,
                         label_ids(examples, label_list))
