"""The source key: a built-in processor's examples named by its file's bytes, not its rows.

A built-in processor (the exact class, one of this package's own: GLUE's, the
generic csv/tsv/jsonl ones, multi-label, sentence similarity) makes its examples
from nothing but its split's file and its own settings, with code this package
ships. Its examples are then a pure function of: the file's bytes (a streaming
sha256), the class (module and qualified name), `settings()`, the labels, the
problem type and what it reads with it (separator, range), the split, the CSV
reader's field limit, and `EXAMPLES_VERSION`, the version of the code that
shapes built-in examples (a test pins that code's sha256 with the version, and
fails when one changes without the other). Such a key finds the examples record
(`processors.records`) without parsing a row. Any other processor (a user's,
a subclass of a built-in, a class patched from outside) gets None: its code can
read anything, so only its examples themselves can key its features.
"""

import csv
import json
import os
import sys
import types
from typing import Optional

from modeling.sha256 import sha256_of

from .base import MULTI_LABEL, REGRESSION, DataProcessor, InputError
from .readers import open_data_file

# Bump when the code that turns a built-in processor's file into examples changes
# (tests/test_sources.py says when, and what to update).
EXAMPLES_VERSION = "3"
BUILT_IN_MODULES = ("processors.glue", "processors.generic", "processors.sentence_similarity")


def is_built_in(processor: DataProcessor) -> bool:
    """Whether `processor` is exactly one of this package's processor classes, streaming
    its files with this package's code: no subclass, no method patched in from elsewhere
    (on the class or the instance)."""
    cls = type(processor)
    module = sys.modules.get(cls.__module__)
    if cls.__module__ not in BUILT_IN_MODULES or getattr(module, cls.__qualname__, None) is not cls:
        return False
    for klass in cls.__mro__:
        for value in vars(klass).values():
            function = getattr(value, "__func__", value)
            if isinstance(function, types.FunctionType) and not (
                    function.__module__ or "").startswith("processors."):
                return False
    return not any(callable(v) for v in vars(processor).values())


def file_sha256(path: str) -> str:
    """sha256 of a regular data file's bytes (opened as the readers open it: a FIFO or a
    folder is an InputError, not a read that blocks)."""
    with open_data_file(path) as f:
        return sha256_of(f)


def file_stamp(path: str) -> Optional[tuple]:
    """(size, mtime in ns) of a file, None when it cannot be read: a change shows."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def source_key(processor: DataProcessor, data_dir: str, split: str) -> Optional[dict]:
    """The split's source key (a JSON-able dict), or None: not a built-in processor, or
    its file cannot be read (the examples pass then reports why, as without a key)."""
    if not is_built_in(processor):
        return None
    stream = processor.stream_examples(data_dir, split)  # (a generator: nothing read yet)
    if stream is None:
        return None
    stream.close()
    path = processor.get_file_path(data_dir, split)
    try:
        labels = processor.get_labels()
        key = {"examples_version": EXAMPLES_VERSION,
               "processor": f"{type(processor).__module__}.{type(processor).__qualname__}",
               "settings": processor.settings(), "split": split,
               "labels": None if labels is None else list(labels),
               "problem_type": processor.problem_type,
               "label_separator": (processor.label_separator
                                   if processor.problem_type == MULTI_LABEL else None),
               "label_range": (list(processor.label_range or ())
                               if processor.problem_type == REGRESSION else None),
               "field_size_limit": csv.field_size_limit(),
               "file_sha256": file_sha256(path)}
        json.dumps(key, allow_nan=False)
    except (InputError, OSError, TypeError, ValueError):
        return None
    return key
