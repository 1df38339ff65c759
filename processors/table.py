"""TableProcessor: the declarative way to write a processor for one-row-per-example files.

A subclass says which file holds each split, how many columns a row has,
whether a header comes first, which labels exist, which metric judges it, and
how one row maps to (text_a, text_b, label) in `parse_row`. The class reads
the files, streams the examples and checks every row: a bad row raises an
`InputError` naming `file:line`; no row is ever dropped silently.
"""

import os
from typing import ClassVar, Iterator, Optional, Sequence

from .base import SPLITS, DataProcessor, InputError, InputExample, Label, defines
from .readers import read_rows
from .examples import check_example, known_labels, user_error


class TableProcessor(DataProcessor):
    """A DataProcessor whose `get_*_examples` read `file_names[split]` in `data_dir`.

    Subclasses set the class attributes below and implement `get_labels()` and
    `parse_row()`. Without `num_columns`, a split with a header must have its
    header's width.
    """

    file_names: ClassVar[dict[str, str]] = {s: f"{s}.tsv" for s in SPLITS}
    num_columns: ClassVar[dict[str, int]] = {}
    headers: ClassVar[dict[str, Sequence[str]]] = {}
    delimiter: ClassVar[str] = "\t"
    quotechar: ClassVar[Optional[str]] = None

    def parse_row(self, row: list[str], split: str
                  ) -> Optional[tuple[str, Optional[str], Label]]:
        """Maps one row's fields to (text_a, text_b, label); label None for test.

        None leaves the row out on purpose (XNLI's other languages); a row that
        does not fit must raise instead, so that nothing is dropped by accident.
        """
        raise NotImplementedError()

    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "test")

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        """Every example of one split, read and checked."""
        return list(self.iter_examples(data_dir, split))

    def implements(self, split: str) -> bool:
        """A `parse_row` of the subclass's own, or its own `get_{split}_examples`."""
        cls = type(self)
        return defines(cls, "parse_row", TableProcessor) or defines(
            cls, f"get_{split}_examples", TableProcessor)

    def stream_examples(self, data_dir: str, split: str) -> Optional[Iterator[InputExample]]:
        """The file streamed (`iter_examples`), unless the subclass reads the split its own
        way (its own `get_{split}_examples`: None, the pipeline calls it)."""
        if defines(type(self), f"get_{split}_examples", TableProcessor):
            return None
        return self._stream(data_dir, split)

    def _stream(self, data_dir: str, split: str) -> Iterator[InputExample]:
        """`iter_examples`, an exception of the subclass's (a bug in parse_row, say) made
        one line with its file:line."""
        try:
            yield from self.iter_examples(data_dir, split)
        except InputError:
            raise
        except Exception as e:
            raise user_error(self, "parse_row", e) from None

    def get_file_path(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, self.file_names[split])

    def read_split(self, path: str, split: str) -> Iterator[tuple[int, list]]:
        """(line number, fields) of each data row, after checking the split's header."""
        rows = read_rows(path, self.delimiter, self.quotechar)
        header = self.headers.get(split)
        if header is not None:
            self._check_header(path, next(rows, (1, []))[1], header)
        return rows

    def iter_examples(self, data_dir: str, split: str) -> Iterator[InputExample]:
        """Each row of one split as an example, checked as it is read.

        A generator: a file of any size streams through in constant memory.
        """
        path = self.get_file_path(data_dir, split)
        rows = self.read_split(path, split)
        known = known_labels(self)
        header = self.headers.get(split)
        width = self.num_columns.get(split, len(header) if header else None)
        count = 0
        for line, row in rows:
            try:
                if width is not None and len(row) != width:
                    raise InputError(f"expected {width} columns, found {len(row)}" + (
                        " (test files have no label column)"
                        if split == "test" and len(row) == width + 1 else ""))
                parsed = self.parse_row(row, split)
                if parsed is None:
                    continue
                yield check_example(self, split, InputExample(f"{split}-{count}", *parsed),
                                    known)
            except InputError as e:
                raise InputError(f"{path}:{line}: {e}{self._header_hint(row, split, line)}"
                                 ) from None
            count += 1
        if not count:
            raise InputError(f"{path}: no examples")

    @staticmethod
    def _check_header(path: str, row: list[str], expected: Sequence[str]) -> None:
        if [field.strip() for field in row] != list(expected):
            raise InputError(f"{path}:1: expected header {chr(9).join(expected)!r}, "
                             f"found {chr(9).join(row)[:80]!r}")

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
