"""Processors for your own files: named columns in CSV, TSV or JSON Lines.

`generic` reads single-label data; `multilabel_csv` reads a set of labels per
row. Their options are a `TableOptions`, which run_classifier.py builds from its
flags (`--data_format`, `--text_a_column`, `--labels`, ...) by keyword.
"""

import csv
import json
import os
from dataclasses import asdict, dataclass
from typing import Callable, Iterator, Optional, Sequence

from .base import MULTI_LABEL, SPLITS, InputError
from .readers import read_lines, read_rows
from .cells import check_label_name
from .registry import register_processor
from .table import TableProcessor

FORMATS = {"csv": (",", '"'), "tsv": ("\t", None), "jsonl": (None, None)}
HEADER_NAMES = {"text", "text_a", "text_b", "label", "labels"}  # the columns' default names
# A JSON Lines line longer than this is refused before it is parsed: 64 fields at the CSV
# reader's limit (131,072 characters), room for escapes (`\u00e9`) and unused keys.
MAX_JSONL_LINE = 64 * 131_072


@dataclass(frozen=True)
class TableOptions:
    """The options of the processors for users' files; None: not given (the default)."""

    data_format: Optional[str] = None  # csv (default), tsv or jsonl
    text_a_column: Optional[str] = None  # header name, JSON key or 0-based number
    text_b_column: Optional[str] = None
    label_column: Optional[str] = None
    labels: Optional[Sequence[str]] = None  # their order fixes the label ids
    has_header: Optional[bool] = None


@register_processor("generic")
class GenericProcessor(TableProcessor):
    """`{train,dev,test}.{csv,tsv,jsonl}` rows with named text and label columns.

    Columns are header names (keys in JSON Lines), or 0-based numbers for files
    without a header. CSV fields may be quoted; TSV fields are taken as written.
    The labels are `labels`, or else every label in the train file, sorted, so
    the same file always gives the same label ids. Test files need no label.
    Longer than a GLUE processor: it reads three formats and checks every option.
    """

    default_label_column = "label"
    options_type = TableOptions

    @classmethod
    def from_options(cls, options: Optional[TableOptions],
                     data_dir: Optional[str] = None) -> "GenericProcessor":
        """A processor with `options` (None: every default); `data_dir` holds the train file
        the labels are read from when `options.labels` is not given."""
        given = asdict(options or TableOptions())
        return cls(data_dir, **{k: v for k, v in given.items() if v is not None})

    def __init__(self, data_dir: Optional[str] = None, data_format: str = "csv",
                 text_a_column: str = "text", text_b_column: Optional[str] = None,
                 label_column: Optional[str] = None, labels: Optional[Sequence[str]] = None,
                 has_header: bool = True):
        if data_format not in FORMATS:
            raise InputError(f"--data_format={data_format}: expected one of {', '.join(FORMATS)}")
        self.data_dir, self.data_format, self.has_header = data_dir, data_format, has_header
        self.delimiter, self.quotechar = FORMATS[data_format]
        self.file_names = {split: f"{split}.{data_format}" for split in SPLITS}
        self.columns = {"text_a_column": text_a_column, "text_b_column": text_b_column,
                        "label_column": label_column or self.default_label_column}
        if data_format == "jsonl" and not has_header:
            raise InputError("--nohas_header: JSON Lines rows name their fields; drop the flag")
        for flag, column in self.columns.items():
            if column is not None and not has_header and not column.isdigit():
                raise InputError(f"--{flag}={column}: without a header, columns are numbers "
                                 "(0 is the first)")
        for label in labels or ():
            problem = check_label_name(label, self._separator())
            if problem:
                raise InputError(f"--labels: {problem}")
        self.labels = labels and self._checked(list(labels), "--labels=" + ",".join(labels))

    def _separator(self) -> Optional[str]:
        """The separator a label name must not hold: a multi-label row's."""
        return self.label_separator if self.problem_type == MULTI_LABEL else None

    def settings(self):
        return {"data_format": self.data_format, "has_header": self.has_header, **self.columns}

    def describe_labels(self):
        return "--labels, or else those in the train file (sorted)"

    def get_labels(self):
        if self.labels is None:
            self.labels = self._infer_labels()
        return self.labels

    def parse_row(self, row, split):
        return row[0], row[1], row[2]

    def read_split(self, path: str, split: str) -> Iterator[tuple[int, list]]:
        """(line, [text_a, text_b, label]) for each row; label None in test files."""
        if self.data_format == "jsonl":
            return self._read_jsonl(path, split)
        return self._read_table(path, split)

    def _checked(self, labels: list[str], source: str) -> list[str]:
        least = 1 if self.problem_type == MULTI_LABEL else 2
        if len(labels) < least or len(set(labels)) != len(labels) or "" in labels:
            raise InputError(f"{source}: needs at least {least} distinct, non-empty labels, "
                             f"found {', '.join(map(repr, labels)) or 'none'}")
        return labels

    def _infer_labels(self) -> list[str]:
        path = self.get_file_path(self.data_dir or "", "train")
        if not os.path.lexists(path):  # (a folder or FIFO there: read_split names it)
            raise InputError(f"--labels: not given, and there is no {path} to read them from")
        names = set()
        for line, (_, _, label) in self.read_split(path, "train"):
            if self.problem_type == MULTI_LABEL:
                row = label if isinstance(label, tuple) else self.split_labels(label)
                if "" in row:
                    raise InputError(f"{path}:{line}: empty label name in {label!r} (labels "
                                     f"are {self.label_separator!r}-separated)")
            else:
                row = (label,) if label else ()
            for name in set(row) - names:
                problem = check_label_name(name, self._separator())
                if problem:
                    raise InputError(f"{path}:{line}: {problem}")
                names.add(name)
        return self._checked(sorted(names), f"{path}: labels")

    def _read_table(self, path: str, split: str) -> Iterator[tuple[int, list]]:
        rows = read_rows(path, self.delimiter, self.quotechar)
        width = None
        if self.has_header:
            header = [name.strip() for name in next(rows)[1]]
            width, index = len(header), {name: i for i, name in enumerate(header)}
            for flag, column in self.columns.items():
                if column is not None and column not in index and not (
                        split == "test" and flag == "label_column"):
                    raise InputError(f"{path}:1: no column {column!r} (--{flag}) in the "
                                     f"header {', '.join(header)}")
        for line, row in rows:
            if line == 1 and not self.has_header:
                self._check_not_header(path, row, split)
            width = width or len(row)  # without a header, the first row sets the width
            if len(row) != width:
                raise InputError(f"{path}:{line}: expected {width} columns, found {len(row)}")
            lookup = (lambda c: row[index[c]]) if self.has_header else (lambda c: row[int(c)])
            yield line, self._pick(f"{path}:{line}", split, lookup)

    def _check_not_header(self, path: str, row: list[str], split: str) -> None:
        """With --nohas_header, a first row that names the columns is a header after all
        (read as data, its `label` would become a class)."""
        fields = [field.strip().lower() for field in row]
        index = int(self.columns["label_column"])
        label = fields[index] if split != "test" and index < len(fields) else None
        if ((label in ("label", "labels") or set(fields) <= HEADER_NAMES)
                and not (self.labels and label in self.labels)):
            raise InputError(f"{path}:1: looks like a header ({', '.join(row)[:80]}), but "
                             "--nohas_header says there is none; pass --has_header and name "
                             "the columns")

    def _read_jsonl(self, path: str, split: str) -> Iterator[tuple[int, list]]:
        for line, text in enumerate(read_lines(path, MAX_JSONL_LINE), 1):
            where = f"{path}:{line}"
            if not text.strip():
                raise InputError(f"{where}: blank line")
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                raise InputError(f"{where}: not valid JSON: {e.msg}") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object, found {type(row).__name__}")
            yield line, self._pick(where, split, row.__getitem__)

    def _pick(self, where: str, split: str, lookup: Callable[[str], object]) -> list:
        """[text_a, text_b, label] of one row; labels are stripped, test labels ignored."""
        values = []
        for flag, column in self.columns.items():
            if column is None or (split == "test" and flag == "label_column"):
                values.append(None)
                continue
            try:
                value = lookup(column)
            except LookupError:
                raise InputError(f"{where}: no column {column!r} (--{flag})") from None
            values.append(self._value(where, flag, value))
        return values

    def _value(self, where: str, flag: str, value):
        """A field as text; JSON labels may also be integers, or lists for multi-label.
        Texts longer than the CSV reader's limit are refused, as that reader does."""
        for text in value if isinstance(value, list) else (value,):
            if isinstance(text, str) and len(text) > csv.field_size_limit():
                raise InputError(f"{where}: a field longer than {csv.field_size_limit()} "
                                 f"characters (--{flag})")
            if isinstance(text, str) and not _is_unicode(text):
                raise InputError(f"{where}: --{flag} field is not valid Unicode (a lone "
                                 "surrogate, such as \\ud800 without its pair)")
        if flag == "label_column":
            if isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if isinstance(value, list) and self.problem_type == MULTI_LABEL and all(
                    isinstance(v, str) for v in value):
                return tuple(v.strip() for v in value)
            if isinstance(value, str):
                return value.strip()
        elif isinstance(value, str):
            return value
        raise InputError(f"{where}: --{flag} field is {json.dumps(value)[:40]}, not text")


def _is_unicode(text: str) -> bool:
    """False for a str that JSON's \\ud800 escapes made, which no UTF-8 encodes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@register_processor("multilabel_csv")
class MultiLabelCsvProcessor(GenericProcessor):
    """`text,labels` CSV files with a header; a row's labels are `|`-separated, maybe none.

    The `generic` options apply too, e.g. `--data_format=jsonl`, whose label
    field may also be a list of names.
    """

    problem_type = MULTI_LABEL
    metric = "micro_f1"
    default_label_column = "labels"
