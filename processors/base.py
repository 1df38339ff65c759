"""Examples, the abstract DataProcessor and the shared file readers.

A processor is a small declarative class: which file holds each split, how many
columns a row has, whether a header comes first, which labels exist, which
metric judges it, and how one row maps to an `InputExample`. The base class
reads the files and checks every row: a bad row raises an `InputError` naming
`file:line`; no row is ever dropped silently.
"""

import abc
import codecs
import csv
import io
import math
import os
import re
from dataclasses import dataclass
from typing import ClassVar, Iterator, Optional, Sequence, Union

from core import MULTI_LABEL, REGRESSION, SINGLE_LABEL, InputError  # noqa: F401 (re-exported)

SPLITS = ("train", "dev", "test")

Label = Union[str, tuple[str, ...], None]


@dataclass(frozen=True)
class InputExample:
    """A single example: one text (or a pair) and its label (None for test).

    The label is a class name; for regression a number as written (e.g. "3.800");
    for multi-label a tuple of class names, possibly empty.
    """

    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Label = None


def _decode(path: str, data: bytes) -> str:
    """Decodes UTF-8 (a leading BOM is dropped); bad bytes raise with file:line."""
    body = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:  # not "utf-8-sig": its error offsets do not count the BOM
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = body[: e.start].count(b"\n") + 1
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte 0x{body[e.start]:02x})") from None
    nul = text.find("\0")
    if nul >= 0:
        raise InputError(f"{path}:{text.count(chr(10), 0, nul) + 1}: NUL byte in text")
    return text


def read_text(path: str) -> str:
    """A whole UTF-8 file; a missing, undecodable or empty file raises."""
    if not os.path.isfile(path):
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as f:
        text = _decode(path, f.read())
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    return text


def split_lines(text: str) -> Iterator[str]:
    """Lines as editors and `grep -n` count them: each ends at an LF (kept, CRLF too), a
    final newline ends the last line, and a lone CR is text within its line."""
    return io.StringIO(text, newline="\n")  # (newline="" would also end lines at a lone CR)


def _hide_lone_cr(path: str, text: str) -> tuple[str, Optional[str]]:
    """(text, stand-in): each CR that ends no line replaced by a character the text lacks,
    since the csv reader would end a row there; (text, None) when there is none."""
    body = text.rstrip("\r")
    if "\r" not in body.replace("\r\n", ""):
        return text, None
    if "\n" not in text:
        raise InputError(f"{path}:1: lines end in a lone CR (classic Mac line endings); "
                         "convert them to LF")
    stand_in = next(c for c in map(chr, range(0xE000, 0xF900)) if c not in text)
    return re.sub("\r(?!\n)", stand_in, body) + text[len(body):], stand_in


def read_rows(path: str, delimiter: str = "\t", quotechar: Optional[str] = None
              ) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, fields) for each row of a TSV/CSV file.

    Handles a UTF-8 BOM, CRLF line endings and a missing final newline. Rows end at LF
    only (see split_lines): a lone CR stays in its field, and every `file:line` is the
    line `grep -n` shows. `quotechar=None` reads quotes as plain characters, as GLUE's
    TSV files need. Blank lines are errors, since a blank row is never a valid example.
    """
    text, stand_in = _hide_lone_cr(path, read_text(path))
    quoting = csv.QUOTE_NONE if quotechar is None else csv.QUOTE_MINIMAL
    reader = csv.reader(split_lines(text), delimiter=delimiter, quotechar=quotechar,
                        quoting=quoting, strict=True)
    start = 1
    try:
        for row in reader:
            if not row or all(not field.strip() for field in row):
                raise InputError(f"{path}:{start}: blank line")
            yield start, [f.replace(stand_in, "\r") for f in row] if stand_in else row
            start = reader.line_num + 1
    except csv.Error as e:  # reported at the line where the bad row starts
        message = str(e)
        if "field limit" in message:
            message = f"a field longer than {csv.field_size_limit()} characters" + (
                f" (an unclosed {quotechar}?)" if quotechar else "")
        elif "unexpected end of data" in message:
            message = f"the file ends inside a quoted field (an unclosed {quotechar})"
        raise InputError(f"{path}:{start}: {message}") from None


class DataProcessor(abc.ABC):
    """Base class for a dataset: its files, columns, labels, metric and problem type.

    Subclasses set the class attributes below and implement `get_labels()` and
    `parse_row()`. The `get_*_examples(data_dir)` methods are Google's API.
    Without `num_columns`, a split with a header must have its header's width.
    """

    file_names: ClassVar[dict[str, str]] = {s: f"{s}.tsv" for s in SPLITS}
    num_columns: ClassVar[dict[str, int]] = {}
    headers: ClassVar[dict[str, Sequence[str]]] = {}
    delimiter: ClassVar[str] = "\t"
    quotechar: ClassVar[Optional[str]] = None
    metric: ClassVar[str] = "accuracy"
    problem_type: ClassVar[str] = SINGLE_LABEL
    label_separator: ClassVar[str] = "|"  # splits a multi-label row's label field
    label_range: ClassVar[Optional[tuple[float, float]]] = None  # regression: the scores' scale
    task_name: ClassVar[str] = ""  # set by @register_processor

    @abc.abstractmethod
    def get_labels(self) -> Optional[list[str]]:
        """The label names, whose order fixes the label ids; None for regression."""

    @abc.abstractmethod
    def parse_row(self, row: list[str], split: str
                  ) -> Optional[tuple[str, Optional[str], Label]]:
        """Maps one row's fields to (text_a, text_b, label); label None for test.

        None leaves the row out on purpose (XNLI's other languages); a row that
        does not fit must raise instead, so that nothing is dropped by accident.
        """

    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "test")

    def get_file_path(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, self.file_names[split])

    def settings(self) -> dict:
        """Options outside the class that shape the examples; part of the cache key."""
        return {}

    def describe_labels(self) -> str:
        """The labels in words, for `--task_name=help`."""
        labels = self.get_labels()
        return "one score (regression)" if labels is None else ", ".join(labels)

    def split_labels(self, field: str) -> tuple[str, ...]:
        """A multi-label field's names: "a|b" -> ("a", "b"); an empty field has none."""
        return tuple(n.strip() for n in field.split(self.label_separator)) if field.strip() else ()

    def read_split(self, path: str, split: str) -> Iterator[tuple[int, list]]:
        """(line number, fields) of each data row, after checking the split's header."""
        rows = read_rows(path, self.delimiter, self.quotechar)
        header = self.headers.get(split)
        if header is not None:
            self._check_header(path, next(rows, (1, []))[1], header)
        return rows

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        """Reads and checks every row of one split's file."""
        path = self.get_file_path(data_dir, split)
        rows = self.read_split(path, split)
        labels = self.get_labels()
        known = None if labels is None else set(labels)
        header = self.headers.get(split)
        width = self.num_columns.get(split, len(header) if header else None)
        examples = []
        for line, row in rows:
            where = f"{path}:{line}"
            try:
                if width is not None and len(row) != width:
                    raise InputError(f"{where}: expected {width} columns, found {len(row)}" + (
                        " (test files have no label column)"
                        if split == "test" and len(row) == width + 1 else ""))
                parsed = self.parse_row(row, split)
                if parsed is not None:
                    examples.append(self._make_example(where, parsed, split, len(examples),
                                                       known))
            except InputError as e:
                raise InputError(f"{e}{self._header_hint(row, split, line)}") from None
        if not examples:
            raise InputError(f"{path}: no examples")
        return examples

    @staticmethod
    def _check_header(path: str, row: list[str], expected: Sequence[str]) -> None:
        if [field.strip() for field in row] != list(expected):
            raise InputError(f"{path}:1: expected header {chr(9).join(expected)!r}, "
                             f"found {chr(9).join(row)[:80]!r}")

    def _make_example(self, where: str, parsed: tuple, split: str, index: int,
                      known: Optional[set]) -> InputExample:
        text_a, text_b, label = parsed
        if not text_a.strip() or (text_b is not None and not text_b.strip()):
            raise InputError(f"{where}: empty text")
        label = None if split == "test" else self._check_label(where, label, known)
        return InputExample(guid=f"{split}-{index}", text_a=text_a, text_b=text_b, label=label)

    def _check_label(self, where: str, label: Label, known: Optional[set]) -> Label:
        """The label as the example keeps it; a label that does not fit raises."""
        if label is None:
            raise InputError(f"{where}: no label")
        if self.problem_type == REGRESSION:
            try:
                number = float(label)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise InputError(f"{where}: label {label!r} is not a finite number")
            low, high = self.label_range or (-math.inf, math.inf)
            if not low <= number <= high:
                raise InputError(f"{where}: score {label!r} is outside the task's range "
                                 f"{low:g} to {high:g}")
            return label
        names = (label,)
        if self.problem_type == MULTI_LABEL:
            names = label if isinstance(label, tuple) else self.split_labels(label)
            if "" in names:
                raise InputError(f"{where}: empty label name in {label!r} (labels are "
                                 f"{self.label_separator!r}-separated)")
        for i, name in enumerate(names):
            if name not in known:
                expected = ", ".join(self.get_labels())
                raise InputError(f"{where}: unknown label {name!r}; " + (
                    f"expected one of {expected}" if expected else
                    "the task has no labels (get_labels() returned none)"))
            if name in names[:i]:
                raise InputError(f"{where}: label {name!r} given twice")
        return names if self.problem_type == MULTI_LABEL else label

    def _header_hint(self, row: list[str], split: str, line: int) -> str:
        """A hint for a bad row that may be a header: a labelled file's first line without
        a label where no header belongs, or a copy of the header further down."""
        header, labels = self.headers.get(split), self.get_labels()
        if (header is None and line == 1 and split != "test" and labels
                and not set(labels) & {field.strip() for field in row}):
            return f" (is line 1 a header? {split} files have none)"
        if header is not None and [field.strip() for field in row] == list(header):
            return " (a repeated header row?)"
        return ""
