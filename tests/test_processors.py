"""File readers, the GLUE and sentence_similarity processors, and the task registry."""

import dataclasses

import pytest

from processors import (PROCESSORS, ColaProcessor, InputError, InputExample, MrpcProcessor,
                        SentenceSimilarityProcessor, TableProcessor, get_processor,
                        load_processor_module, read_rows, register_processor)
from processors.glue import MRPC_HEADER

MRPC_HEAD = "\ufeff" + "\t".join(MRPC_HEADER) + "\n"
MRPC_TEST_HEAD = "index\t#1 ID\t#2 ID\t#1 String\t#2 String\n"


def write(path, data):
    """Writes exact bytes (str is UTF-8 encoded, newlines untouched); returns the path."""
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


# ---------------------------------------------------------------- readers

@pytest.mark.parametrize("data", [
    b"\xef\xbb\xbfa\tb\nc\td\n",
    b"a\tb\r\nc\td\r\n",
    b"a\tb\nc\td",
], ids=["bom", "crlf", "no-final-newline"])
def test_read_rows_file_variants(tmp_path, data):
    assert list(read_rows(write(tmp_path / "f.tsv", data))) == [(1, ["a", "b"]), (2, ["c", "d"])]


def test_tsv_keeps_quote_characters(tmp_path):
    path = write(tmp_path / "f.tsv", 'a\t"b c"\t"d\n"e\tf"\n')
    assert list(read_rows(path)) == [(1, ["a", '"b c"', '"d']), (2, ['"e', 'f"'])]


def test_csv_quoted_commas_and_doubled_quotes(tmp_path):
    path = write(tmp_path / "f.csv", '1,"a, b","say ""hi"""\n')
    assert list(read_rows(path, ",", '"')) == [(1, ["1", "a, b", 'say "hi"'])]


def test_csv_line_numbers_after_multiline_fields(tmp_path):
    path = write(tmp_path / "f.csv", '0,"one\ntwo\nthree",x\n1,y,z\r\n0,"p\r\nq",r\n1,s,t\n')
    assert list(read_rows(path, ",", '"')) == [
        (1, ["0", "one\ntwo\nthree", "x"]), (4, ["1", "y", "z"]),
        (5, ["0", "p\r\nq", "r"]), (7, ["1", "s", "t"])]


@pytest.mark.parametrize("char", ["\u2028", "\x85", "\x0c"])
def test_unicode_line_breaks_inside_a_field_are_text(tmp_path, char):
    # Only \n, \r\n and \r end a row (as csv.reader on a file, and Google's reader).
    path = write(tmp_path / "f.tsv", f"a\tb{char}c\nd\te\n")
    assert list(read_rows(path)) == [(1, ["a", f"b{char}c"]), (2, ["d", "e"])]


# ---------------------------------------------------------------- bad input

COLA_OK = "src\t1\t\tGood.\n"

# (task, split, file contents or None for no file, line or None for file errors, fragments)
BAD_INPUTS = {
    "columns": ("cola", "train", COLA_OK + "src\t1\tthree\n", 2, ["expected 4 columns, found 3"]),
    "empty-text": ("cola", "train", COLA_OK + "src\t0\t\t\n", 2, ["empty text"]),
    "blank-text": ("cola", "train", COLA_OK + "src\t0\t\t  \n", 2, ["empty text"]),
    "blank-text-b": ("mrpc", "train", MRPC_HEAD + "1\t1\t2\tA.\t \n", 2, ["empty text"]),
    "label": ("cola", "train", COLA_OK + "src\t2\t\tBad.\n", 2,
              ["unknown label '2'", "expected one of 0, 1"]),
    "utf8": ("cola", "train", COLA_OK.encode() * 2 + b"src\t1\t\tbad \xff.\n", 3,
             ["not valid UTF-8", "0xff"]),
    "nul": ("cola", "train", COLA_OK * 3 + "src\t1\t\ta\0b\n", 4, ["NUL byte"]),
    "blank-line": ("cola", "train", COLA_OK + "\n" + COLA_OK, 2, ["blank line"]),
    "blank-line-crlf": ("cola", "train", COLA_OK * 2 + " \t \r\n" + COLA_OK, 3, ["blank line"]),
    "missing-file": ("cola", "train", None, None, ["file not found"]),
    "empty-file": ("cola", "dev", "", None, ["file is empty"]),
    "whitespace-file": ("cola", "dev", "\n \n", None, ["file is empty"]),
    "cola-test-no-header": ("cola", "test", "0\tA sentence.\n", 1, ["expected header"]),
    "mrpc-no-header": ("mrpc", "train", "1\t1\t2\tA.\tB.\n", 1, ["expected header"]),
    "mrpc-test-train-header": ("mrpc", "test", MRPC_HEAD + "0\t1\t2\tA.\tB.\n", 1,
                               ["expected header"]),
    "cola-train-header": ("cola", "train", "source\tlabel\tjudgment\tsentence\n" + COLA_OK, 1,
                          ["unknown label 'label'", "0, 1"]),
    "test-with-label": ("sentence_similarity", "test", '"a","b"\n1,"a","b"\n', 2,
                        ["expected 2 columns, found 3"]),
    "csv-bad-quote": ("sentence_similarity", "train", '1,"a"x,b\n', 1, []),
    "header-only": ("mrpc", "test", MRPC_TEST_HEAD, None, ["no examples"]),
    "cola-header-only": ("cola", "test", "index\tsentence\r\n", None, ["no examples"]),
}


@pytest.mark.parametrize("task,split,data,line,fragments", BAD_INPUTS.values(),
                         ids=BAD_INPUTS.keys())
def test_bad_input_raises_one_line_error(tmp_path, task, split, data, line, fragments):
    processor = get_processor(task)
    path = processor.get_file_path(str(tmp_path), split)
    if data is not None:
        write(tmp_path / processor.file_names[split], data)
    with pytest.raises(InputError) as info:
        processor.get_examples(str(tmp_path), split)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: " if line else f"{path}: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message


# ---------------------------------------------------------------- processors

def test_cola(tmp_path):
    write(tmp_path / "train.tsv", 'gj04\t1\t\tThe "dog" barks.\nad03\t0\t*\tDog the barks.')
    write(tmp_path / "test.tsv", "index\tsentence\n0\tIt rains.\n1\tRains it.\n")
    processor = ColaProcessor()
    assert processor.get_train_examples(str(tmp_path)) == [
        InputExample("train-0", 'The "dog" barks.', None, "1"),
        InputExample("train-1", "Dog the barks.", None, "0")]
    assert processor.get_test_examples(str(tmp_path)) == [
        InputExample("test-0", "It rains.", None, None),
        InputExample("test-1", "Rains it.", None, None)]


def test_mrpc(tmp_path):
    write(tmp_path / "dev.tsv", MRPC_HEAD + '1\t11\t12\tHe said " hi " .\tHe greeted .\r\n'
          "0\t13\t14\tA cat .\tA dog .\r\n")
    write(tmp_path / "test.tsv", MRPC_TEST_HEAD + "0\t15\t16\tOne .\tTwo .\n")
    processor = MrpcProcessor()
    assert processor.get_dev_examples(str(tmp_path)) == [
        InputExample("dev-0", 'He said " hi " .', "He greeted .", "1"),
        InputExample("dev-1", "A cat .", "A dog .", "0")]
    assert processor.get_test_examples(str(tmp_path)) == [
        InputExample("test-0", "One .", "Two .", None)]


def test_sentence_similarity(tmp_path):
    write(tmp_path / "train.csv", '1,"a, b","a and b"\n0,plain,"say ""no"""\n')
    write(tmp_path / "test.csv", '"x, y",z\n')
    processor = SentenceSimilarityProcessor()
    assert processor.get_train_examples(str(tmp_path)) == [
        InputExample("train-0", "a, b", "a and b", "1"),
        InputExample("train-1", "plain", 'say "no"', "0")]
    assert processor.get_test_examples(str(tmp_path)) == [
        InputExample("test-0", "x, y", "z", None)]


def test_input_example_is_frozen():
    example = InputExample("train-0", "a", "b", "1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.label = "0"


def test_input_example_is_a_plain_dataclass_value():
    """Made by its own __init__ (slot setters), it is still what Google's class is: keyword
    or positional, compared and hashed by value, copied, pickled, replaced; and a user's
    subclass with a field of its own works."""
    import copy
    import pickle
    example = InputExample(guid="g", text_a="a", label="1")
    assert example == InputExample("g", "a", None, "1") != InputExample("g", "a", None, "0")
    assert hash(example) == hash(InputExample("g", "a", None, "1"))
    assert repr(example) == "InputExample(guid='g', text_a='a', text_b=None, label='1')"
    assert dataclasses.astuple(example) == ("g", "a", None, "1")
    assert dataclasses.replace(example, label=None) == InputExample("g", "a")
    assert copy.copy(example) == pickle.loads(pickle.dumps(example)) == example

    @dataclasses.dataclass(frozen=True)
    class Weighted(InputExample):
        weight: float = 1.0

    weighted = Weighted("g", "a", None, "1", 0.5)
    assert (weighted.guid, weighted.label, weighted.weight) == ("g", "1", 0.5)
    assert weighted != example


# ---------------------------------------------------------------- registry

USER_MODULE = '''
from processors import TableProcessor, register_processor

@register_processor("{name}")
class UserProcessor(TableProcessor):
    def get_labels(self):
        return ["yes", "no"]

    def parse_row(self, row, split):
        return row[0], None, row[1]
'''


@pytest.mark.parametrize("name,cls", [("CoLA", ColaProcessor), ("MRPC", MrpcProcessor),
                                      ("Sentence_Similarity", SentenceSimilarityProcessor)])
def test_get_processor_is_case_insensitive(name, cls):
    assert type(get_processor(name)) is cls
    assert get_processor(name) is not get_processor(name)


def test_get_processor_unknown_lists_tasks():
    with pytest.raises(InputError, match="--task_name=nope: unknown task") as info:
        get_processor("nope")
    assert ("registered tasks: cola, generic, mnli, mnli-mm, mrpc, multilabel_csv, qnli, qqp, "
            "rte, selfsim, sentence_similarity, sst-2, sts-b, wnli, xnli (--task_name=help "
            "describes them)") in str(info.value)


def test_register_processor(registry, tmp_path):
    @register_processor("My_Task")
    class MyProcessor(TableProcessor):
        num_columns = {"train": 2}

        def get_labels(self):
            return ["neg", "pos"]

        def parse_row(self, row, split):
            return row[1], None, row[0]

    assert MyProcessor.task_name == "my_task"
    processor = get_processor("MY_TASK")
    assert type(processor) is MyProcessor
    write(tmp_path / "train.tsv", "pos\tGreat.\n")
    assert processor.get_train_examples(str(tmp_path)) == [
        InputExample("train-0", "Great.", None, "pos")]
    with pytest.raises(TypeError):
        register_processor("bad")(object)


def test_load_processor_module_from_file(registry, tmp_path):
    path = write(tmp_path / "procs.py", USER_MODULE.format(name="from_file"))
    load_processor_module(path)
    processor = get_processor("from_file")
    assert type(processor).__name__ == "UserProcessor"
    assert processor.get_labels() == ["yes", "no"]


def test_load_processor_module_dotted(registry, tmp_path, monkeypatch):
    write(tmp_path / "tmp_procs_dotted.py", USER_MODULE.format(name="dotted"))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_processor_module("tmp_procs_dotted")
    assert type(get_processor("dotted")).__name__ == "UserProcessor"


@pytest.mark.parametrize("source,spec,fragments", [
    ("raise RuntimeError('boom\\nsecond line')\n", "raises.py",
     ["cannot import", "RuntimeError: boom"]),
    ("def broken(:\n", "syntax.py", ["cannot import", "SyntaxError"]),
    ("X = 1\n", "nothing.py", ["registers no processor"]),
    (None, "missing.py", ["file not found"]),
    (None, "tmp_procs_no_such_module", ["cannot import", "ModuleNotFoundError"]),
])
def test_load_processor_module_errors(registry, tmp_path, monkeypatch, source, spec,
                                      fragments):
    if source is not None:
        write(tmp_path / spec, source)
    if spec.endswith(".py"):
        spec = str(tmp_path / spec)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = dict(PROCESSORS)
    with pytest.raises(InputError) as info:
        load_processor_module(spec)
    message = str(info.value)
    assert message.startswith(f"--processor_module={spec}: ")
    for fragment in fragments:
        assert fragment in message
    assert "\n" not in message
    assert PROCESSORS == before


# ---------------------------------------------------------------- cells and names

@pytest.mark.parametrize("text,cell", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+1+2", "'+1+2"),
    ("-neg", "'-neg"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\\tx"), ("-", "'-"),
    ("-0.5", "-0.5"), ("+3", "+3"), ("-1e-05", "-1e-05"), ("-.5", "-.5"), ("-inf", "'-inf"),
    ("pos", "pos"), ("a=b", "a=b"), ("", ""), ("'quoted", "'quoted"), ("a\nb", "a\\nb"),
])
def test_table_cell_guards_formulas_and_keeps_numbers(text, cell):
    from processors.cells import table_cell
    assert table_cell(text) == cell


def test_escape_text_is_one_line_and_reversible():
    from processors.cells import escape_text
    text = "a\\b\tc\nd\re\x00f\x85g\u2028h\u2029i é"
    escaped = escape_text(text)
    assert escaped == "a\\\\b\\tc\\nd\\re\\u0000f\\u0085g\\u2028h\\u2029i é"
    assert len(escaped.splitlines()) == 1 and escaped.isprintable()
    assert escaped.encode("latin-1", "backslashreplace").decode("unicode_escape") == text
    assert escape_text("train-7") == "train-7"


def test_label_names_with_control_characters_or_the_separator_are_refused():
    from processors.cells import check_label_name
    assert check_label_name("pos") is None and check_label_name("a|b") is None
    assert "(U+0009)" in check_label_name("a\tb")
    assert "(U+009F)" in check_label_name("a\x9fb")
    assert check_label_name("a|b", "|") == "label 'a|b' holds the label separator '|'"


def test_a_processor_whose_labels_hold_a_newline_is_refused_when_read(tmp_path):
    from processors import split_examples

    class Broken(ColaProcessor):
        def get_labels(self):
            return ["0", "1\n"]

    data = tmp_path / "data"
    data.mkdir()
    write(data / "train.tsv", "gj04\t1\t\tThe dog runs.\n")
    with pytest.raises(InputError, match=r"^Broken.get_labels\(\): label '1\\n' holds a "
                       r"control character \(U\+000A\)"):
        list(split_examples(Broken(), str(data), "train"))


def test_every_registered_task_has_a_plain_name():
    from processors.cells import check_plain_name
    assert PROCESSORS and not [n for n in PROCESSORS if check_plain_name(n)]


def test_path_safe_names_never_leave_their_folder():
    from processors.cells import path_safe
    for name in ("../../x", "/abs", "..", ".", "", "a\nb", "\\..\\x", "-x"):
        safe = path_safe(name)
        assert safe and "/" not in safe and "\\" not in safe and not safe.startswith((".", "-"))
    assert path_safe("sts-b_train") == "sts-b_train"


def test_read_lines_refuses_a_line_longer_than_the_bound_before_reading_it_whole(tmp_path):
    from processors.readers import read_lines
    path = write(tmp_path / "f.jsonl", "short\n" + "x" * (3 << 20) + "\nend\n")
    lines = read_lines(path, max_line=1 << 20)
    assert next(lines) == "short\n"
    with pytest.raises(InputError, match=r"f.jsonl:2: a line longer than 1048576 bytes$"):
        next(lines)
    assert [len(line) for line in read_lines(path)] == [6, (3 << 20) + 1, 4]


# ---------------------------------------------------------------- the streaming hook

class Streamed(ColaProcessor):
    """A processor with a stream of its own (the hook) for train, Google's list for dev."""

    def stream_examples(self, data_dir, split):
        return None if split == "dev" else self._rows(split)

    def _rows(self, split):
        yield InputExample(f"{split}-0", "the dog runs .", None, "1")
        raise ValueError("boom")


def test_a_processors_own_stream_is_the_split(tmp_path):
    from processors import split_examples
    from processors.splits import SplitExamples
    stream = split_examples(Streamed(), str(tmp_path), "train")
    assert next(stream) == InputExample("train-0", "the dog runs .", None, "1")
    with pytest.raises(InputError, match=r"^Streamed.stream_examples: ValueError: boom \(at "):
        next(stream)
    write(tmp_path / "dev.tsv", "gj04\t1\t\tThe dog runs.\n")
    examples = SplitExamples(Streamed(), str(tmp_path), "dev")
    assert list(examples) == [InputExample("dev-0", "The dog runs.", None, "1")]


def test_a_table_processor_streams_unless_it_reads_a_split_its_own_way(tmp_path):
    class Own(ColaProcessor):
        def get_dev_examples(self, data_dir):
            return [InputExample("d", "a", None, "1")]

    assert Own().stream_examples(str(tmp_path), "dev") is None
    assert Own().stream_examples(str(tmp_path), "train") is not None
    assert Own().implements("dev") and Own().implements("train")

    class NoRows(TableProcessor):
        def get_labels(self):
            return ["a"]

    class DevOnly(NoRows):
        def get_dev_examples(self, data_dir):
            return []

    assert not NoRows().implements("train") and DevOnly().implements("dev")
    assert not DevOnly().implements("train")


def test_the_examples_seam_knows_only_the_base_class_and_processors_has_no_import_circle():
    """processors/examples.py imports no subclass; no module of processors/ reaches itself
    through its imports (at the top or inside functions)."""
    import ast
    import os
    import processors
    folder = os.path.dirname(processors.__file__)
    graph = {}
    for name in os.listdir(folder):
        if name.endswith(".py"):
            with open(os.path.join(folder, name)) as f:
                tree = ast.parse(f.read())
            graph[name[:-3]] = {n.module.split(".")[0] for n in ast.walk(tree)
                                if isinstance(n, ast.ImportFrom) and n.level and n.module}
    assert graph["examples"] <= {"base", "cells", "digest"}

    def in_a_circle(start: str) -> bool:
        stack, seen = list(graph[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, ()))
        return False

    assert [m for m in sorted(graph) if in_a_circle(m)] == []
