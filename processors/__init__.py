"""Data processors: files -> InputExamples, and the task registry."""

from .base import DataProcessor, InputError, InputExample, read_rows
from .registry import PROCESSORS, get_processor, load_processor_module, register_processor
from . import glue, sentence_similarity  # noqa: F401  (registers the built-in tasks)
from .glue import ColaProcessor, MrpcProcessor
from .sentence_similarity import SentenceSimilarityProcessor

__all__ = [
    "ColaProcessor", "DataProcessor", "InputError", "InputExample", "MrpcProcessor",
    "PROCESSORS", "SentenceSimilarityProcessor", "get_processor", "load_processor_module",
    "read_rows", "register_processor",
]
