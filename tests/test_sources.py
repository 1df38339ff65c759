"""The source key and the examples record: a built-in processor's cached run skips the pass.

A hit parses no row; a changed byte or setting misses; a user's class never takes the
file key; a damaged record is ignored and rewritten; results are the same either way.
"""

import ast
import hashlib
import inspect
import json
import os
import textwrap

import pytest

from processors import (ColaProcessor, GenericProcessor, InputError, InputExample,
                        SentenceSimilarityProcessor, XnliProcessor, examples, get_processor,
                        readers, records, sources)
from processors.digest import ExamplesDigest
from processors.generic import TableOptions
from processors.splits import SplitExamples

# (EXAMPLES_VERSION, sha256 of the code that shapes built-in examples): see test_version_pin.
PINNED = ("3", "f529a209d68e2ad8590aa3cb79c161fc1b83e331db2da332914766f92fbe7170")
SHAPING_FILES = ("base.py", "readers.py", "table.py", "glue.py", "generic.py",
                 "sentence_similarity.py", "cells.py")
SHAPING_CHECKS = (examples.known_labels, examples._check_label, examples._has_texts,
                  examples.check_example, examples._plain_texts, examples._plain_chunk)


def _code(source: str) -> bytes:
    """The code of a Python source, without its docstrings and comments (its syntax tree):
    a reworded docstring shapes no example, and needs no new version."""
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(
                first.value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree).encode()


def shaping_sha256() -> str:
    folder = os.path.dirname(readers.__file__)
    digest = hashlib.sha256()
    for name in SHAPING_FILES:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            digest.update(name.encode() + b"\0" + _code(f.read()) + b"\0")
    for function in SHAPING_CHECKS:
        digest.update(_code(inspect.getsource(function)) + b"\0")
    return digest.hexdigest()


def test_the_pin_reads_code_not_docstrings():
    plain = "def f(x):\n    return x + 1\n"
    documented = 'def f(x):\n    """Adds one."""\n    # (a comment)\n    return x + 1\n'
    assert _code(plain) == _code(documented) != _code(plain.replace("+ 1", "+ 2"))


def test_version_pin():
    """The code that turns a built-in processor's file into examples is pinned with
    EXAMPLES_VERSION: a change without a bump would let old records name new examples."""
    now, (version, sha) = shaping_sha256(), PINNED
    if now != sha and sources.EXAMPLES_VERSION == version:
        pytest.fail("the code that shapes built-in examples changed (processors/"
                    f"{', '.join(SHAPING_FILES)}, or examples.py's checks): bump "
                    "EXAMPLES_VERSION in processors/sources.py, then set PINNED in "
                    f"tests/test_sources.py to ({str(int(version) + 1)!r}, {now!r})")
    assert (sources.EXAMPLES_VERSION, now) == PINNED, (
        f"set PINNED in tests/test_sources.py to ({sources.EXAMPLES_VERSION!r}, {now!r})")


def write(path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def cola(tmp_path) -> str:
    rows = "".join(f"src\t{i % 2}\t\tsentence number {i} .\n" for i in range(50))
    write(tmp_path / "data" / "train.tsv", rows)
    return str(tmp_path / "data")


@pytest.fixture
def parses(monkeypatch) -> list:
    """Each file the row reader opens."""
    opened, real = [], readers.read_rows

    def counting(path, *args, **kwargs):
        opened.append(os.path.basename(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr("processors.table.read_rows", counting)
    monkeypatch.setattr("processors.generic.read_rows", counting)
    return opened


def test_a_record_hit_parses_no_row_and_gives_what_the_pass_gave(cola, tmp_path, parses):
    cache = str(tmp_path / "cache")
    first = SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache)
    assert parses == ["train.tsv"] and not first.from_record
    assert not os.path.exists(cache)  # a pass only reads there (the run writes later)
    first.save_record()
    assert [n for n in os.listdir(cache) if n.startswith("examples_")]
    second = SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache)
    assert parses == ["train.tsv"] and second.from_record
    assert (second.digest, second.count, second.pairs()) == (first.digest, 50, [])
    assert list(second) == list(first)  # a build replays the file, lazily
    assert parses == ["train.tsv", "train.tsv"]


def test_the_first_pair_is_recorded(tmp_path):
    rows = "".join(f"{i % 2},first {i},second {i}\n" for i in range(9))
    data = os.path.dirname(write(tmp_path / "d" / "train.csv", rows))
    cache = str(tmp_path / "cache")
    SplitExamples(SentenceSimilarityProcessor(), data, "train", cache_dir=cache).save_record()
    hit = SplitExamples(SentenceSimilarityProcessor(), data, "train", cache_dir=cache)
    assert hit.from_record
    assert hit.pairs() == [InputExample("train-0", "first 0", "second 0", "0")]


def test_a_changed_byte_misses(cola, tmp_path):
    cache = str(tmp_path / "cache")
    SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache).save_record()
    path = os.path.join(cola, "train.tsv")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:  # one byte, the same size
        f.write(data.replace(b"number 7 ", b"numbex 7 "))
    again = SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache)
    assert not again.from_record


@pytest.mark.parametrize("change", [
    dict(labels=["1", "0"]), dict(text_a_column="other"),
    dict(has_header=False, text_a_column="0", label_column="2"), dict(data_format="tsv")])
def test_a_changed_setting_changes_the_key(tmp_path, change):
    write(tmp_path / "train.csv", "text,other,label\na,b,0\nc,d,1\n")
    write(tmp_path / "train.tsv", "text\tother\tlabel\na\tb\t0\nc\td\t1\n")
    options = dict(labels=["0", "1"], text_a_column="text", has_header=True)
    plain = GenericProcessor.from_options(TableOptions(**options), str(tmp_path))
    changed = GenericProcessor.from_options(TableOptions(**{**options, **change}),
                                            str(tmp_path))
    key = sources.source_key(plain, str(tmp_path), "train")
    assert key is not None and key != sources.source_key(changed, str(tmp_path), "train")


def test_xnli_language_and_split_enter_the_key(tmp_path):
    for language in ("de", "fr"):
        write(tmp_path / "multinli" / f"multinli.train.{language}.tsv", "premise\thypo\tlabel\n"
              "a\tb\tneutral\n")
    german, french = XnliProcessor(), XnliProcessor()
    german.language, french.language = "de", "fr"
    keys = [sources.source_key(p, str(tmp_path), "train") for p in (german, french)]
    assert None not in keys and keys[0] != keys[1]
    assert keys[0]["settings"] == {"language": "de"}


def test_a_users_class_never_takes_the_file_key(cola, tmp_path, monkeypatch):
    class Mine(ColaProcessor):  # the same rows, but a user's class
        pass

    class Reads(ColaProcessor):
        def get_train_examples(self, data_dir):
            return [InputExample("t", "x", None, "0")]

    assert sources.source_key(ColaProcessor(), cola, "train") is not None
    assert sources.source_key(Mine(), cola, "train") is None
    assert sources.source_key(Reads(), cola, "train") is None
    patched = ColaProcessor()
    patched.parse_row = lambda row, split: (row[3], None, row[1])
    assert sources.source_key(patched, cola, "train") is None
    monkeypatch.setattr(ColaProcessor, "parse_row", lambda self, row, split: ("x", None, "0"))
    assert sources.source_key(ColaProcessor(), cola, "train") is None
    cache = str(tmp_path / "cache")
    mine = SplitExamples(Mine(), cola, "train", cache_dir=cache)
    mine.save_record()
    assert not os.path.isdir(cache)


@pytest.mark.parametrize("damage", ["truncate", "edit", "other_key", "not_json", "bad_count"])
def test_a_damaged_record_is_ignored_and_rewritten(cola, tmp_path, damage, caplog):
    cache = str(tmp_path / "cache")
    processor = ColaProcessor()
    SplitExamples(processor, cola, "train", cache_dir=cache).save_record()
    key = sources.source_key(processor, cola, "train")
    path = records.record_path(cache, key)
    with open(path) as f:
        text = f.read()
    record = json.loads(text)
    if damage == "truncate":
        text = text[:len(text) // 2]
    elif damage == "edit":
        text = text.replace('"count": 50', '"count": 51')
    elif damage == "not_json":
        text = "\0\1garbage"
    else:
        if damage == "other_key":
            record["body"]["key"] = {**key, "split": "dev"}
        else:
            record["body"]["count"] = -1
        record["sha256"] = hashlib.sha256(records._canonical(record["body"]).encode()).hexdigest()
        text = json.dumps(record)
    with open(path, "w") as f:
        f.write(text)
    again = SplitExamples(processor, cola, "train", cache_dir=cache)
    assert not again.from_record and again.count == 50
    assert "is damaged" in caplog.text
    again.save_record()
    assert SplitExamples(processor, cola, "train", cache_dir=cache).from_record


def test_overwrite_redoes_the_pass_and_the_record(cola, tmp_path, parses):
    cache = str(tmp_path / "cache")
    SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache).save_record()
    rebuilt = SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache, overwrite=True)
    assert not rebuilt.from_record and parses == ["train.tsv", "train.tsv"]
    path = records.record_path(cache, sources.source_key(ColaProcessor(), cola, "train"))
    before = os.stat(path).st_mtime_ns
    os.utime(path, ns=(before - 10**9, before - 10**9))
    rebuilt.save_record()
    assert os.stat(path).st_mtime_ns != before - 10**9


def test_a_file_changed_after_the_check_fails_the_replay(cola, tmp_path):
    cache = str(tmp_path / "cache")
    SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache).save_record()
    hit = SplitExamples(ColaProcessor(), cola, "train", cache_dir=cache)
    with open(os.path.join(cola, "train.tsv"), "a") as f:
        f.write("src\t1\t\tone more .\n")
    with pytest.raises(InputError, match="examples changed while the run read them"):
        list(hit)


def test_a_bad_file_gives_the_passes_error_not_a_key(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        SplitExamples(ColaProcessor(), str(tmp_path), "train", cache_dir=str(tmp_path / "c"))


# ---------------------------------------------------------------- the digest


def digest(rows) -> str:
    d = ExamplesDigest()
    d.update([InputExample(*row) for row in rows])
    return d.hexdigest()


@pytest.mark.parametrize("a, b", [
    ([("1", "ab", None, "0")], [("1", "a", "b", "0")]),
    ([("1", "a\tb", None, "0")], [("1", "a", "\tb", "0")]),
    ([("1", "a", None, "0"), ("2", "b", None, "1")],
     [("1", "a", None, "0"), ("2b", "", None, "1")]),
    ([("1", "a", "", "0")], [("1", "a", None, "0")]),
    ([("1", "a", None, ("x", "y"))], [("1", "a", None, "xy")]),
    ([("1", "a", None, ("x", "y"))], [("1", "a", None, ("xy",))]),
    ([("1", "a", None, 1)], [("1", "a", None, "1")]),
    ([("1", "a", None, "0")], [("1", "a", None, "0")] * 2),
    ([("1", "a'),('b", None, "0")], [("1", "a", None, "0"), ("b", "", None, "0")]),
])
def test_different_examples_never_share_a_digest(a, b):
    assert digest(a) != digest(b)


def test_the_digest_does_not_depend_on_chunks():
    rows = [(str(i), f"text {i}", None if i % 3 else "b", ("x",) if i % 5 else "0")
            for i in range(100)]
    examples_ = [InputExample(*row) for row in rows]
    whole, parts = ExamplesDigest(), ExamplesDigest()
    whole.update(examples_)
    for start in range(0, 100, 7):
        parts.update(examples_[start:start + 7])
    assert whole.hexdigest() == parts.hexdigest() and whole.count == 100


def test_a_users_list_is_checked_a_chunk_at_a_time_with_the_same_errors(tmp_path):
    class Mine(ColaProcessor):
        def __init__(self, bad):
            self.bad = bad

        def get_train_examples(self, data_dir):
            rows = [InputExample(f"t-{i}", f"text {i}", None, "0") for i in range(5000)]
            rows[4500] = InputExample("t-4500", *self.bad)
            return rows

    fine = SplitExamples(Mine(("ok", None, "1")), str(tmp_path), "train")
    assert fine.count == 5000 and list(fine)[4500].label == "1"
    for bad, problem in [((" ", None, "0"), "empty text"),
                         (("ok", None, "2"), "unknown label '2'")]:
        with pytest.raises(InputError, match=rf"^Mine.get_train_examples: example 4501 \(guid "
                                             rf"'t-4500'\): {problem}"):
            SplitExamples(Mine(bad), str(tmp_path), "train")


def test_get_processor_built_ins_take_the_key(cola):
    assert sources.is_built_in(get_processor("cola"))
    assert sources.is_built_in(get_processor("generic", options=TableOptions(labels=["a", "b"])))
