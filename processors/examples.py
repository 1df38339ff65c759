"""The one seam between processors and the pipeline: a split's checked examples.

The pipeline (checks, features cache, resume signature, extract_features) gets
examples only through `split_examples`, which takes the processor's stream
(`DataProcessor.stream_examples`, a TableProcessor's file) or else calls Google's
`get_{split}_examples(data_dir)`: this module knows only the base class. Every
example is checked however it was made:
an `InputExample`, a non-empty text, a known label (a finite number for
regression); test labels are dropped, since predict ignores them. A processor's
own exception becomes one line naming the processor and the user's file:line.
"""

import dataclasses
import inspect
import itertools
import math
import os
import traceback
from typing import Iterable, Iterator, Optional

from .base import MULTI_LABEL, REGRESSION, SINGLE_LABEL, DataProcessor, InputError, InputExample
from .cells import check_label_name, control_character
from .digest import Chunk, chunks, columns


def known_labels(processor: DataProcessor) -> Optional[frozenset]:
    """The label names as a set; None for regression. An empty list is an error, and so
    is a name that would break the TSV files it is written to."""
    labels = processor.get_labels()
    if labels is None:
        return None
    name = type(processor).__name__
    if not labels:
        raise InputError(f"{name}.get_labels() returned no labels")
    separator = processor.label_separator if processor.problem_type == MULTI_LABEL else None
    if separator is not None and (not separator or control_character(separator)):
        raise InputError(f"{name}.label_separator is {separator!r}; a multi-label task's "
                         "separator must be printable (predictions.tsv joins names with it)")
    for label in labels:
        problem = isinstance(label, str) and check_label_name(label, separator)
        if problem:
            raise InputError(f"{name}.get_labels(): {problem}")
    return frozenset(labels)


def _check_label(processor: DataProcessor, label, known: Optional[frozenset]):
    """The label as the example keeps it; a label that does not fit raises."""
    if label is None:
        raise InputError("no label")
    if processor.problem_type == REGRESSION:
        try:
            number = float(label)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise InputError(f"label {label!r} is not a finite number")
        low, high = processor.label_range or (-math.inf, math.inf)
        if not low <= number <= high:
            raise InputError(f"score {label!r} is outside the task's range {low:g} to {high:g}")
        return label
    names = (label,)
    if processor.problem_type == MULTI_LABEL:
        names = label if isinstance(label, tuple) else processor.split_labels(label)
        if "" in names:
            raise InputError(f"empty label name in {label!r} (labels are "
                             f"{processor.label_separator!r}-separated)")
    for i, name in enumerate(names):
        if name not in known:
            raise InputError(f"unknown label {name!r}; expected one of "
                             f"{', '.join(processor.get_labels())}")
        if name in names[:i]:
            raise InputError(f"label {name!r} given twice")
    return names if processor.problem_type == MULTI_LABEL else label


def _has_texts(example: InputExample) -> bool:
    """Whether text_a, and text_b unless None, are strings with something in them."""
    a, b = example.text_a, example.text_b
    return type(a) is str and not a.isspace() and a != "" and (
        b is None or type(b) is str and not b.isspace() and b != "")


def check_example(processor: DataProcessor, split: str, example, known: Optional[frozenset]
                  ) -> InputExample:
    """The example as the pipeline uses it (test label dropped); raises what is wrong
    (callers add where the example came from).

    The common case (two texts or one, a known single label) takes the first return.
    """
    if type(example) is InputExample and _has_texts(example):
        label = example.label
        if split == "test":
            return example if label is None else dataclasses.replace(example, label=None)
        if processor.problem_type == SINGLE_LABEL and type(label) is str and label in known:
            return example
    if not isinstance(example, InputExample):
        raise InputError(f"expected an InputExample, got {type(example).__name__}")
    for name in ("text_a", "text_b"):
        text = getattr(example, name)
        if text is None and name == "text_b":
            continue
        if not isinstance(text, str):
            raise InputError(f"{name} is {type(text).__name__}, not text")
        if not text.strip():
            raise InputError("empty text")
    label = None if split == "test" else _check_label(processor, example.label, known)
    return example if label is example.label else dataclasses.replace(example, label=label)


def _check_implemented(processor: DataProcessor, split: str) -> None:
    """Raises a one-line error when the processor has no way to make this split's examples."""
    if not processor.implements(split):
        cls, method = type(processor), f"get_{split}_examples"
        raise InputError(f"{cls.__name__} (--task_name={processor.task_name}) implements "
                         f"neither {method}(data_dir) nor parse_row(row, split); implement "
                         f"{method} (Google's DataProcessor) or subclass TableProcessor and "
                         "implement parse_row")


def _user_location(error: BaseException, cls: type) -> str:
    """' (at file:line)' of the innermost frame in the processor's own source file."""
    try:
        source = os.path.abspath(inspect.getsourcefile(cls) or "")
    except TypeError:
        source = ""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if os.path.abspath(f.filename) == source] or frames[-1:]
    return f" (at {mine[-1].filename}:{mine[-1].lineno})" if mine else ""


def user_error(processor: DataProcessor, method: str, e: Exception) -> InputError:
    """A processor's own exception as one line, with the user's file:line."""
    message = f"{type(e).__name__}: {e}".splitlines()[0]
    return InputError(f"{type(processor).__name__}.{method}: {message}"
                      f"{_user_location(e, type(processor))}")


def _call(processor: DataProcessor, split: str, data_dir: str) -> Iterable:
    """The processor's own `get_{split}_examples(data_dir)`, its errors made one line."""
    method = f"get_{split}_examples"
    try:
        return getattr(processor, method)(data_dir)
    except InputError:
        raise
    except Exception as e:
        raise user_error(processor, method, e) from None


def _own_stream(processor: DataProcessor, stream: Iterator[InputExample]
                ) -> Iterator[InputExample]:
    """A processor's `stream_examples`, its exceptions made one line."""
    try:
        yield from stream
    except InputError:
        raise
    except Exception as e:
        raise user_error(processor, "stream_examples", e) from None


def _plain_texts(column: tuple) -> bool:
    """Whether every field is a str with something in it (check_example's common case)."""
    return (set(map(type, column)) == {str} and "" not in column
            and not any(map(str.isspace, column)))


def _plain_chunk(processor: DataProcessor, split: str, chunk: list, known: Optional[frozenset]
                 ) -> Optional[list]:
    """The chunk as the pipeline uses it when every example is plainly fine (InputExamples
    with texts, a known single label; test labels dropped), checked a column at a time in
    a few C calls (a `Chunk` where unchanged: the digest reads its columns); None: some
    example needs `check_example`'s closer look."""
    if set(map(type, chunk)) != {InputExample}:
        return None
    fields = columns(chunk)
    _, texts_a, texts_b, labels = fields
    if not _plain_texts(texts_a) or not (texts_b.count(None) == len(texts_b)
                                         or _plain_texts(texts_b)):
        return None
    if split == "test":
        return Chunk(chunk, fields) if labels.count(None) == len(labels) else [
            e if e.label is None else InputExample(e.guid, e.text_a, e.text_b) for e in chunk]
    if processor.problem_type != SINGLE_LABEL or None in labels:
        return None
    try:
        return Chunk(chunk, fields) if set(labels) <= known else None
    except TypeError:  # an unhashable label
        return None


def _each_checked(processor: DataProcessor, split: str, chunk: list,
                  known: Optional[frozenset], name: str, before: int) -> list:
    """The chunk checked example by example; an error names the example (`before` came
    ahead of the chunk)."""
    checked = []
    for count, example in enumerate(chunk, before + 1):
        try:
            checked.append(check_example(processor, split, example, known))
        except InputError as e:
            guid = getattr(example, "guid", None)
            raise InputError(f"{name}: example {count} (guid {guid!r}): {e}") from None
    return checked


def _checked_list(processor: DataProcessor, data_dir: str, split: str) -> Iterator[list]:
    """Google's `get_{split}_examples(data_dir)` in checked chunks: a chunk at once when
    every example in it is plainly fine, else one by one."""
    method = f"get_{split}_examples"
    known = None if split == "test" else known_labels(processor)
    examples = _call(processor, split, data_dir)
    name = f"{type(processor).__name__}.{method}"
    count = 0
    try:
        for chunk in chunks(examples):
            checked = _plain_chunk(processor, split, chunk, known)
            yield checked if checked is not None else _each_checked(
                processor, split, chunk, known, name, count)
            count += len(chunk)
    except TypeError as e:
        if "not iterable" not in str(e):
            raise
        raise InputError(f"{name}: returned {type(examples).__name__}, not a list of "
                         "InputExamples") from None
    if not count:
        raise InputError(f"{name}: no examples (data_dir {data_dir})")


def open_split(processor: DataProcessor, data_dir: str, split: str
               ) -> tuple[Iterator[list], bool]:
    """(the split's checked examples in chunks, lazily; whether they stream from the
    processor's own reader, `stream_examples`, rather than come from a list)."""
    _check_implemented(processor, split)
    stream = processor.stream_examples(data_dir, split)
    if stream is not None:
        return chunks(_own_stream(processor, stream)), True
    return _checked_list(processor, data_dir, split), False


def split_examples(processor: DataProcessor, data_dir: str, split: str
                   ) -> Iterator[InputExample]:
    """Every checked example of one split, in order.

    A processor with a stream (`stream_examples`: a TableProcessor that keeps its own
    `get_{split}_examples`) streams its file (constant memory); any other
    processor's list is checked as it is walked.
    """
    _check_implemented(processor, split)
    stream = processor.stream_examples(data_dir, split)
    if stream is not None:  # (example by example: nothing read ahead)
        yield from _own_stream(processor, stream)
    else:
        yield from itertools.chain.from_iterable(_checked_list(processor, data_dir, split))
