"""Long documents as overlapping windows (`--long_text=windows`), and back to documents.

A text longer than the room `max_seq_length` leaves becomes windows `doc_stride`
tokens apart, as SQuAD's run scripts cut a context: each window has BERT's full
`[CLS] a [SEP] (b [SEP])` layout; for a pair, text_b stays whole in every window
and text_a is windowed. The last window holds what is left (it ends at the text's
end). A window carries its document's label; a document's logits are the mean (or
max) of its windows' logits. `doc_offsets[d]:doc_offsets[d + 1]` are document d's
windows, which are consecutive rows.

Light (numpy only): run_classifier.py reads the flags' choices from here before
its checks, which run before torch is imported (`features` imports it).
"""

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from modeling.errors import InputError

LONG_TEXT = ("truncate", "windows")
WINDOW_POOLINGS = ("mean", "max")


@dataclass(frozen=True)
class Windows:
    """How long texts become windows (`doc_stride`), and how windows' logits pool."""

    doc_stride: int
    pooling: str = "mean"

    def key(self) -> dict:
        """What shapes the features (the cache key and a checkpoint's signature add it)."""
        return {"long_text": "windows", "doc_stride": self.doc_stride}


def windows_key(windows: Optional[Windows]) -> dict:
    """`windows.key()`, or nothing for truncation (keys made before windows stay valid)."""
    return windows.key() if windows else {}


def default_stride(max_seq_length: int) -> int:
    """Half a single text's room: every token is in two windows."""
    return max(1, (max_seq_length - 2) // 2)


def long_text_windows(long_text: str, max_seq_length: int, doc_stride: Optional[int] = None,
                      pooling: Optional[str] = None) -> Optional[Windows]:
    """How `long_text` treats long texts: Windows (an unset stride or pooling at its
    default), or None (truncate)."""
    if long_text != "windows":
        return None
    return Windows(doc_stride or default_stride(max_seq_length), pooling or "mean")


def window_spans(len_a: np.ndarray, room: np.ndarray, doc_stride: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(document, first token, token count) of every window, and windows per document.

    A text that fits its room is one window; a longer one has windows starting every
    `stride` tokens (`doc_stride`, at most the room: no token is skipped) until one
    reaches its end.
    """
    stride = np.minimum(doc_stride, room)
    count = np.where(len_a > room, 1 - (room - len_a) // stride, 1)
    document = np.repeat(np.arange(len(len_a)), count)
    within = np.arange(len(document)) - np.repeat(np.cumsum(count) - count, count)
    start = within * stride[document]
    return document, start, np.minimum(room[document], len_a[document] - start), count


def check_room(examples, room: np.ndarray, len_b: np.ndarray, max_seq_length: int) -> None:
    """text_b is whole in every window: it must leave room for one token of text_a."""
    tight = np.flatnonzero(room < 1)
    if len(tight):
        i = int(tight[0])
        raise InputError(f"example {examples[i].guid}: text_b has {len_b[i]} tokens, too long "
                         f"for --max_seq_length={max_seq_length} with --long_text=windows "
                         "(text_b stays whole in every window, with [CLS], two [SEP] and at "
                         "least one token of text_a)")


def window_arrays(examples, label_list: Optional[Sequence[str]], max_seq_length: int,
                  tokenizer, doc_stride: int):
    """`feature_arrays` with windows: a row per window, plus `windows` (rows per example)
    and `doc_lengths` (each example's length untruncated, special tokens included).

    Labels repeat per window. Pure; vectorized past the tokenizer. (A `FeatureArrays`.)
    """
    from .features import label_ids, layout, token_arrays  # (imports torch)
    t = token_arrays(examples, tokenizer)
    room = max_seq_length - 2 - np.where(t.pairs, t.len_b + 1, 0)
    check_room(examples, room, t.len_b, max_seq_length)
    document, start, length, count = window_spans(t.len_a, room, doc_stride)
    arrays = layout(t, document, start, length, t.len_b[document], tokenizer)
    labels = label_ids(examples, label_list)
    return replace(arrays, windows=count,
                   doc_lengths=t.len_a + 2 + np.where(t.pairs, t.len_b + 1, 0),
                   label_ids=None if labels is None else labels[document])


def pool_windows(logits: np.ndarray, doc_offsets: Optional[np.ndarray], pooling: str
                 ) -> np.ndarray:
    """Per-document rows: the mean (or max) of each document's window rows, in order."""
    if doc_offsets is None or len(doc_offsets) < 2:
        return logits
    starts = np.asarray(doc_offsets[:-1], np.int64)
    if pooling == "max":
        return np.maximum.reduceat(logits, starts, axis=0)
    counts = np.diff(np.asarray(doc_offsets, np.int64)).astype(logits.dtype)
    return np.add.reduceat(logits, starts, axis=0) / counts.reshape(-1, *[1] * (logits.ndim - 1))


def document_labels(dataset) -> Optional[np.ndarray]:
    """The labels of a dataset's documents (its rows' labels without windows)."""
    offsets = getattr(dataset, "doc_offsets", None)
    if offsets is None or dataset.labels is None:
        return dataset.labels
    return np.asarray(dataset.labels)[np.asarray(offsets[:-1], np.int64)]


def describe(split: str, dataset, max_seq_length: int) -> str:
    """The log line of a windowed split: documents, windows, longest, share truncate cuts."""
    lengths = np.asarray(dataset.doc_lengths)
    documents = len(lengths)
    cut = float((lengths > max_seq_length).mean()) if documents else 0.0
    return (f"{split}: {documents} documents, {len(dataset)} windows "
            f"({len(dataset) / max(1, documents):.2f} per document), longest document "
            f"{int(lengths.max()) if documents else 0} tokens, {cut:.1%} longer than "
            f"--max_seq_length={max_seq_length} (--long_text=truncate would cut them)")
