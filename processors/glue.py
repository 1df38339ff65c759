"""Processors for GLUE tasks, reading the original GLUE files."""

from .base import DataProcessor
from .registry import register_processor

MRPC_HEADER = ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String")


@register_processor("cola")
class ColaProcessor(DataProcessor):
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
class MrpcProcessor(DataProcessor):
    """MRPC: is sentence 2 a paraphrase of sentence 1? Files start with a BOM header."""

    num_columns = {"train": 5, "dev": 5, "test": 5}
    headers = {"train": MRPC_HEADER, "dev": MRPC_HEADER, "test": ("index",) + MRPC_HEADER[1:]}
    metric = "acc_and_f1"

    def get_labels(self):
        return ["0", "1"]

    def parse_row(self, row, split):
        return row[3], row[4], None if split == "test" else row[0]
