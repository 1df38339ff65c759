"""InputExamples -> features in BERT's input layout, unpadded, as typed arrays.

Features keep each row at its own length (`FeatureArrays`: rows end to end);
`collate` pads a batch of `FeatureRow`s to its longest row, so no work is spent
on padding that a batch does not need.
"""

import dataclasses
import itertools
import logging
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from modeling.errors import InputError

logger = logging.getLogger(__name__)

Label = Union[int, float, list[float], None]  # class id, score, multi-hot


@dataclass(frozen=True)
class InputFeatures:
    """One example as ids. Unpadded: `input_mask` is all ones until `collate` pads."""

    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    label_id: Label


@dataclass(frozen=True)
class FeatureArrays:
    """Rows of features end to end, unpadded: what a builder makes of a chunk of examples.

    `input_ids` (int32) and `segment_ids` (int8) hold every row's tokens in turn,
    `lengths` (int64) each row's length; `label_ids` are class ids (int64), scores
    or multi-hot rows (float32), None for test. With windows, rows are windows:
    `windows` counts each example's rows and `doc_lengths` is each example's
    untruncated length.
    """

    input_ids: np.ndarray
    segment_ids: np.ndarray
    lengths: np.ndarray
    label_ids: Optional[np.ndarray] = None
    windows: Optional[np.ndarray] = None
    doc_lengths: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.lengths)

    def rows(self) -> Iterator["FeatureRow"]:
        """Each row's ids and segment ids (array views) and its label, in order."""
        ends = np.cumsum(self.lengths).tolist()
        for i, end in enumerate(ends):
            start = end - int(self.lengths[i])
            yield FeatureRow(self.input_ids[start:end], self.segment_ids[start:end],
                             None if self.label_ids is None else self.label_ids[i])


class FeatureRow(NamedTuple):
    """One row as `collate` takes it: token ids, segment ids, label (None for test)."""

    input_ids: Sequence[int]
    segment_ids: Sequence[int]
    label: Label = None


def tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of many texts in one batched call of the Rust tokenizer; no special tokens.

    The backend's own batch call: transformers' wrapper around it costs a third
    more time and gives the same ids.
    """
    if not texts:
        return []
    backend = tokenizer.backend_tokenizer
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [e.ids for e in encode(list(texts), add_special_tokens=False)]


def truncated_lengths(len_a: np.ndarray, len_b: np.ndarray, max_length: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """What Google's `_truncate_seq_pair` leaves of each side, for many pairs at once.

    Google's loop pops one token at a time from the longer side (from b on a tie),
    so a long text loses its tail before a short one loses anything. In closed
    form: the longer side loses tokens until both are equal, then they lose one
    each in turn, b first.
    """
    excess = np.maximum(len_a + len_b - max_length, 0)
    gap = np.abs(len_a - len_b)
    even = np.maximum(excess - gap, 0)  # tokens cut after both sides are equal
    cut_longer = np.minimum(excess, gap)
    a = np.where(len_a > len_b, len_a - cut_longer, len_a)
    b = np.where(len_a > len_b, len_b, len_b - cut_longer)
    a, b = a - even // 2, b - (even + 1) // 2
    return np.where(excess > 0, a, len_a), np.where(excess > 0, b, len_b)


def _spans(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices start, start+1, ..., start+length-1 of every span, concatenated."""
    total = int(lengths.sum())
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + within


def _flat(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all ids in one int32 array, each row's start, each row's length)."""
    lengths = np.fromiter(map(len, ids), np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), np.int32, count=int(lengths.sum()))
    return flat, np.cumsum(lengths) - lengths, lengths


def label_ids(examples, label_list: Optional[Sequence[str]]) -> Optional[np.ndarray]:
    """Class ids (int64), scores (float32) or a multi-hot float32 matrix; None for test."""
    if not examples or examples[0].label is None:
        return None
    if label_list is None:
        return np.array([float(e.label) for e in examples], np.float32)
    label_map = {label: i for i, label in enumerate(label_list)}
    if isinstance(examples[0].label, tuple):
        multi_hot = np.zeros((len(examples), len(label_list)), np.float32)
        for i, e in enumerate(examples):
            multi_hot[i, [label_map[name] for name in e.label]] = 1.0
        return multi_hot
    return np.array([label_map[e.label] for e in examples], np.int64)


@dataclass(frozen=True)
class TokenArrays:
    """The token ids of many examples, flat: text_a's, and text_b's where there is one."""

    flat_a: np.ndarray
    start_a: np.ndarray
    len_a: np.ndarray
    pairs: np.ndarray  # bool: the example has a text_b
    flat_b: np.ndarray
    start_b: np.ndarray
    len_b: np.ndarray  # 0 where there is no text_b


def token_arrays(examples, tokenizer) -> TokenArrays:
    """Both texts of every example tokenized (two batched calls); empty texts are errors."""
    flat_a, start_a, len_a = _flat(tokenize(tokenizer, [e.text_a for e in examples]))
    pairs = np.array([e.text_b is not None for e in examples], bool)
    ids_b = tokenize(tokenizer, [e.text_b for e in examples if e.text_b is not None])
    flat_b, start_b, len_b = np.zeros(0, np.int32), np.zeros(len(examples), np.int64), \
        np.zeros(len(examples), np.int64)
    if ids_b:
        flat_b, start_b[pairs], len_b[pairs] = _flat(ids_b)
    check_tokens(examples, len_a, np.where(pairs, len_b, 1))
    return TokenArrays(flat_a, start_a, len_a, pairs, flat_b, start_b, len_b)


def layout(t: TokenArrays, rows: np.ndarray, a_from: np.ndarray, keep_a: np.ndarray,
           keep_b: np.ndarray, tokenizer) -> FeatureArrays:
    """`[CLS] a [SEP] (b [SEP])` rows, end to end: row i holds example `rows[i]`'s text_a
    tokens `a_from[i]` to `a_from[i] + keep_a[i]` and its first `keep_b[i]` text_b tokens."""
    pairs = t.pairs[rows]
    lengths = keep_a + 2 + np.where(pairs, keep_b + 1, 0)
    row = np.cumsum(lengths) - lengths
    input_ids = np.empty(int(lengths.sum()), np.int32)
    segment_ids = np.zeros(len(input_ids), np.int8)
    input_ids[row] = tokenizer.cls_token_id
    input_ids[_spans(row + 1, keep_a)] = t.flat_a[_spans(t.start_a[rows] + a_from, keep_a)]
    input_ids[row + 1 + keep_a] = tokenizer.sep_token_id
    b_rows = np.flatnonzero(pairs)
    b_start = row[b_rows] + keep_a[b_rows] + 2
    b_from = t.start_b[rows[b_rows]]
    input_ids[_spans(b_start, keep_b[b_rows])] = t.flat_b[_spans(b_from, keep_b[b_rows])]
    input_ids[b_start + keep_b[b_rows]] = tokenizer.sep_token_id
    segment_ids[_spans(b_start, keep_b[b_rows] + 1)] = 1
    return FeatureArrays(input_ids, segment_ids, lengths)


def feature_arrays(examples, label_list: Optional[Sequence[str]], max_seq_length: int,
                   tokenizer) -> FeatureArrays:
    """Examples as flat arrays in BERT's layout, rows unpadded.

    The convention in BERT is:
    (a) For sequence pairs:
     tokens:   [CLS] is this jack ##son ##ville ? [SEP] no it is not . [SEP]
     type_ids: 0     0  0    0    0     0       0 0     1  1  1  1   1 1
    (b) For single sequences:
     tokens:   [CLS] the dog is hairy . [SEP]
     type_ids: 0     0   0   0  0     0 0

    "type_ids" (segment ids) tell the model which sequence a token belongs to;
    the first token is always [CLS], whose final state is the classifier's input.

    Pure; vectorized past the tokenizer.
    """
    t = token_arrays(examples, tokenizer)
    keep_a, keep_b = truncated_lengths(t.len_a, t.len_b, max_seq_length - 3)
    keep_a = np.where(t.pairs, keep_a, np.minimum(t.len_a, max_seq_length - 2))
    rows = np.arange(len(examples))
    arrays = layout(t, rows, np.zeros(len(examples), np.int64), keep_a, keep_b, tokenizer)
    return dataclasses.replace(arrays, label_ids=label_ids(examples, label_list))


def check_tokens(examples, len_a: np.ndarray, len_b: np.ndarray) -> None:
    """A text that tokenizes to nothing would train as a bare `[CLS] [SEP]`: an error naming
    the example (its guid: split-index for a task's rows). `len_b` is 1 where there is no b."""
    empty = np.flatnonzero((len_a == 0) | (len_b == 0))
    if len(empty):
        example = examples[int(empty[0])]
        name, text = (("text_a", example.text_a) if len_a[empty[0]] == 0
                      else ("text_b", example.text_b))
        raise InputError(f"example {example.guid}: {name} {text[:40]!r} has no tokens (only "
                         "characters the tokenizer drops: zero-width, control or combining "
                         "marks)")


def log_examples(examples, arrays: FeatureArrays, tokenizer, count: int = 5) -> None:
    """Google's "*** Example ***" log of the first rows (windows: a row per window)."""
    windows = 1 if arrays.windows is None else arrays.windows
    documents = np.repeat(np.arange(len(examples)), windows)[:count].tolist()
    for document, row in zip(documents, arrays.rows()):
        ids, segments = row.input_ids.tolist(), row.segment_ids.tolist()
        label = None if row.label is None else row.label.tolist()
        logger.info("*** Example ***\nguid: %s\ntokens: %s\ninput_ids: %s\nsegment_ids: %s\n"
                    "label: %s (id = %s)", examples[document].guid,
                    " ".join(tokenizer.convert_ids_to_tokens(ids)), " ".join(map(str, ids)),
                    " ".join(map(str, segments)), examples[document].label, label)


def convert_examples_to_features(examples, label_list: Optional[Sequence[str]],
                                 max_seq_length: int, tokenizer) -> list[InputFeatures]:
    """Converts examples to features; `label_list=None` means float (regression) labels.

    Multi-label examples (a tuple of names as label) get a multi-hot float list.
    Pure: no I/O. The cache builds the same arrays chunk by chunk (`feature_arrays`).
    """
    examples = list(examples)
    arrays = feature_arrays(examples, label_list, max_seq_length, tokenizer)
    log_examples(examples, arrays, tokenizer)
    return features_from_arrays(arrays)


def features_from_arrays(arrays: FeatureArrays) -> list[InputFeatures]:
    """A builder's flat arrays as one InputFeatures per row."""
    return [InputFeatures(row.input_ids.tolist(), [1] * len(row.input_ids),
                          row.segment_ids.tolist(), None if row.label is None
                          else row.label.tolist()) for row in arrays.rows()]


def collate(rows: Sequence[FeatureRow], pad_id: int = 0) -> dict:
    """Pads a batch of rows to its longest row (`padded`).

    Returns the model's keyword arguments (transformers' names): input_ids,
    attention_mask, token_type_ids, and labels (omitted when the batch has none).
    """
    def ends(field: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(row, field), np.int64) for row in rows])

    labels = None if rows[0].label is None else np.asarray([row.label for row in rows])
    return padded(ends("input_ids"), ends("segment_ids"),
                  np.array([len(row.input_ids) for row in rows], np.int64), labels, pad_id)


def padded(input_ids: np.ndarray, segment_ids: np.ndarray, lengths: np.ndarray,
           labels: Optional[np.ndarray] = None, pad_id: int = 0) -> dict:
    """`collate`'s batch from rows laid end to end (`lengths` tokens each): ids padded with
    `pad_id`, segment ids and mask with 0, labels as long (class ids) or float tensors."""
    keep = np.arange(int(lengths.max(initial=0))) < lengths[:, None]
    ids, types = np.full(keep.shape, pad_id, np.int64), np.zeros(keep.shape, np.int64)
    ids[keep], types[keep] = input_ids, segment_ids
    batch = {"input_ids": torch.from_numpy(ids),
             "attention_mask": torch.from_numpy(keep.astype(np.int64)),
             "token_type_ids": torch.from_numpy(types)}
    if labels is not None:
        integer = np.issubdtype(labels.dtype, np.integer)
        batch["labels"] = torch.from_numpy(labels).to(torch.long if integer else torch.float)
    return batch
