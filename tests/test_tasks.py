"""The rest of GLUE, XNLI, and the generic and multi-label processors for users' files."""

import os
from types import SimpleNamespace

import pytest

from conftest import glue_dir
from processors import (InputError, InputExample, MultiLabelCsvProcessor, XnliProcessor,
                        describe_tasks, get_processor)
from processors.builders import BertFeatures
from processors.cache import load_features
from processors.features import convert_examples_to_features
from processors.generic import TableOptions
from processors.glue import MNLI_COLUMNS, XNLI_COLUMNS


def write(folder, name, text):
    """Writes `text` (UTF-8, newlines as given) to folder/name, making folders; returns folder."""
    path = os.path.join(str(folder), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return str(folder)


def tsv(*rows):
    return "".join("\t".join(row) + "\n" for row in rows)


def examples(task, folder, split, **options):
    processor = get_processor(task, str(folder), TableOptions(**options))
    return processor.get_examples(str(folder), split)


# ------------------------------------------------------------ GLUE layouts (fixtures)

QQP_HEAD = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")


def test_qqp(tmp_path):
    write(tmp_path, "train.tsv", tsv(QQP_HEAD, ("7", "13", "14", "How do I cook rice?",
                                                "What is the best way to cook rice?", "1"),
                                     ("8", "15", "16", "Why is the sky blue?", "Is it raining?",
                                      "0")))
    write(tmp_path, "test.tsv", tsv(("id", "question1", "question2"), ("0", "Who?", "What?")))
    assert examples("qqp", tmp_path, "train") == [
        InputExample("train-0", "How do I cook rice?", "What is the best way to cook rice?", "1"),
        InputExample("train-1", "Why is the sky blue?", "Is it raining?", "0")]
    assert examples("qqp", tmp_path, "test") == [InputExample("test-0", "Who?", "What?")]
    assert get_processor("qqp").metric == "acc_and_f1"


def test_qqp_malformed_row_raises_with_line(tmp_path):
    # Real QQP train has rows like this (a question broken over two lines); never dropped.
    write(tmp_path, "train.tsv", tsv(QQP_HEAD, ("1", "2", "3", "A?", "B?", "0"),
                                     ("2", "4", "5", "How can I"), ("learn?", "C?", "1")))
    with pytest.raises(InputError, match=r"train\.tsv:3: expected 6 columns, found 4$"):
        examples("qqp", tmp_path, "train")


def mnli_row(n, label=None, dev=False):
    parse = ("( a )", "( b )", "(ROOT a)", "(ROOT b)")
    row = (str(n), "31193", "31193n", "government") + parse + (f"Premise {n}.", f"Hypo {n}.")
    if label is None:
        return row
    return row + (("neutral",) * 5 if dev else ("neutral",)) + (label,)


def write_mnli(folder):
    labels = [f"label{i}" for i in range(1, 6)]
    write(folder, "train.tsv", tsv(MNLI_COLUMNS + ("label1", "gold_label"),
                                   mnli_row(0, "contradiction"), mnli_row(1, "entailment")))
    for kind in ("matched", "mismatched"):
        write(folder, f"dev_{kind}.tsv", tsv(MNLI_COLUMNS + (*labels, "gold_label"),
                                             mnli_row(2 if kind == "matched" else 3, "neutral",
                                                      dev=True)))
        write(folder, f"test_{kind}.tsv", tsv(MNLI_COLUMNS, mnli_row(4), mnli_row(5)))


def test_mnli_matched_and_mismatched(tmp_path):
    write_mnli(tmp_path)
    assert examples("mnli", tmp_path, "train") == [
        InputExample("train-0", "Premise 0.", "Hypo 0.", "contradiction"),
        InputExample("train-1", "Premise 1.", "Hypo 1.", "entailment")]
    assert examples("mnli", tmp_path, "dev") == [
        InputExample("dev-0", "Premise 2.", "Hypo 2.", "neutral")]
    assert examples("mnli-mm", tmp_path, "dev") == [
        InputExample("dev-0", "Premise 3.", "Hypo 3.", "neutral")]
    assert len(examples("mnli-mm", tmp_path, "test")) == 2
    assert get_processor("mnli-mm").get_file_path("d", "test") == os.path.join(
        "d", "test_mismatched.tsv")
    assert get_processor("mnli").get_labels() == ["contradiction", "entailment", "neutral"]


def test_mnli_dev_needs_its_16_columns(tmp_path):
    write_mnli(tmp_path)
    write(tmp_path, "dev_matched.tsv", tsv(MNLI_COLUMNS + ("label1", "gold_label"),
                                           mnli_row(2, "neutral")))
    with pytest.raises(InputError, match=r"dev_matched\.tsv:1: expected header"):
        examples("mnli", tmp_path, "dev")


def test_qnli(tmp_path):
    write(tmp_path, "dev.tsv", tsv(("index", "question", "sentence", "label"),
                                   ("0", "Who wrote it?", "Ann wrote it.", "entailment")))
    write(tmp_path, "test.tsv", tsv(("index", "question", "sentence"), ("0", "Why?", "So.")))
    assert examples("qnli", tmp_path, "dev") == [
        InputExample("dev-0", "Who wrote it?", "Ann wrote it.", "entailment")]
    assert examples("qnli", tmp_path, "test") == [InputExample("test-0", "Why?", "So.")]
    write(tmp_path, "dev.tsv", tsv(("index", "sentence1", "sentence2", "label"),
                                   ("0", "A.", "B.", "entailment")))
    with pytest.raises(InputError, match="expected header"):
        examples("qnli", tmp_path, "dev")


def xnli_row(language, label, n):
    row = dict.fromkeys(XNLI_COLUMNS, "x")
    row.update(language=language, gold_label=label, sentence1=f"{language} premise {n}",
               sentence2=f"{language} hypothesis {n}")
    return tuple(row.values())


def write_xnli(folder, language="zh"):
    write(folder, f"multinli/multinli.train.{language}.tsv", tsv(
        ("premise", "hypo", "label"), ("p0", "h0", "contradictory"), ("p1", "h1", "neutral")))
    for split in ("dev", "test"):
        write(folder, f"XNLI-1.0/xnli.{split}.tsv", tsv(
            XNLI_COLUMNS, xnli_row("de", "neutral", 0), xnli_row("zh", "entailment", 1),
            xnli_row("de", "entailment", 2), xnli_row("zh", "contradiction", 3)))
    return str(folder)


def test_xnli_as_google_ran_it(tmp_path):
    write_xnli(tmp_path)
    assert examples("xnli", tmp_path, "train") == [
        InputExample("train-0", "p0", "h0", "contradiction"),
        InputExample("train-1", "p1", "h1", "neutral")]
    assert examples("xnli", tmp_path, "dev") == [
        InputExample("dev-0", "zh premise 1", "zh hypothesis 1", "entailment"),
        InputExample("dev-1", "zh premise 3", "zh hypothesis 3", "contradiction")]
    assert examples("xnli", tmp_path, "test") == [
        InputExample("test-0", "zh premise 1", "zh hypothesis 1"),
        InputExample("test-1", "zh premise 3", "zh hypothesis 3")]
    assert XnliProcessor.language == "zh"


def test_xnli_other_language_and_its_own_cache(tmp_path, tiny_bert):
    class GermanXnli(XnliProcessor):
        language = "de"
        task_name = "xnli"

    write_xnli(tmp_path, "de")
    german = GermanXnli()
    assert german.get_file_path("d", "train") == os.path.join("d", "multinli",
                                                              "multinli.train.de.tsv")
    assert [e.text_a for e in german.get_dev_examples(str(tmp_path))] == [
        "de premise 0", "de premise 2"]
    from modeling.tokenization import load_tokenizer
    vocab = os.path.join(tiny_bert, "vocab.txt")
    args = dict(data_dir=str(tmp_path), split="dev",
                builder=BertFeatures(load_tokenizer(vocab, True)), vocab_file=vocab,
                do_lower_case=True, max_seq_length=16, cache_dir=str(tmp_path / "cache"))
    assert load_features(XnliProcessor(), **args).labels.tolist() == [1, 0]
    assert load_features(german, **args).labels.tolist() == [2, 1]  # not the Chinese cache


def test_xnli_bad_row_of_another_language_still_raises(tmp_path):
    write_xnli(tmp_path)
    with open(tmp_path / "XNLI-1.0" / "xnli.dev.tsv", "a") as f:
        f.write("de\tneutral\tshort row\n")
    with pytest.raises(InputError, match=r"xnli\.dev\.tsv:6: expected 19 columns, found 3"):
        examples("xnli", tmp_path, "dev")


def test_stsb_is_regression_with_float_features(tiny_bert):
    from modeling.tokenization import load_tokenizer
    processor = get_processor("sts-b")
    assert processor.get_labels() is None and processor.problem_type == "regression"
    dev = processor.get_dev_examples(glue_dir("STS-B"))
    scores = [float(e.label) for e in dev]
    assert min(scores) == 0.0 and max(scores) == 5.0
    features = convert_examples_to_features(
        dev[:3], None, 32, load_tokenizer(os.path.join(tiny_bert, "vocab.txt"), True))
    assert [f.label_id for f in features] == scores[:3]


@pytest.mark.parametrize("label", ["high", "nan", "inf", ""])
def test_regression_label_must_be_a_finite_number(tmp_path, label):
    head = ("index", "genre", "filename", "year", "old_index", "source1", "source2",
            "sentence1", "sentence2", "score")
    write(tmp_path, "train.tsv", tsv(head, ("0", "g", "f", "2012", "1", "s", "s", "A.", "B.",
                                            label)))
    with pytest.raises(InputError, match=r"train\.tsv:2: label '.*' is not a finite number"):
        examples("sts-b", tmp_path, "train")


# ------------------------------------------------------------ generic files

@pytest.mark.parametrize("data_format,files", [
    ("csv", {"train.csv": 'id,review,label\n1,"Great, really.",pos\n2,Bad.,neg\n3,Fine.,pos\n',
             "test.csv": "id,review\n4,Meh.\n"}),
    ("tsv", {"train.tsv": 'id\treview\tlabel\n1\t"Great, really."\tpos\n2\tBad.\tneg\n'
                          "3\tFine.\tpos\n",
             "test.tsv": "id\treview\tlabel\n4\tMeh.\tneg\n"}),
    ("jsonl", {"train.jsonl": '{"review": "Great, really.", "label": "pos"}\n'
                              '{"review": "Bad.", "label": "neg", "x": 1}\n'
                              '{"review": "Fine.", "label": "pos"}\n',
               "test.jsonl": '{"review": "Meh."}\n'}),
])
def test_generic_formats(tmp_path, data_format, files):
    for name, text in files.items():
        write(tmp_path, name, text)
    options = dict(data_format=data_format, text_a_column="review")
    processor = get_processor("generic", str(tmp_path), TableOptions(**options))
    assert processor.get_labels() == ["neg", "pos"]  # inferred from train, sorted
    text = '"Great, really."' if data_format == "tsv" else "Great, really."
    assert processor.get_train_examples(str(tmp_path)) == [
        InputExample("train-0", text, None, "pos"), InputExample("train-1", "Bad.", None, "neg"),
        InputExample("train-2", "Fine.", None, "pos")]
    assert processor.get_test_examples(str(tmp_path)) == [InputExample("test-0", "Meh.")]


def test_generic_without_header_pairs_and_given_labels(tmp_path):
    write(tmp_path, "train.csv", "b,A man.,A person.\na,One.,Two.\n")
    processor = get_processor("generic", str(tmp_path), TableOptions(
        has_header=False, text_a_column="1", text_b_column="2", label_column="0",
        labels=["b", "a", "c"]))
    assert processor.get_labels() == ["b", "a", "c"]
    assert processor.get_train_examples(str(tmp_path)) == [
        InputExample("train-0", "A man.", "A person.", "b"),
        InputExample("train-1", "One.", "Two.", "a")]


def test_generic_jsonl_integer_labels(tmp_path):
    write(tmp_path, "dev.jsonl", '{"text": "Yes.", "label": 1}\n{"text": "No.", "label": 0}\r\n')
    options = TableOptions(data_format="jsonl", labels=["0", "1"])
    processor = get_processor("generic", None, options)
    assert [e.label for e in processor.get_dev_examples(str(tmp_path))] == ["1", "0"]


BAD_GENERIC = {
    "missing-column": ({}, "train.csv", "sentence,label\nA.,x\n",
                       "train.csv:1: no column 'text' (--text_a_column) in the header "
                       "sentence, label"),
    "ragged-row": ({}, "train.csv", "text,label\nA.,x\nB.,y,z\n",
                   "train.csv:3: expected 2 columns, found 3"),
    "no-header-ragged": (dict(has_header=False, text_a_column="0", label_column="1"),
                         "train.csv", "A.,x\nB.\n", "train.csv:2: expected 2 columns, found 1"),
    "no-header-short": (dict(has_header=False, text_a_column="0", label_column="3"),
                        "train.csv", "A.,x\n", "train.csv:1: no column '3' (--label_column)"),
    "empty-label": (dict(labels=["x", "y"]), "train.csv", "text,label\nA.,x\nB.,\n",
                    "train.csv:3: unknown label ''; expected one of x, y"),
    "bad-json": (dict(data_format="jsonl"), "train.jsonl", '{"text": "A.", "label": "x"}\n{"text"',
                 "train.jsonl:2: not valid JSON: Expecting ':' delimiter"),
    "json-list": (dict(data_format="jsonl"), "train.jsonl", '["A.", "x"]\n',
                  "train.jsonl:1: expected a JSON object, found list"),
    "json-missing": (dict(data_format="jsonl", labels=["x", "y"]), "train.jsonl",
                     '{"text": "A."}\n', "train.jsonl:1: no column 'label' (--label_column)"),
    "json-null-text": (dict(data_format="jsonl", labels=["x", "y"]), "train.jsonl",
                       '{"text": null, "label": "x"}\n',
                       "train.jsonl:1: --text_a_column field is null, not text"),
    "json-blank-line": (dict(data_format="jsonl", labels=["x", "y"]), "train.jsonl",
                        '{"text": "A.", "label": "x"}\n\n', "train.jsonl:2: blank line"),
    "one-label": ({}, "train.csv", "text,label\nA.,x\nB.,x\n",
                  "train.csv: labels: needs at least 2 distinct, non-empty labels, found 'x'"),
}


@pytest.mark.parametrize("options,name,text,message", BAD_GENERIC.values(),
                         ids=BAD_GENERIC.keys())
def test_generic_bad_rows(tmp_path, options, name, text, message):
    write(tmp_path, name, text)
    with pytest.raises(InputError) as info:
        examples("generic", tmp_path, "train", **options)
    assert str(info.value) == os.path.join(str(tmp_path), message)


@pytest.mark.parametrize("task,options,message", [
    ("generic", dict(data_format="xml"), "--data_format=xml: expected one of csv, tsv, jsonl"),
    ("generic", dict(has_header=False), "--text_a_column=text: without a header, columns are "
                                        "numbers (0 is the first)"),
    ("generic", dict(data_format="jsonl", has_header=False), "--nohas_header: JSON Lines"),
    ("generic", dict(labels=["a", "a"]), "--labels=a,a: needs at least 2 distinct"),
    ("generic", dict(labels=["a"]), "--labels=a: needs at least 2 distinct"),
    ("cola", dict(labels=["a", "b"]),
     "--labels=a,b: not used by --task_name=cola (only by generic, multilabel_csv)"),
    ("sts-b", dict(text_a_column="x"), "--text_a_column=x: not used by --task_name=sts-b"),
])
def test_processor_options_are_checked(task, options, message):
    """Through the program: its flags become TableOptions, refused for a task without any."""
    import run_classifier
    flags = dict(data_format=None, text_a_column=None, text_b_column=None, label_column=None,
                 labels=None, has_header=None)
    s = SimpleNamespace(task_name=task, data_dir="data", **{**flags, **options})
    with pytest.raises(InputError) as info:
        run_classifier.make_processor(s)
    assert str(info.value).startswith(message)


def test_options_reach_the_processor_by_value():
    options = TableOptions(data_format="tsv", text_a_column="a", label_column="y",
                           labels=["p", "q"])
    processor = get_processor("GENERIC", "data", options)
    assert processor.task_name == "generic" and processor.labels == ["p", "q"]
    assert processor.settings() == {"data_format": "tsv", "has_header": True,
                                    "text_a_column": "a", "text_b_column": None,
                                    "label_column": "y"}
    assert get_processor("cola", "data", None).settings() == {}  # a task without options


def test_labels_need_a_train_file_when_not_given(tmp_path):
    processor = get_processor("generic", str(tmp_path))
    with pytest.raises(InputError, match=r"--labels: not given, and there is no .*train\.csv"):
        processor.get_labels()


def test_generic_settings_enter_the_cache_key(tmp_path, tiny_bert):
    from modeling.tokenization import load_tokenizer
    write(tmp_path, "train.csv", "text,other,label\nA man.,The big red cat.,x\nThe dog.,A dog.,y\n")
    vocab = os.path.join(tiny_bert, "vocab.txt")
    args = dict(data_dir=str(tmp_path), split="train",
                builder=BertFeatures(load_tokenizer(vocab, True)), vocab_file=vocab,
                do_lower_case=True, max_seq_length=16, cache_dir=str(tmp_path / "cache"))
    first = load_features(get_processor("generic", str(tmp_path)), **args)
    other = load_features(get_processor("generic", str(tmp_path),
                                        TableOptions(text_a_column="other")), **args)
    assert first.input_ids.tolist() != other.input_ids.tolist()
    entries = [n for n in os.listdir(tmp_path / "cache")  # (not the examples records)
               if not n.endswith((".lock", ".json"))]
    assert len(entries) == 2


# ------------------------------------------------------------ multi-label

def test_multilabel_csv(tmp_path):
    write(tmp_path, "train.csv", 'text,labels\n"Rain, then sun.",weather|travel\n'
                                 "Goal!,sports\nNothing here.,\nTrain delays., travel \n")
    write(tmp_path, "test.csv", "text\nSnow.\n")
    processor = get_processor("multilabel_csv", str(tmp_path))
    assert isinstance(processor, MultiLabelCsvProcessor)
    assert processor.get_labels() == ["sports", "travel", "weather"]
    train = processor.get_train_examples(str(tmp_path))
    assert train == [InputExample("train-0", "Rain, then sun.", None, ("weather", "travel")),
                     InputExample("train-1", "Goal!", None, ("sports",)),
                     InputExample("train-2", "Nothing here.", None, ()),
                     InputExample("train-3", "Train delays.", None, ("travel",))]
    assert len(set(train)) == 4  # examples stay frozen and hashable
    assert processor.get_test_examples(str(tmp_path)) == [InputExample("test-0", "Snow.")]


def test_multilabel_features_are_multi_hot(tmp_path, tiny_bert):
    from modeling.tokenization import load_tokenizer
    tokenizer = load_tokenizer(os.path.join(tiny_bert, "vocab.txt"), True)
    batch = [InputExample("train-0", "a dog", None, ("c", "a")),
             InputExample("train-1", "a cat", None, ())]
    features = convert_examples_to_features(batch, ["a", "b", "c"], 16, tokenizer)
    assert [f.label_id for f in features] == [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]


def test_multilabel_jsonl_lists(tmp_path):
    write(tmp_path, "train.jsonl", '{"text": "A.", "labels": ["x", "y"]}\n'
                                   '{"text": "B.", "labels": "y"}\n{"text": "C.", "labels": []}\n')
    processor = get_processor("multilabel_csv", str(tmp_path), TableOptions(data_format="jsonl"))
    assert [e.label for e in processor.get_train_examples(str(tmp_path))] == [
        ("x", "y"), ("y",), ()]


@pytest.mark.parametrize("row,message", [
    ("A.,x|z", "train.csv:3: unknown label 'z'; expected one of x, y"),
    ("A.,x|x", "train.csv:3: label 'x' given twice"),
    ("A.,x||y", "train.csv:3: empty label name in 'x||y' (labels are '|'-separated)"),
])
def test_multilabel_bad_labels(tmp_path, row, message):
    write(tmp_path, "train.csv", f"text,labels\nB.,x|y\n{row}\n")
    with pytest.raises(InputError) as info:
        examples("multilabel_csv", tmp_path, "train", labels=["x", "y"])
    assert str(info.value).startswith(os.path.join(str(tmp_path), message))


def test_describe_tasks_lists_every_task():
    lines = describe_tasks().splitlines()
    assert lines[0].split() == ["task", "problem_type", "metrics", "labels"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == ["cola", "generic", "mnli", "mnli-mm", "mrpc", "multilabel_csv",
                            "qnli", "qqp", "rte", "selfsim", "sentence_similarity", "sst-2",
                            "sts-b", "wnli", "xnli"]
    assert "regression" in rows["sts-b"] and "corr, pearson, spearmanr" in rows["sts-b"]
    assert "micro_f1, macro_f1, exact_match" in rows["multilabel_csv"]
    assert rows["mnli"].endswith("contradiction, entailment, neutral")
    assert "acc_and_f1, accuracy, f1" in rows["qqp"]


def test_multilabel_sample_data_is_what_its_script_makes(tmp_path, monkeypatch):
    import importlib.util
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
    spec = importlib.util.spec_from_file_location("make_multilabel",
                                                  os.path.join(root, "make_multilabel.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    monkeypatch.setattr(script, "OUT_DIR", str(tmp_path))
    script.main()
    for name in ("train.csv", "dev.csv", "test.csv"):
        with open(os.path.join(root, "multilabel", name), "rb") as f:
            assert (tmp_path / name).read_bytes() == f.read(), name
    processor = get_processor("multilabel_csv", str(tmp_path))
    assert processor.get_labels() == ["food", "music", "sports", "travel", "weather"]
    counts = [len(processor.get_examples(str(tmp_path), s)) for s in ("train", "dev", "test")]
    assert counts == [400, 100, 100]
    train = processor.get_train_examples(str(tmp_path))
    assert {len(e.label) for e in train} == {0, 1, 2, 3}
