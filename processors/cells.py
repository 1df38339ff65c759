"""Text from data that stays in its place: label names, table cells, names in paths.

A label with a control character (TAB, CR, LF, any Unicode Cc) would break the row it
is written in, so labels are refused (`check_label_name`). Every text cell the
project writes to a TSV/CSV goes through `table_cell`: a cell a spreadsheet would
run as a formula (`=`, `+`, `-`, `@`, TAB or CR first) gets a leading `'` (OWASP's
advice for CSV injection), numbers stay numbers. `escape_text` writes any text as one
line (guids). A task name is a plain name (`check_plain_name`), never a path.
"""

import re
from typing import Optional

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's Cc category, exactly
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_LINE_BREAKING = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]")


def control_character(text: str) -> Optional[str]:
    """The first control character in `text`, as U+XXXX; None when there is none."""
    found = CONTROL.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def check_label_name(name: str, separator: Optional[str] = None) -> Optional[str]:
    """What is wrong with a label name for the files it is written to; None when fine.

    `separator`: a multi-label task's separator, which a name must not hold either
    (predictions.tsv joins a row's names with it)."""
    bad = control_character(name)
    if bad:
        return (f"label {name!r} holds a control character ({bad}); labels are written "
                "to TSV files and must be printable")
    if separator and separator in name:
        return f"label {name!r} holds the label separator {separator!r}"
    return None


def table_cell(text: str, escape: bool = False) -> str:
    """A TSV/CSV cell for text from data: a leading `'` where a spreadsheet would read a
    formula (`=`, `+`, `-`, `@`, TAB or CR first), numbers ("-0.5") as they are.
    `escape`: always `escape_text` (reversible); else only a text with a control
    character (refused earlier; a last guard), so that the row stays one."""
    formula = text.startswith(FORMULA_START) and not NUMBER.fullmatch(text)
    if escape or CONTROL.search(text):
        text = escape_text(text)
    return "'" + text if formula else text


def escape_text(text: str) -> str:
    """`text` on one line: backslash, TAB, LF and CR as `\\\\`, `\\t`, `\\n`, `\\r`, other
    control and line-breaking characters as `\\uXXXX` (reversible, as Python reads
    escapes); plain text unchanged but for its backslashes."""
    return _LINE_BREAKING.sub(
        lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), text)


def check_plain_name(name) -> Optional[str]:
    """What is wrong with a task name, which names cache entries; None when it is plain:
    letters, digits, `_`, `-`, `.`, not starting with `.` or `-`, at most 100."""
    if isinstance(name, str) and PLAIN_NAME.fullmatch(name):
        return None
    return (f"task name {name!r} is not a plain name (letters, digits, _ - . only, not "
            "starting with . or -, at most 100 characters)")


def path_safe(name: str) -> str:
    """`name` as one plain file-name part: every other character `_`, no leading dot."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100].lstrip(".-")
    return cleaned or "_"
