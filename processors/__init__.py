"""Data processors: files -> InputExamples, and the task registry."""

from .base import (MULTI_LABEL, REGRESSION, SINGLE_LABEL, DataProcessor, InputError,
                   InputExample)
from .readers import read_rows
from .examples import split_examples
from .registry import (PROCESSORS, describe_tasks, get_processor, load_processor_module,
                       register_processor)
from . import generic, glue, sentence_similarity  # noqa: F401  (registers the built-in tasks)
from .generic import GenericProcessor, MultiLabelCsvProcessor
from .glue import (ColaProcessor, MnliMismatchedProcessor, MnliProcessor, MrpcProcessor,
                   QnliProcessor, QqpProcessor, RteProcessor, Sst2Processor, StsbProcessor,
                   WnliProcessor, XnliProcessor)
from .sentence_similarity import SentenceSimilarityProcessor
from .table import TableProcessor

__all__ = [
    "ColaProcessor", "DataProcessor", "GenericProcessor", "InputError", "InputExample",
    "MULTI_LABEL", "MnliMismatchedProcessor", "MnliProcessor", "MrpcProcessor",
    "MultiLabelCsvProcessor", "PROCESSORS", "QnliProcessor", "QqpProcessor", "REGRESSION",
    "RteProcessor", "SINGLE_LABEL", "SentenceSimilarityProcessor", "Sst2Processor",
    "StsbProcessor", "TableProcessor", "WnliProcessor", "XnliProcessor", "describe_tasks",
    "get_processor", "load_processor_module", "read_rows", "register_processor",
    "split_examples",
]
