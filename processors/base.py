"""Examples and Google's abstract DataProcessor.

A processor implements Google's contract: `get_labels()` and
`get_{train,dev,test}_examples(data_dir)` returning `InputExample`s. That is all
the pipeline asks of it (`processors.examples` checks every example, whoever made
it). `_read_tsv` / `_read_csv` read files through the checked readers
(`processors.readers`): BOM, CRLF, bad UTF-8, NUL and blank lines are reported as
`file:line`. The shorter, declarative way to write a processor is
`processors.table.TableProcessor`.
"""

import abc
from dataclasses import dataclass
from typing import ClassVar, Iterator, Optional, Union

from modeling.errors import InputError  # noqa: F401 (re-exported)
from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL  # noqa: F401 (re-exported)

from .readers import read_table

SPLITS = ("train", "dev", "test")

Label = Union[str, tuple[str, ...], None]


@dataclass(frozen=True, init=False, slots=True)
class InputExample:
    """A single example: one text (or a pair) and its label (None for test).

    The label is a class name; for regression a number as written (e.g. "3.800");
    for multi-label a tuple of class names, possibly empty.
    """

    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Label = None

    def __init__(self, guid: str, text_a: str, text_b: Optional[str] = None,
                 label: Label = None):
        # The frozen dataclass's own __init__, each field set through its slot's own
        # setter rather than a lookup per field: a user's processor makes one per row.
        _set_guid(self, guid)
        _set_text_a(self, text_a)
        _set_text_b(self, text_b)
        _set_label(self, label)


_set_guid, _set_text_a, _set_text_b, _set_label = (
    vars(InputExample)[name].__set__ for name in ("guid", "text_a", "text_b", "label"))


def defines(cls: type, name: str, base: type) -> bool:
    """Whether `cls` or a class between it and `base` (excluded) defines `name`: a
    subclass's own method, not the one `base` gives it."""
    mro = cls.__mro__
    return any(name in vars(c) for c in mro[:mro.index(base)])


class DataProcessor(abc.ABC):
    """Google's base class for a dataset: its labels and its examples, split by split.

    Subclass it, implement `get_labels()` and the `get_*_examples(data_dir)` of the
    splits you run, and register the class in `PROCESSORS` (or with
    `@register_processor`). The class attributes tell the pipeline how to judge
    and read out the task.
    """

    metric: ClassVar[str] = "accuracy"
    problem_type: ClassVar[str] = SINGLE_LABEL
    label_separator: ClassVar[str] = "|"  # joins a multi-label row's names
    label_range: ClassVar[Optional[tuple[float, float]]] = None  # regression: the scores' scale
    task_name: str = ""  # the registered name; get_processor sets it on each instance
    # The options object the class takes (`from_options`), None for a class that takes none.
    options_type: ClassVar[Optional[type]] = None

    @classmethod
    def from_options(cls, options, data_dir: Optional[str] = None) -> "DataProcessor":
        """A new processor from its options (an `options_type` value, or None: the
        defaults) and the data dir; a class that takes no options is `cls()`."""
        return cls()

    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        """Gets a collection of `InputExample`s for the train set."""
        raise NotImplementedError()

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        """Gets a collection of `InputExample`s for the dev set."""
        raise NotImplementedError()

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        """Gets a collection of `InputExample`s for prediction (labels, if any, are ignored)."""
        raise NotImplementedError()

    def implements(self, split: str) -> bool:
        """Whether the class has a way to make this split's examples (the pipeline says
        what is missing before it reads anything): its own `get_{split}_examples`."""
        return defines(type(self), f"get_{split}_examples", DataProcessor)

    def stream_examples(self, data_dir: str, split: str) -> Optional[Iterator[InputExample]]:
        """The streaming hook: the split's examples read lazily, each checked as it is read
        (`processors.examples.check_example`; constant memory at any size), or None, as
        here: the pipeline then calls Google's `get_{split}_examples(data_dir)` and checks
        each example it returns. TableProcessor streams its files."""
        return None

    @abc.abstractmethod
    def get_labels(self) -> Optional[list[str]]:
        """The label names, whose order fixes the label ids; None for regression."""

    def settings(self) -> dict:
        """Options outside the class that shape the examples (recorded in run_config)."""
        return {}

    def describe_labels(self) -> str:
        """The labels in words, for `--task_name=help`."""
        labels = self.get_labels()
        return "one score (regression)" if labels is None else ", ".join(labels)

    def split_labels(self, field: str) -> tuple[str, ...]:
        """A multi-label field's names: "a|b" -> ("a", "b"); an empty field has none."""
        return tuple(n.strip() for n in field.split(self.label_separator)) if field.strip() else ()

    @classmethod
    def _read_tsv(cls, input_file: str, quotechar: Optional[str] = None) -> list[list[str]]:
        """Reads a tab separated value file (Google's helper): a list of rows of fields."""
        return read_table(input_file, "\t", quotechar)

    @classmethod
    def _read_csv(cls, input_file: str, quotechar: Optional[str] = '"') -> list[list[str]]:
        """Reads a comma separated value file, quoted fields allowed: a list of rows."""
        return read_table(input_file, ",", quotechar)
