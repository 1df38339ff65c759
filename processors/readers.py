"""The checked file readers: a data file's lines or rows, or one line naming `file:line`.

BOM, CRLF, bad UTF-8, NUL and blank lines are reported as `file:line` (the line
`grep -n` shows); a file that is not a regular file is refused before any read.
`read_table` reads a whole table at once: a plain TSV in a few C calls over the
file, anything else row by row (which is what finds and names what is wrong).
"""

import codecs
import csv
import itertools
import operator
import os
import stat
from typing import BinaryIO, Iterator, Optional

from modeling.errors import InputError


BLOCK = 1 << 20  # bytes decoded at a time


def _decode(path: str, data: bytes, first_line: int) -> str:
    """Decodes UTF-8; bad bytes and NUL raise with file:line (`data` starts at first_line)."""
    try:  # not "utf-8-sig": its error offsets do not count the BOM
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data[: e.start].count(b"\n")
        raise InputError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
    nul = text.find("\0")
    if nul >= 0:
        raise InputError(f"{path}:{first_line + text.count(chr(10), 0, nul)}: NUL byte in text")
    return text


def open_data_file(path: str) -> BinaryIO:
    """`path` opened for reading, or one line naming it and what is wrong: not found, a
    directory, not a regular file (a FIFO or device: reading one would block or never end;
    it is opened non-blocking and checked before any read), or permission denied."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except IsADirectoryError:  # (where a folder cannot be opened at all)
        raise InputError(f"{path}: is a directory, not a data file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (cannot read it, or the folder that "
                         "holds it)") from None
    except OSError as e:
        raise InputError(f"{path}: cannot open: {e.strerror or e}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise InputError(f"{path}: is a directory, not a data file" if stat.S_ISDIR(mode) else
                         f"{path}: not a regular file (a FIFO, device or socket); data files "
                         "must be regular files")
    if getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)  # (a regular file's reads are unaffected either way)
    return os.fdopen(fd, "rb")


class _Lines:
    """A UTF-8 file's lines, each with its "\n" (the last may have none), in lists of
    whole lines a block of bytes at a time: callers iterate in C (`lines()`), and
    Python runs once a block. `hide_cr`: each CR that ends no line becomes NUL, which
    no valid text holds (the csv reader would end a row at a lone CR); `hidden` says
    whether any did. `seen`: whether the file held anything but whitespace."""

    def __init__(self, path: str, max_line: Optional[int] = None, hide_cr: bool = False):
        self.path, self.max_line, self.hide_cr = path, max_line, hide_cr
        self.hidden = self.seen = False

    def lines(self) -> Iterator[str]:
        yield from itertools.chain.from_iterable(self._blocks())
        if not self.seen:
            raise InputError(f"{self.path}: file is empty")

    def _blocks(self) -> Iterator[list[str]]:
        path, max_line = self.path, self.max_line
        with open_data_file(path) as f:
            data, line = f.read(BLOCK), 1
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8):]
            while data:
                more = f.read(BLOCK)
                cut = len(data) if not more else data.rfind(b"\n") + 1
                if not cut:  # one line longer than a block: read on
                    if max_line is not None and len(data) > max_line:
                        raise InputError(f"{path}:{line}: a line longer than {max_line} bytes")
                    data += more
                    continue
                text = _decode(path, data[:cut], line)
                self.seen = self.seen or not text.isspace()
                pieces = text.split("\n")
                if max_line is not None and max(map(len, pieces)) > max_line:
                    long = next(i for i, p in enumerate(pieces) if len(p) > max_line)
                    raise InputError(f"{path}:{line + long}: a line longer than {max_line} bytes")
                last = pieces.pop()
                lines = [piece + "\n" for piece in pieces] + ([last] if last else [])
                if self.hide_cr and text.count("\r") != text.count("\r\n"):
                    lines = self._hide(lines, first=line == 1)
                yield lines
                line += len(pieces)
                data = data[cut:] + more

    def _hide(self, lines: list[str], first: bool) -> list[str]:
        if first and not lines[0].endswith("\n") and "\r" in lines[0]:  # the file is one line
            raise InputError(f"{self.path}:1: lines end in a lone CR (classic Mac line "
                             "endings); convert them to LF")
        self.hidden = True
        hidden = []
        for line in lines:
            end = 2 if line.endswith("\r\n") else 1 if line.endswith("\n") else 0
            hidden.append(line[:len(line) - end].replace("\r", "\0") + line[len(line) - end:])
        return hidden


def read_lines(path: str, max_line: Optional[int] = None) -> Iterator[str]:
    """Streams a UTF-8 file's lines, each with its "\n" (the last may have none).

    Only "\n" ends a line, so line numbers are what `grep -n` and editors show. A
    leading BOM is dropped; a missing, undecodable or empty file raises. The file
    is read a block at a time: memory stays constant whatever its size. `max_line`:
    a line longer than this many bytes raises before it is read whole.
    """
    return _Lines(path, max_line).lines()


def read_rows(path: str, delimiter: str = "\t", quotechar: Optional[str] = None
              ) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, fields) for each row of a TSV/CSV file, streaming.

    Handles a UTF-8 BOM, CRLF line endings and a missing final newline. Rows end at LF
    only: a lone CR stays in its field, and every `file:line` is the line `grep -n`
    shows. `quotechar=None` reads quotes as plain characters, as GLUE's TSV files need.
    Blank lines are errors, since a blank row is never a valid example.
    """
    quoting = csv.QUOTE_NONE if quotechar is None else csv.QUOTE_MINIMAL
    lines = _Lines(path, hide_cr=True)
    reader = csv.reader(lines.lines(), delimiter=delimiter, quotechar=quotechar,
                        quoting=quoting, strict=True)
    start = 1
    try:
        for row in reader:
            if lines.hidden:  # (a CR hidden as NUL is text again, blank or not)
                row = [f.replace("\0", "\r") for f in row]
            first = row[0] if row else ""
            if (not first or first.isspace()) and not "".join(row).strip():
                if start == 1 and not _has_text(path):
                    raise InputError(f"{path}: file is empty")
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


def _has_text(path: str) -> bool:
    """Whether the file holds anything but whitespace (a BOM aside)."""
    with open(path, "rb") as f:
        block = f.read(BLOCK)
        block = block[len(codecs.BOM_UTF8):] if block.startswith(codecs.BOM_UTF8) else block
        while block:
            if block.strip():
                return True
            block = f.read(BLOCK)
    return False


_SPLIT_TABS = operator.methodcaller("split", "\t")


def read_table(path: str, delimiter: str = "\t", quotechar: Optional[str] = None
               ) -> list[list[str]]:
    """Every row of a TSV/CSV file, as `read_rows` gives them: a TSV read without quotes
    that is plainly fine (valid UTF-8 with LF or CRLF endings, no other CR, no NUL, blank
    line or field over the csv limit) is split in a few C calls over the whole file; any
    other file is read row by row, which names the first line that is wrong."""
    if quotechar is None and delimiter == "\t":
        rows = _plain_tsv(path)
        if rows is not None:
            return rows
    return [row for _, row in read_rows(path, delimiter, quotechar)]


def _plain_tsv(path: str) -> Optional[list[list[str]]]:
    """The rows of a plainly fine TSV (see `read_table`; a line of tabs and spaces is
    blank: `str.strip` takes tabs too), or None."""
    with open_data_file(path) as f:
        data = f.read()
    data = data[len(codecs.BOM_UTF8):] if data.startswith(codecs.BOM_UTF8) else data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    del data
    crs = text.count("\r")
    if crs:  # CRLF endings are line ends, as the row reader reads them; a lone CR is not
        if crs != text.count("\r\n"):
            return None
        text = text.replace("\r\n", "\n")
    if "\0" in text:
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if not lines or "" in map(str.strip, lines) or max(map(len, lines)) > csv.field_size_limit():
        return None
    return list(map(_SPLIT_TABS, lines))
