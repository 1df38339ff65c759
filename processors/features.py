"""InputExamples -> InputFeatures: BERT's input layout, unpadded.

Features keep each row at its own length; `collate` pads a batch to its
longest row, so no work is spent on padding that a batch does not need.
"""

import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch

from core import InputError

logger = logging.getLogger(__name__)

Label = Union[int, float, list[float], None]  # class id, score, multi-hot


@dataclass(frozen=True)
class InputFeatures:
    """One example as ids. Unpadded: `input_mask` is all ones until `collate` pads."""

    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    label_id: Label


def _truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Truncates a pair in place to `max_length`, one token at a time from the longer.

    This keeps as much of each side as possible: a long text loses its tail
    before a short one loses anything (Google's rule).
    """
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def _tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Tokenizes many texts in one batched call; no special tokens."""
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def _label_id(label, label_map: Optional[dict]) -> Label:
    """A class id; a float for regression (no label map); a 0/1 list for a tuple of names."""
    if label is None:
        return None
    if label_map is None:
        return float(label)
    if isinstance(label, tuple):
        multi_hot = [0.0] * len(label_map)
        for name in label:
            multi_hot[label_map[name]] = 1.0
        return multi_hot
    return label_map[label]


def build_features(ids_a: list[int], ids_b: Optional[list[int]], label_id: Label,
                   max_seq_length: int, cls_id: int, sep_id: int) -> InputFeatures:
    """Lays out one example in BERT's format.

    The convention in BERT is:
    (a) For sequence pairs:
     tokens:   [CLS] is this jack ##son ##ville ? [SEP] no it is not . [SEP]
     type_ids: 0     0  0    0    0     0       0 0     1  1  1  1   1 1
    (b) For single sequences:
     tokens:   [CLS] the dog is hairy . [SEP]
     type_ids: 0     0   0   0  0     0 0

    "type_ids" (segment ids) tell the model which sequence a token belongs to;
    the first token is always [CLS], whose final state is the classifier's input.
    """
    ids_a = list(ids_a)
    if ids_b is not None:
        ids_b = list(ids_b)
        _truncate_seq_pair(ids_a, ids_b, max_seq_length - 3)
    else:
        del ids_a[max_seq_length - 2:]
    input_ids = [cls_id] + ids_a + [sep_id]
    segment_ids = [0] * len(input_ids)
    if ids_b is not None:
        input_ids += ids_b + [sep_id]
        segment_ids += [1] * (len(ids_b) + 1)
    return InputFeatures(input_ids, [1] * len(input_ids), segment_ids, label_id)


def check_tokens(examples, ids_a: list[list[int]], ids_b: dict[int, list[int]]) -> None:
    """A text that tokenizes to nothing would train as a bare `[CLS] [SEP]`: an error naming
    the example (its guid: split-index for a task's rows)."""
    if all(ids_a) and all(ids_b.values()):
        return
    for i, example in enumerate(examples):
        for name, text, ids in (("text_a", example.text_a, ids_a[i]),
                                ("text_b", example.text_b, ids_b.get(i))):
            if text is not None and not ids:
                raise InputError(f"example {example.guid}: {name} {text[:40]!r} has no tokens "
                                 "(only characters the tokenizer drops: zero-width, control "
                                 "or combining marks)")


def convert_examples_to_features(examples, label_list: Optional[Sequence[str]],
                                 max_seq_length: int, tokenizer) -> list[InputFeatures]:
    """Converts examples to features; `label_list=None` means float (regression) labels.

    Multi-label examples (a tuple of names as label) get a multi-hot float list.

    Pure: no I/O. Tokenizes all texts in batched calls to the fast tokenizer.
    """
    label_map = None if label_list is None else {label: i for i, label in enumerate(label_list)}
    all_a = _tokenize(tokenizer, [e.text_a for e in examples])
    pairs = [i for i, e in enumerate(examples) if e.text_b is not None]
    all_b = dict(zip(pairs, _tokenize(tokenizer, [examples[i].text_b for i in pairs])))
    check_tokens(examples, all_a, all_b)
    features = []
    for i, example in enumerate(examples):
        feature = build_features(all_a[i], all_b.get(i), _label_id(example.label, label_map),
                                 max_seq_length, tokenizer.cls_token_id, tokenizer.sep_token_id)
        if i < 5:
            logger.info("*** Example ***\nguid: %s\ntokens: %s\ninput_ids: %s\n"
                        "segment_ids: %s\nlabel: %s (id = %s)", example.guid,
                        " ".join(tokenizer.convert_ids_to_tokens(feature.input_ids)),
                        " ".join(map(str, feature.input_ids)),
                        " ".join(map(str, feature.segment_ids)), example.label,
                        feature.label_id)
        features.append(feature)
    return features


def collate(rows: Sequence[tuple[list[int], list[int], Label]], pad_id: int = 0) -> dict:
    """Pads a batch of (input_ids, segment_ids, label) to its longest row.

    Returns transformers' argument names: input_ids, attention_mask,
    token_type_ids, and labels (omitted when the batch has none).
    """
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    segment_ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, segments, _) in enumerate(rows):
        input_ids[i, :len(ids)] = torch.as_tensor(ids)
        segment_ids[i, :len(ids)] = torch.as_tensor(segments)
        mask[i, :len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": segment_ids}
    if rows[0][2] is not None:
        dtype = torch.long if isinstance(rows[0][2], int) else torch.float
        batch["labels"] = torch.tensor([label for _, _, label in rows], dtype=dtype)
    return batch
