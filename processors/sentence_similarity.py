"""The sentence-similarity processor: CSV rows `label,text_a,text_b`, no header."""

from .base import InputError
from .registry import PROCESSORS, register_processor
from .table import TableProcessor


@register_processor("sentence_similarity")
class SentenceSimilarityProcessor(TableProcessor):
    """Is text_b a paraphrase of text_a (1) or not (0)?

    train.csv and dev.csv rows are `label,text_a,text_b`. test.csv rows are
    `text_a,text_b`, or train's layout with a dummy label (as in Google's how-to),
    which predict ignores; one file keeps one layout. Quoted fields may hold commas.
    """

    file_names = {"train": "train.csv", "dev": "dev.csv", "test": "test.csv"}
    num_columns = {"train": 3, "dev": 3}
    delimiter = ","
    quotechar = '"'
    metric = "f1"

    def get_labels(self):
        return ["0", "1"]

    def read_split(self, path, split):
        """Rows as read; a test file's rows must all be 2 or all be 3 columns wide."""
        rows = super().read_split(path, split)
        return rows if split != "test" else self._same_width(path, rows)

    @staticmethod
    def _same_width(path, rows):
        width = None
        for line, row in rows:
            width = width or len(row)
            if len(row) != width or width not in (2, 3):
                raise InputError(f"{path}:{line}: expected {width if width in (2, 3) else 2} "
                                 f"columns, found {len(row)} (test rows are all text_a,text_b "
                                 "or all label,text_a,text_b)")
            yield line, row

    def parse_row(self, row, split):
        if split == "test":
            return row[-2], row[-1], None
        return row[1], row[2], row[0]


PROCESSORS["selfsim"] = SentenceSimilarityProcessor  # the name Google's how-to registers
