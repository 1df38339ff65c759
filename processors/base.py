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
import os
from dataclasses import dataclass
from typing import ClassVar, Iterator, Optional, Sequence

SPLITS = ("train", "dev", "test")


class InputError(ValueError):
    """A user error (bad flag, file or row); its message is one line."""


@dataclass(frozen=True)
class InputExample:
    """A single example: one text (or a pair) and its label (None for test)."""

    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Optional[str] = None


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


def read_rows(path: str, delimiter: str = "\t", quotechar: Optional[str] = None
              ) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, fields) for each row of a TSV/CSV file.

    Handles a UTF-8 BOM, CRLF line endings and a missing final newline.
    `quotechar=None` reads quotes as plain characters, as GLUE's TSV files need.
    Blank lines are errors, since a blank row is never a valid example.
    """
    if not os.path.isfile(path):
        raise InputError(f"{path}: file not found")
    with open(path, "rb") as f:
        text = _decode(path, f.read())
    if not text.strip():
        raise InputError(f"{path}: file is empty")
    lines = io.StringIO(text, newline="")  # only \n, \r, \r\n end a row, as in files
    quoting = csv.QUOTE_NONE if quotechar is None else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quotechar=quotechar, quoting=quoting,
                        strict=True)
    start = 1
    try:
        for row in reader:
            if not row or all(not field.strip() for field in row):
                raise InputError(f"{path}:{start}: blank line")
            yield start, row
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
    """Base class for a dataset: its files, columns, labels and metric.

    Subclasses set the class attributes below and implement `get_labels()` and
    `parse_row()`. The `get_*_examples(data_dir)` methods are Google's API.
    """

    file_names: ClassVar[dict[str, str]] = {s: f"{s}.tsv" for s in SPLITS}
    num_columns: ClassVar[dict[str, int]] = {}
    headers: ClassVar[dict[str, Sequence[str]]] = {}
    delimiter: ClassVar[str] = "\t"
    quotechar: ClassVar[Optional[str]] = None
    metric: ClassVar[str] = "accuracy"
    task_name: ClassVar[str] = ""  # set by @register_processor

    @abc.abstractmethod
    def get_labels(self) -> list[str]:
        """The label names; their order fixes the label ids."""

    @abc.abstractmethod
    def parse_row(self, row: list[str], split: str
                  ) -> tuple[str, Optional[str], Optional[str]]:
        """Maps one row's fields to (text_a, text_b, label); label None for test."""

    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "test")

    def get_file_path(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, self.file_names[split])

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        """Reads and checks every row of one split's file."""
        path = self.get_file_path(data_dir, split)
        rows = read_rows(path, self.delimiter, self.quotechar)
        header = self.headers.get(split)
        if header is not None:
            self._check_header(path, next(rows, (1, []))[1], header)
        labels = set(self.get_labels())
        examples = []
        for line, row in rows:
            examples.append(self._make_example(path, line, row, split, len(examples), labels))
        if not examples:
            raise InputError(f"{path}: no examples")
        return examples

    @staticmethod
    def _check_header(path: str, row: list[str], expected: Sequence[str]) -> None:
        if [field.strip() for field in row] != list(expected):
            raise InputError(f"{path}:1: expected header {chr(9).join(expected)!r}, "
                             f"found {chr(9).join(row)[:80]!r}")

    def _make_example(self, path: str, line: int, row: list[str], split: str, index: int,
                      labels: set) -> InputExample:
        where = f"{path}:{line}"
        expected = self.num_columns.get(split)
        if expected is not None and len(row) != expected:
            hint = " (test files have no label column)" if (
                split == "test" and len(row) == expected + 1) else ""
            raise InputError(f"{where}: expected {expected} columns, found {len(row)}{hint}")
        text_a, text_b, label = self.parse_row(row, split)
        if not text_a.strip() or (text_b is not None and not text_b.strip()):
            raise InputError(f"{where}: empty text")
        if split == "test":
            label = None
        elif label not in labels:
            raise InputError(f"{where}: unknown label {label!r}; expected one of "
                             f"{', '.join(self.get_labels())}{self._header_hint(row, split, line)}")
        return InputExample(guid=f"{split}-{index}", text_a=text_a, text_b=text_b, label=label)

    def _header_hint(self, row: list[str], split: str, line: int) -> str:
        """A hint for an unknown label that is really a header's column name."""
        header = self.headers.get(split)
        if header is None and line == 1:
            return f" (is line 1 a header? {split} files have none)"
        if header is not None and [field.strip() for field in row] == list(header):
            return " (a repeated header row?)"
        return ""
