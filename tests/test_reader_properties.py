"""Properties of the readers: whatever text a CSV/TSV file holds, it round-trips, or
reading stops with an InputError naming the file (and line); never another exception."""

import csv
import os
import re
import tempfile

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from processors import InputError, get_processor, read_rows
from processors.readers import read_table

# Any Unicode text that UTF-8 can encode (no lone surrogates); small alphabets find edge cases.
ANY = st.characters(blacklist_categories=("Cs",))
TRICKY = st.sampled_from(list(',"\t\r\n \ufeff\u2028\x85\x0c') + ["a", "é", "0", "1"])
FIELD = st.text(st.one_of(ANY, TRICKY), max_size=12)
TEXT = st.text(st.one_of(ANY, TRICKY), min_size=1, max_size=12)
ROWS = st.lists(st.lists(FIELD, min_size=1, max_size=4), min_size=1, max_size=6)


def write_file(folder, name, data: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(data)
    return path


def csv_text(rows) -> str:
    with tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
        f.seek(0)
        return f.read()


def tsv_text(rows) -> str:
    return "".join("\t".join(row) + "\n" for row in rows)


def readable(rows) -> bool:
    """What the reader accepts: no NUL, no blank row (a BOM-like first char is a BOM)."""
    return all(any(f.strip() for f in row) and not any("\0" in f for f in row) for row in rows)


def assert_names_the_file(error: InputError, path: str) -> None:
    assert re.match(re.escape(path) + r"(:\d+)?: \S", str(error)), str(error)
    assert "\n" not in str(error)


@settings(max_examples=200, deadline=None)
@given(ROWS)
def test_csv_rows_round_trip_or_fail_with_file_and_line(rows):
    assume(not rows[0][0].startswith("\ufeff"))
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "f.csv", csv_text(rows))
        try:
            got = [row for _, row in read_rows(path, ",", '"')]
        except InputError as e:
            assert_names_the_file(e, path)
            assert not readable(rows)
            return
        assert readable(rows) and got == rows


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.text(st.one_of(ANY, TRICKY).filter(lambda c: c not in "\t\n"),
                                 max_size=12), min_size=1, max_size=4), min_size=1, max_size=6))
def test_tsv_rows_round_trip_or_fail_with_file_and_line(rows):
    """Line numbers are `grep -n`'s (one row per LF) even with lone CRs in the texts: a CR
    is text, but for one right before the LF, which makes a CRLF line ending."""
    assume(not rows[0][0].startswith("\ufeff"))
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "f.tsv", tsv_text(rows))
        try:
            got = [(line, row) for line, row in read_rows(path)]
        except InputError as e:
            assert_names_the_file(e, path)
            assert not readable(rows)
            return
        expected = [row[:-1] + [re.sub("\r$", "", row[-1])] for row in rows]
        assert readable(rows) and got == list(enumerate(expected, start=1))


def rows_or_error(read, *args):
    try:
        return read(*args)
    except InputError as e:
        return str(e)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(ANY, TRICKY, st.sampled_from(["\t", "\n", "\0", " \n", "\n\n"])),
                max_size=60).map("".join), st.sampled_from(["\t", ","]), st.booleans())
def test_a_whole_table_is_what_the_row_reader_gives(text, delimiter, bom):
    """read_table (Google's _read_tsv and _read_csv), whatever the text: the rows
    read_rows gives, or its error (the same file:line)."""
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, "f.tsv", ("\ufeff" if bom else "") + text)
        expected = rows_or_error(lambda: [row for _, row in read_rows(path, delimiter)])
        assert rows_or_error(read_table, path, delimiter) == expected


LABELS = st.sampled_from(["0", "1", "0", "1", "2", "", "label", " 1"])


def task_row(task, split, text_a, text_b, label):
    """A row in the task's layout, holding these texts and label."""
    if task == "cola":
        return ["0", text_a] if split == "test" else ["gj04", label, "", text_a]
    if task == "mrpc":
        return ["0" if split == "test" else label, "1", "2", text_a, text_b]
    return [text_a, text_b] if split == "test" else [label, text_a, text_b]


@st.composite
def task_rows(draw, task, split, tsv):
    """Mostly rows in the task's layout with any texts and labels, some of any shape."""
    clean = (lambda f: re.sub(r"[\t\r\n]", " ", f)) if tsv else (lambda f: f)
    rows = []
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 9)):
            a, b, label = clean(draw(TEXT)), clean(draw(TEXT)), draw(LABELS)
            rows.append((task_row(task, split, a, b, label),
                         (a, None if task == "cola" else b, None if split == "test" else label)))
        else:
            rows.append(([clean(f) for f in draw(st.lists(FIELD, max_size=6))], None))
    return rows


@settings(max_examples=200, deadline=None)
@given(task=st.sampled_from(["cola", "mrpc", "sentence_similarity"]),
       split=st.sampled_from(["train", "dev", "test"]), header=st.booleans(), data=st.data())
def test_processors_return_every_row_or_name_the_bad_one(task, split, header, data):
    processor = get_processor(task)
    tsv = processor.delimiter == "\t"
    rows = data.draw(task_rows(task, split, tsv))
    expected_header = processor.headers.get(split)
    head = [list(expected_header)] if header and expected_header else []
    lines = head + [row for row, _ in rows]
    with tempfile.TemporaryDirectory() as folder:
        path = write_file(folder, processor.file_names[split],
                          tsv_text(lines) if tsv else csv_text(lines))
        try:
            examples = processor.get_examples(folder, split)
        except InputError as e:
            assert_names_the_file(e, path)
            return
    assert len(examples) == len(rows) > 0
    for example, (_, expected) in zip(examples, rows):
        assert example.text_a.strip() and (example.text_b is None or example.text_b.strip())
        assert example.label is None or example.label in processor.get_labels()
        if expected:
            assert (example.text_a, example.text_b, example.label) == expected
