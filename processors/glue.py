"""Processors for GLUE tasks (and Google's XNLI), reading the original files.

Headers are checked, and every row must have its header's width: GLUE's own
loaders skip malformed rows (real QQP train has some); these raise at file:line.
"""

import os

from .base import REGRESSION
from .registry import register_processor
from .table import TableProcessor

MRPC_HEADER = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")
QQP_HEADER = ("id", "qid1", "qid2", "question1", "question2", "is_duplicate")
MNLI_COLUMNS = ("index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2")
XNLI_COLUMNS = ("language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
                "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID",
                "pairID", "genre", "label1", "label2", "label3", "label4", "label5",
                "sentence1_tokenized", "sentence2_tokenized", "match")


@register_processor("cola")
class ColaProcessor(TableProcessor):
    """CoLA: is a sentence grammatical (1) or not (0)? Train/dev have no header."""

    num_columns = {"train": 4, "dev": 4, "test": 2}
    headers = {"test": ("index", "sentence")}
    metric = "mcc"

    def get_labels(self):
        return ["0", "1"]

    def parse_row(self, row, split):
        if split == "test":
            return row[1], None, None
        return row[3], None, row[1]


@register_processor("mrpc")
class MrpcProcessor(TableProcessor):
    """MRPC: is sentence 2 a paraphrase of sentence 1? Files start with a BOM header."""

    num_columns = {"train": 5, "dev": 5, "test": 5}
    headers = {"train": MRPC_HEADER, "dev": MRPC_HEADER, "test": ("index",) + MRPC_HEADER[1:]}
    metric = "acc_and_f1"

    def get_labels(self):
        return ["0", "1"]

    def parse_row(self, row, split):
        return row[3], row[4], None if split == "test" else row[0]


def _headers(*columns: str, label: str = "label") -> dict:
    """Train and dev headers end with the label column; test's stops before it."""
    return {"train": columns + (label,), "dev": columns + (label,), "test": columns}


@register_processor("sst-2")
class Sst2Processor(TableProcessor):
    """SST-2: is a movie-review phrase positive (1) or negative (0)?"""

    headers = {"train": ("sentence", "label"), "dev": ("sentence", "label"),
               "test": ("index", "sentence")}

    def get_labels(self):
        return ["0", "1"]

    def parse_row(self, row, split):
        return (row[1], None, None) if split == "test" else (row[0], None, row[1])


@register_processor("sts-b")
class StsbProcessor(TableProcessor):
    """STS-B: how alike in meaning are two sentences, from 0 to 5? A regression task."""

    headers = _headers("index", "genre", "filename", "year", "old_index", "source1", "source2",
                       "sentence1", "sentence2", label="score")
    problem_type = REGRESSION
    metric = "corr"
    label_range = (0.0, 5.0)

    def get_labels(self):
        return None

    def parse_row(self, row, split):
        return row[7], row[8], None if split == "test" else row[9]


@register_processor("qqp")
class QqpProcessor(TableProcessor):
    """QQP: do two Quora questions ask the same thing (1) or not (0)?"""

    headers = {"train": QQP_HEADER, "dev": QQP_HEADER, "test": ("id", "question1", "question2")}
    metric = "acc_and_f1"

    def get_labels(self):
        return ["0", "1"]

    def parse_row(self, row, split):
        return (row[1], row[2], None) if split == "test" else (row[3], row[4], row[5])


@register_processor("rte")
class RteProcessor(TableProcessor):
    """RTE: does sentence1 entail sentence2?"""

    headers = _headers("index", "sentence1", "sentence2")

    def get_labels(self):
        return ["entailment", "not_entailment"]

    def parse_row(self, row, split):
        return row[1], row[2], None if split == "test" else row[3]


@register_processor("qnli")
class QnliProcessor(RteProcessor):
    """QNLI: does the sentence answer the question? RTE's layout and labels."""

    headers = _headers("index", "question", "sentence")


@register_processor("wnli")
class WnliProcessor(RteProcessor):
    """WNLI: with the pronoun resolved, does sentence1 entail sentence2 (1) or not (0)?"""

    def get_labels(self):
        return ["0", "1"]


@register_processor("mnli")
class MnliProcessor(TableProcessor):
    """MultiNLI, matched dev/test: does sentence1 entail, contradict or not bear on sentence2?"""

    file_names = {"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"}
    headers = {"train": MNLI_COLUMNS + ("label1", "gold_label"),
               "dev": MNLI_COLUMNS + tuple(f"label{i}" for i in range(1, 6)) + ("gold_label",),
               "test": MNLI_COLUMNS}

    def get_labels(self):
        return ["contradiction", "entailment", "neutral"]

    def parse_row(self, row, split):
        return row[8], row[9], None if split == "test" else row[-1]


@register_processor("mnli-mm")
class MnliMismatchedProcessor(MnliProcessor):
    """MultiNLI with the mismatched (other genres) dev and test sets."""

    file_names = {"train": "train.tsv", "dev": "dev_mismatched.tsv",
                  "test": "test_mismatched.tsv"}


@register_processor("xnli")
class XnliProcessor(TableProcessor):
    """XNLI as Google ran it: translated MultiNLI train, XNLI dev/test in one language.

    Set `language` (as in Google's code) for a language other than Chinese.
    """

    language = "zh"
    file_names = {"train": os.path.join("multinli", "multinli.train.{language}.tsv"),
                  "dev": os.path.join("XNLI-1.0", "xnli.dev.tsv"),
                  "test": os.path.join("XNLI-1.0", "xnli.test.tsv")}
    headers = {"train": ("premise", "hypo", "label"), "dev": XNLI_COLUMNS, "test": XNLI_COLUMNS}

    def get_file_path(self, data_dir, split):
        return os.path.join(data_dir, self.file_names[split].format(language=self.language))

    def settings(self):
        return {"language": self.language}

    def get_labels(self):
        return ["contradiction", "entailment", "neutral"]

    def parse_row(self, row, split):
        if split == "train":
            return row[0], row[1], "contradiction" if row[2] == "contradictory" else row[2]
        return (row[6], row[7], row[1]) if row[0] == self.language else None
