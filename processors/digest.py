"""The examples' digest (the features cache's key) and the chunks examples travel in.

The digest hashes each field of the examples (guid, text_a, text_b, label) as a
column: the column's texts concatenated, and apart from them their lengths. The
lengths cut the texts back into fields, so two different lists of examples never
give the same input to sha256, whatever their texts hold (separators, quotes,
newlines); chunk boundaries do not matter. Column by column, each chunk is a few
C calls, not a Python step per example.
"""

import array
import contextlib
import gc
import hashlib
import operator
import sys
from typing import Iterable, Iterator

CHUNK = 4096  # examples hashed, checked and tokenized together
FIELDS = tuple(map(operator.attrgetter, ("guid", "text_a", "text_b", "label")))
NONE, TUPLE, OTHER = -1, -2, -3  # length codes of what is not a str


def _int64(values) -> bytes:
    """Little-endian int64s (the same bytes on every machine)."""
    numbers = array.array("q", values)
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers.tobytes()


def _encode(value, sizes: list, parts: list) -> None:
    """One field that is not plainly text: None as NONE; a tuple (multi-label) as TUPLE,
    its size, then each item; anything else as OTHER then its type and repr, as text."""
    if isinstance(value, str):
        sizes.append(len(value))
        parts.append(value)
    elif value is None:
        sizes.append(NONE)
    elif type(value) is tuple:
        sizes += (TUPLE, len(value))
        for item in value:
            _encode(item, sizes, parts)
    else:
        text = f"{type(value).__qualname__}:{value!r}"
        sizes += (OTHER, len(text))
        parts.append(text)


class Chunk(list):
    """Checked examples that carry their fields as columns (guids, texts_a, texts_b,
    labels): taken once for the checks, then read by the digest and the pair search."""

    def __init__(self, examples: list, columns: tuple):
        super().__init__(examples)
        self.columns = columns


def columns(examples: list) -> tuple:
    """(guids, texts_a, texts_b, labels) of a list of examples: a Chunk's own, else
    taken now."""
    if type(examples) is Chunk:
        return examples.columns
    return tuple(tuple(map(field, examples)) for field in FIELDS)


class ExamplesDigest:
    """sha256 of examples (guid, text_a, text_b, label, in order): the features' input."""

    VERSION = b"examples digest 2\n"

    def __init__(self):
        self._texts = [hashlib.sha256() for _ in range(4)]
        self._sizes = [hashlib.sha256() for _ in range(4)]
        self.count = 0

    def update(self, examples: list) -> None:
        if not examples:
            return
        for texts, sizes, column in zip(self._texts, self._sizes, columns(examples)):
            try:
                joined = "".join(column)  # (every field a str: the common case)
            except TypeError:
                joined = None
            if joined is not None:
                texts.update(joined.encode("utf-8", "surrogatepass"))
                sizes.update(_int64(list(map(len, column))))  # (a list: array fills faster)
            elif column.count(None) == len(column):
                sizes.update(_int64([NONE]) * len(column))
            else:
                lengths, parts = [], []
                for value in column:
                    _encode(value, lengths, parts)
                texts.update("".join(parts).encode("utf-8", "surrogatepass"))
                sizes.update(_int64(lengths))
        self.count += len(examples)

    def hexdigest(self) -> str:
        final = hashlib.sha256(self.VERSION + b"%d\n" % self.count)
        for h in self._texts + self._sizes:
            final.update(h.digest())
        return final.hexdigest()


def chunks(examples: Iterable, size: int = CHUNK) -> Iterator[list]:
    """Lists of up to `size` examples (a list is sliced, anything else walked)."""
    if type(examples) is list:
        for start in range(0, len(examples), size):
            yield examples[start:start + size]
        return
    chunk = []
    for example in examples:
        chunk.append(example)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextlib.contextmanager
def gc_paused():
    """Pauses the cyclic garbage collector: a pass that keeps millions of acyclic
    examples would otherwise trigger it over and over."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
