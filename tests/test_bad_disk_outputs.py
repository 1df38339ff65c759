"""Issue 29's data cases, through the real command line: outputs stay tables, names stay in
their folder, input stays bounded, a full disk during the cache build names its path.

The rows (exit 2, one line) run in one module fixture, as in test_bad_inputs.py; the
cases whose right outcome is exit 0 with escaped output are plain tests after them.
"""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from bad_input_table import ENV, LIMIT, ROOT, VALID, Case, table, write_at
from processors.cells import table_cell

CONTROL = "holds a control character ({}); labels are written to TSV files and must be printable"
JSONL = ("--do_train", "--data_format=jsonl")
MULTI_OK = VALID["multilabel_csv"]["train.csv"]
MINE = ("--do_train", "--processor_module={case}/mine.py", "--task_name=mine")
PLAIN = ("is not a plain name (letters, digits, _ - . only, not starting with . or -, at most "
         "100 characters)")


def jsonl(*labels, field="label") -> str:
    return "".join(json.dumps({"text": "the dog runs", field: label}) + "\n" for label in labels)


def module(text):
    """A --processor_module file `mine.py` with `text` after the imports."""
    return write_at("mine.py", "from processors import (ColaProcessor, MultiLabelCsvProcessor, "
                    "PROCESSORS, register_processor)\n\n\n" + text)


def big_train(case_dir, bert):
    """A generic train.csv whose features (~100 kB of input_ids) outgrow a 60 kB disk."""
    row = "the dog runs and the cat sleeps near the big old house {},{}\n"
    with open(os.path.join(case_dir, "data", "train.csv"), "w") as f:
        f.write("text,label\n" + "".join(row.format(i, "pos" if i % 2 else "neg")
                                         for i in range(2000)))


CASES = [
    # Labels with control characters: from data (file:line), from --labels (the flag).
    Case("jsonl-label-with-tab", "{data}/train.jsonl:1: label 'pos\\tneg' " + CONTROL.format(
        "U+0009"), JSONL, {"train.jsonl": jsonl("pos\tneg", "line\nbreak", "other")}, "generic"),
    Case("jsonl-label-with-newline", "{data}/train.jsonl:2: label 'line\\nbreak' "
         + CONTROL.format("U+000A"), JSONL, {"train.jsonl": jsonl("other", "line\nbreak")},
         "generic"),
    Case("jsonl-label-with-nel", "{data}/train.jsonl:2: label 'a\\x85b' " + CONTROL.format(
        "U+0085"), JSONL, {"train.jsonl": jsonl("other", "a\x85b")}, "generic"),
    Case("csv-label-with-cr", "{data}/train.csv:3: label 'pos\\rneg' " + CONTROL.format(
        "U+000D"), files={"train.csv": 'text,label\nthe dog,neg\na cat,"pos\rneg"\n'},
         task="generic"),
    Case("labels-flag-with-tab", "--labels: label 'pos\\tneg' " + CONTROL.format("U+0009"),
         ("--do_train", "--labels=pos\tneg,other"), task="generic"),
    Case("multilabel-name-with-tab", "{data}/train.csv:4: label 'tra\\tvel' " + CONTROL.format(
        "U+0009"), task="multilabel_csv",
         files={"train.csv": MULTI_OK + 'a bird,"sports|tra\tvel"\n'}),
    Case("multilabel-jsonl-name-holds-the-separator", "{data}/train.jsonl:2: label 'a|b' holds "
         "the label separator '|'", JSONL, task="multilabel_csv",
         files={"train.jsonl": jsonl(["c"], ["a|b", "c"], field="labels")}),
    Case("multilabel-labels-flag-holds-the-separator", "--labels: label 'a|b' holds the label "
         "separator '|'", ("--do_train", "--labels=a|b,c"), task="multilabel_csv"),
    Case("processor-label-with-newline", "Mine.get_labels(): label '1\\n' " + CONTROL.format(
        "U+000A"), MINE, prepare=module("@register_processor('mine')\nclass Mine(ColaProcessor):"
                                        "\n    def get_labels(self):\n        return ['0', '1\\n']"
                                        "\n")),
    Case("processor-separator-is-a-tab", "Mine.label_separator is '\\t'; a multi-label task's "
         "separator must be printable (predictions.tsv joins names with it)", MINE,
         task="multilabel_csv", prepare=module(
             "@register_processor('mine')\nclass Mine(MultiLabelCsvProcessor):\n"
             "    label_separator = '\\t'\n")),
    # Names that would leave their folder: refused when registered.
    Case("task-name-escapes-by-decorator", "--processor_module={case}/mine.py: "
         "register_processor('../../escaped'): task name '../../escaped' " + PLAIN,
         ("--do_train", "--processor_module={case}/mine.py", "--task_name=../../escaped"),
         prepare=module("@register_processor('../../escaped')\nclass Mine(ColaProcessor):\n"
                        "    pass\n")),
    Case("task-name-escapes-by-dictionary", "--processor_module={case}/mine.py: "
         "PROCESSORS['/tmp/escaped']: task name '/tmp/escaped' " + PLAIN,
         ("--do_train", "--processor_module={case}/mine.py", "--task_name=/tmp/escaped"),
         prepare=module("class Mine(ColaProcessor):\n    pass\n\n\n"
                        "PROCESSORS['/tmp/escaped'] = Mine\n")),
    Case("task-name-starts-with-a-dot", "--processor_module={case}/mine.py: "
         "register_processor('.hidden'): task name '.hidden' " + PLAIN,
         ("--do_train", "--processor_module={case}/mine.py", "--task_name=.hidden"),
         prepare=module("@register_processor('.hidden')\nclass Mine(ColaProcessor):\n"
                        "    pass\n")),
    # Bounded input: JSON Lines fields as the CSV reader's; a huge line before parsing.
    Case("jsonl-text-over-the-field-limit", "{data}/train.jsonl:2: " + LIMIT
         + " (--text_a_column)", JSONL, task="generic",
         files={"train.jsonl": jsonl("pos") + json.dumps({"text": "x" * 131_073,
                                                          "label": "neg"}) + "\n"}),
    Case("jsonl-label-list-over-the-field-limit", "{data}/train.jsonl:1: " + LIMIT
         + " (--label_column)", JSONL, task="multilabel_csv",
         files={"train.jsonl": jsonl(["a", "b" * 131_073], field="labels")}),
    Case("jsonl-line-over-the-line-limit", "{data}/train.jsonl:2: a line longer than 8388608 "
         "bytes", JSONL, task="generic",
         files={"train.jsonl": jsonl("pos") + '{"text": "' + "y" * 9_000_000 + '"}\n'
                + jsonl("neg")}),
    Case("jsonl-last-line-over-the-line-limit", "{data}/train.jsonl:2: a line longer than "
         "8388608 bytes", JSONL, task="generic",
         files={"train.jsonl": jsonl("pos") + "z" * 8_500_000}),
    # A full disk during the cache build names the entry, and leaves no temp folder.
    Case("disk-full-in-the-cache-build", "{out}/cache/generic_train_", task="generic",
         prepare=big_train, quiet=False, limit_writes=True),
]


results, test_bad_disk_output = table(CASES, "bad_disk_outputs")


def test_the_full_disk_names_the_error_and_leaves_no_cache_entry(results):
    dirs, (_, stderr, _, after) = results["disk-full-in-the-cache-build"]
    assert stderr.splitlines()[-1].endswith(": File too large"), stderr[-2000:]
    assert not [p for p in after if p.startswith("out/cache/generic_train_")
                and not p.endswith(".lock")]


def run(program, *args, cwd=ROOT):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, program), "--precision=fp32",
                           *map(str, args)], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=300)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr


FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-neg", "@SUM(A1)", "-1", "plain"]


def test_predictions_of_formula_labels_are_safe_cells_one_row_each(tiny_bert, tmp_path):
    """Labels a spreadsheet would run are written with a leading ', numbers stay numbers;
    predictions.tsv is a header and one row per example."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(jsonl(*FORMULAS * 2))
    (data / "test.jsonl").write_text(jsonl(*["x"] * 12))
    out = tmp_path / "out"
    run("run_classifier.py", "--task_name=generic", "--data_format=jsonl", f"--data_dir={data}",
        f"--output_dir={out}", f"--init_checkpoint={tiny_bert}", "--do_train", "--do_predict")
    lines = (out / "predictions.tsv").read_text().split("\n")
    assert lines[0] == "index\tprediction" and lines[-1] == "" and len(lines) == 14
    safe = {"'" + f for f in FORMULAS[:4]} | {"-1", "plain"}
    assert all(line.split("\t")[1] in safe for line in lines[1:-1]), lines


def test_write_predictions_escapes_every_kind_of_cell(tmp_path):
    from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL
    from training.evaluation import write_predictions
    labels = FORMULAS
    write_predictions(str(tmp_path), np.eye(len(labels), dtype=np.float32) * 9, labels,
                      SINGLE_LABEL)
    rows = (tmp_path / "predictions.tsv").read_text().splitlines()
    assert rows == ["index\tprediction"] + [f"{i}\t{table_cell(label)}"
                                            for i, label in enumerate(labels)]
    assert [row.split("\t")[1] for row in rows[1:5]] == ["'" + f for f in FORMULAS[:4]]
    write_predictions(str(tmp_path), np.array([[-0.5], [2.0]], np.float32), None, REGRESSION)
    assert (tmp_path / "predictions.tsv").read_text() == "index\tprediction\n0\t-0.5\n1\t2.0\n"
    write_predictions(str(tmp_path), np.array([[9, 9], [-9, 9]], np.float32), ["=a", "b"],
                      MULTI_LABEL)
    assert (tmp_path / "predictions.tsv").read_text() == "index\tprediction\n0\t'=a|b\n1\tb\n"


GUIDS_MODULE = '''from processors import ColaProcessor, InputExample, register_processor


@register_processor("guids")
class Guids(ColaProcessor):
    def get_dev_examples(self, data_dir):
        guids = ["line\\nbreak", "tab\\there", "=cmd|' /C calc'!A0", "back\\\\slash", "same",
                 "same", "line\\nbreak", "u\\u2028sep", "\\tlead"]
        return [InputExample(g, "the dog runs", None, "1") for g in guids]
'''


def test_extract_features_guids_stay_one_a_line_and_duplicates_are_warned(tiny_bert, tmp_path):
    (tmp_path / "guids.py").write_text(GUIDS_MODULE)
    (tmp_path / "data").mkdir()
    vectors = tmp_path / "v.npy"
    stderr = run("extract_features.py", f"--processor_module={tmp_path / 'guids.py'}",
                 "--task_name=guids", f"--data_dir={tmp_path / 'data'}",
                 f"--init_checkpoint={tiny_bert}", f"--output_vectors={vectors}", "--layers=-1")
    assert np.load(vectors).shape[0] == 9
    text = (tmp_path / "v.guids.txt").read_text(encoding="utf-8")
    assert text.split("\n") == ["line\\nbreak", "tab\\there", "'=cmd|' /C calc'!A0",
                                "back\\\\slash", "same", "same", "line\\nbreak",
                                "u\\u2028sep", "'\\tlead", ""]
    assert len(text.splitlines()) == 9
    warnings = [line for line in stderr.splitlines() if "repeat an earlier" in line]
    assert len(warnings) == 1 and "2 inputs repeat an earlier input's guid (the first: " \
        "'same')" in warnings[0], stderr[-2000:]


def test_duplicate_guids_warning_counts_and_names_the_first(caplog):
    from extract_features import warn_duplicate_guids
    with caplog.at_level(logging.WARNING):
        assert warn_duplicate_guids(["a", "b", "c"]) == 0
        assert not caplog.records
        assert warn_duplicate_guids(["a", "b", "b", "a", "b"]) == 3
    assert len(caplog.records) == 1 and "(the first: 'b')" in caplog.records[0].getMessage()


def test_a_task_name_that_is_a_path_never_leaves_the_cache_folder(tmp_path):
    """load_or_build, called with a name that is no plain name (a library caller's), keys
    the entry inside cache_dir all the same."""
    from processors.cache import load_or_build
    from processors.features import FeatureArrays
    cache = tmp_path / "a" / "cache"

    def chunks():
        yield FeatureArrays(lengths=np.array([2], np.int64),
                            input_ids=np.array([2, 3], np.int32),
                            segment_ids=np.zeros(2, np.int8))

    features = load_or_build(str(cache), "../../escaped_train", {"k": 1}, chunks)
    assert len(features) == 1 and sorted(os.listdir(tmp_path)) == ["a"]
    assert os.listdir(tmp_path / "a") == ["cache"]
    assert all(name.startswith("_.._escaped_train_") for name in os.listdir(cache))


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".", "..", ".hidden", "-flag", "a\nb",
                                  "x" * 101, "a b", "ü"])
def test_register_processor_refuses_names_that_are_not_plain(name):
    from processors import InputError, register_processor
    with pytest.raises(InputError, match=r"^register_processor\(.*\): task name .* is not a "
                       "plain name") as info:
        register_processor(name)
    assert "\n" not in str(info.value)
