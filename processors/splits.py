"""One split's examples for a run: what the run reads from them, from one pass or a record.

A run reads, before training, the examples' digest (the features cache key and
the resume signature), their count and whether any has a second text.
`SplitExamples` gets them from a pass that parses, checks and hashes every
example, or, for a built-in processor whose source key (`processors.sources`)
has an examples record (`processors.records`) in the cache folder, from that
record without parsing a row. Iterating the split (a features build, the
report's dev texts) parses it then, lazily, and checks it against the digest.
"""

import operator
from typing import Callable, Iterable, Iterator, Optional

from .base import DataProcessor, InputError, InputExample
from .digest import Chunk, ExamplesDigest, gc_paused
from .examples import open_split
from .records import read_record, write_record
from .sources import file_stamp, is_built_in, source_key

KEEP_EXAMPLES = 2_000_000  # a streamed split up to this size is parsed once (~0.3 KB each)
_TEXT_B = operator.attrgetter("text_b")


def _first_pair(chunk: list) -> Optional[InputExample]:
    """The chunk's first example with a second text, or None."""
    texts_b = chunk.columns[2] if type(chunk) is Chunk else list(map(_TEXT_B, chunk))
    if texts_b.count(None) == len(texts_b):
        return None
    return next(e for e, b in zip(chunk, texts_b) if b is not None)


def _verified(processor: DataProcessor, data_dir: str, split: str, digest: str
              ) -> Iterator[InputExample]:
    """The split read again, each chunk hashed as it goes: examples other than those the
    run checked (a file written meanwhile) fail the walk at its end (a features build
    is then discarded whole)."""
    check = ExamplesDigest()
    for chunk in open_split(processor, data_dir, split)[0]:
        check.update(chunk)
        yield from chunk
    if check.hexdigest() != digest:
        raise InputError(f"{type(processor).__name__}: the {split} examples changed while "
                         "the run read them (a file written meanwhile?); run it again")


class SplitExamples:
    """One split's examples: `digest`, `count` and `first_pair` (the first example with a
    text_b, or None), then iterable for a features build.

    `cache_dir` (the features cache folder) holds the examples records of built-in
    processors: a record of this split's source key is read instead of the pass
    (`overwrite`: never, as `--overwrite_cache` rebuilds); after a pass, `save_record`
    writes one (the program calls it once the cache folder may be written). The
    examples of a pass are kept for a build, up to `keep` of them; a longer streaming
    split is read again instead (constant memory). A processor's own list is always
    kept: it is in memory anyway, and its `get_*_examples` runs once.
    """

    def __init__(self, processor: DataProcessor, data_dir: str, split: str,
                 keep: int = KEEP_EXAMPLES, cache_dir: Optional[str] = None,
                 overwrite: bool = False):
        self.split, self.from_record, self._unsaved = split, False, None
        key = stamp = None
        if cache_dir and is_built_in(processor):
            stamp = file_stamp(processor.get_file_path(data_dir, split))
            key = source_key(processor, data_dir, split)
        record = None if key is None or overwrite else read_record(cache_dir, key)
        if record is not None:
            self.digest, self.count = record["examples_sha256"], record["count"]
            self.first_pair, self.from_record = record["first_pair"], True
            self._replay: Callable[[], Iterable[InputExample]] = (
                lambda: _verified(processor, data_dir, split, self.digest))
            return
        self._pass(processor, data_dir, split, keep)
        if key is not None and file_stamp(processor.get_file_path(data_dir, split)) == stamp:
            self._unsaved = (cache_dir, key)

    def _pass(self, processor: DataProcessor, data_dir: str, split: str, keep: int) -> None:
        """Parses, checks and hashes every example."""
        digest, kept, pair = ExamplesDigest(), [], None
        examples, streams = open_split(processor, data_dir, split)
        with gc_paused():
            for chunk in examples:
                digest.update(chunk)
                if pair is None:
                    pair = _first_pair(chunk)
                if kept is not None:
                    kept += chunk
                    if streams and len(kept) > keep:
                        kept = None
        self.digest, self.count, self.first_pair = digest.hexdigest(), digest.count, pair
        self._replay = ((lambda: kept) if kept is not None
                        else (lambda: _verified(processor, data_dir, split, self.digest)))

    def pairs(self) -> list[InputExample]:
        """[the first example with a second text], or []: what the token-type check needs."""
        return [] if self.first_pair is None else [self.first_pair]

    def save_record(self) -> None:
        """Writes the examples record a pass found missing (once; nothing otherwise)."""
        if self._unsaved is not None:
            cache_dir, key = self._unsaved
            write_record(cache_dir, key, self.digest, self.count, self.first_pair)
            self._unsaved = None

    def __iter__(self) -> Iterator[InputExample]:
        return iter(self._replay())
