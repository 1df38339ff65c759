"""The sentence-similarity processor: CSV rows `label,text_a,text_b`, no header."""

from .base import DataProcessor
from .registry import register_processor


@register_processor("sentence_similarity")
class SentenceSimilarityProcessor(DataProcessor):
    """Is text_b a paraphrase of text_a (1) or not (0)?

    train.csv and dev.csv rows are `label,text_a,text_b`; test.csv rows are
    `text_a,text_b` (test labels are unknown). Quoted fields may hold commas.
    """

    file_names = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv"}
    num_columns = {"train": 3, "dev": 3, "test": 2}
    delimiter = ","
    quotechar = '"'
    metric = "f1"

    def get_labels(self):
        return ["0", "1"]

    def parse_row(self, row, split):
        if split == "test":
            return row[0], row[1], None
        return row[1], row[2], row[0]
