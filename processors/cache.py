"""The features cache: unpadded feature arrays on disk, keyed by the examples themselves.

The key hashes everything that shapes the features: the examples' digest (guid,
text_a, text_b, label, in order, as the processor produced them; for a built-in
processor an examples record gives it without a pass, `processors.splits`), the
label list, the vocab's bytes, `do_lower_case`, `max_seq_length`, the features
format version, what the model family's layout adds (`FeatureBuilder.key`: another
family's tokenizer files' bytes) and, with `--long_text=windows`, the stride; no
file path and no file bytes, so a changed processor or a file only an override
reads can never give stale features. An entry is a folder of raw arrays, built
chunk by chunk (bounded memory at any size) in a temp folder that is renamed
when whole. `features.json`, written last, records the key and each array's
dtype, shape and sha256, so a corrupt or truncated entry is detected and
rebuilt. Windowed entries add `doc_offsets` (window rows -> documents) and
`doc_lengths`. Arrays are memory-mapped on load. A file lock (modeling.disk's)
lets two processes ask for the same entry at once. Entries are named by the
task's name made path-safe and the key's digest: no name leaves the cache folder.
"""

import json
import logging
import os
import time
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from modeling.disk import atomic_folder, atomic_write_text, remove_temp_files
from modeling.sha256 import sha256_file
from modeling.locks import file_lock

from .builders import FeatureBuilder
from .cache_keys import ARRAYS, SIDECAR, entry_path, split_key
from .digest import chunks
from .features import FeatureArrays, FeatureRow, InputFeatures, log_examples, padded
from .splits import SplitExamples
from .windows import Windows, describe

logger = logging.getLogger(__name__)


class FeatureSet(torch.utils.data.Dataset):
    """Variable-length features stored flat: ids, segment ids, row offsets, labels.

    The arguments are an entry's arrays (its files' names): `offsets[i]:offsets[i + 1]`
    is row i. `labels` is a numpy array (class ids, scores or multi-hot rows), None
    for test. With windows, rows are windows: `doc_offsets` maps them to documents
    (else None), and `pooling` is how predictions pool a document's windows.
    """

    def __init__(self, input_ids: np.ndarray, segment_ids: np.ndarray, offsets: np.ndarray,
                 label_ids: Optional[np.ndarray] = None, doc_offsets: Optional[np.ndarray] = None,
                 doc_lengths: Optional[np.ndarray] = None, pooling: str = "mean"):
        self.input_ids = torch.from_numpy(input_ids)
        self.segment_ids = torch.from_numpy(segment_ids)
        self.offsets, self.labels = offsets, label_ids
        self.doc_offsets, self.doc_lengths = doc_offsets, doc_lengths
        self.pooling = pooling

    @classmethod
    def from_arrays(cls, arrays: FeatureArrays, pooling: str = "mean") -> "FeatureSet":
        """A builder's rows (in memory, not cached)."""
        doc_offsets = None if arrays.windows is None else _offsets(arrays.windows)
        return cls(arrays.input_ids, arrays.segment_ids, _offsets(arrays.lengths),
                   arrays.label_ids, doc_offsets, arrays.doc_lengths, pooling)

    @classmethod
    def from_features(cls, features: Sequence[InputFeatures]) -> "FeatureSet":
        lengths = np.array([len(f.input_ids) for f in features], np.int64)
        labels = None
        if features and features[0].label_id is not None:
            labels = [f.label_id for f in features]
            labels = np.array(labels, np.int64 if isinstance(labels[0], int) else np.float32)
        return cls(np.array([i for f in features for i in f.input_ids], np.int32),
                   np.array([s for f in features for s in f.segment_ids], np.int8),
                   _offsets(lengths), labels)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> FeatureRow:
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return FeatureRow(self.input_ids[start:end], self.segment_ids[start:end],
                          None if self.labels is None else self.labels[i])

    def batch(self, indices: Sequence[int]) -> dict:
        """`collate([self[i] for i in indices])`: the rows' tokens gathered from the flat
        arrays at once, then `padded`, instead of copies row by row."""
        rows = np.asarray(indices, dtype=np.int64)
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        before = np.cumsum(lengths) - lengths  # (each row's first place in the batch)
        positions = np.arange(lengths.sum()) + np.repeat(starts - before, lengths)
        return padded(self.input_ids.numpy()[positions], self.segment_ids.numpy()[positions],
                      lengths, None if self.labels is None else np.asarray(self.labels[rows]))


def _offsets(counts: np.ndarray) -> np.ndarray:
    """0 and the running total of `counts`: where each row (or document) starts, and the end."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


class _Writer:
    """Appends chunks of feature arrays to raw files in a folder."""

    def __init__(self, folder: str):
        self.folder, self.files, self.shapes, self.rows, self.end = folder, {}, {}, 0, 0
        self._append("offsets", np.zeros(1, np.int64))

    def _append(self, name: str, array: np.ndarray) -> None:
        if name not in self.files:
            self.files[name] = open(os.path.join(self.folder, name + ".bin"), "wb")
            self.shapes[name] = [0, *array.shape[1:]], array.dtype.str
        self.files[name].write(np.ascontiguousarray(array).tobytes())
        self.shapes[name][0][0] += len(array)

    def add(self, arrays: FeatureArrays) -> None:
        offsets = self.end + np.cumsum(arrays.lengths)
        self.end = int(offsets[-1]) if len(offsets) else self.end
        self._append("offsets", offsets.astype(np.int64))
        self._append("input_ids", arrays.input_ids)
        self._append("segment_ids", arrays.segment_ids)
        for name, array in (("label_ids", arrays.label_ids), ("doc_lengths", arrays.doc_lengths)):
            if array is not None:
                self._append(name, array)
        if arrays.windows is not None:
            if "doc_offsets" not in self.files:
                self._append("doc_offsets", np.zeros(1, np.int64))
            self._append("doc_offsets", (self.rows + np.cumsum(arrays.windows)).astype(np.int64))
        self.rows += len(arrays.lengths)

    def close(self) -> dict:
        """Closes every file (atomic_folder fsyncs them); returns each array's dtype,
        shape and sha256."""
        described = {}
        for name, f in self.files.items():
            f.close()
            shape, dtype = self.shapes[name]
            described[name] = {"dtype": dtype, "shape": shape,
                               "sha256": sha256_file(os.path.join(self.folder, name + ".bin"))}
        return described

    def abandon(self) -> None:
        """Closes what is still open (a failed build), so the folder can go."""
        for f in self.files.values():
            if not f.closed:
                try:
                    f.close()
                except OSError:  # the write that failed is reported, not this flush
                    pass


def _build(path: str, key_parts: dict, build_chunks: Iterator[FeatureArrays]) -> FeatureSet:
    """Writes an entry in core's temp folder, which replaces `path` when whole (an
    OSError, a full disk say, names `path` and leaves no temp folder)."""
    with atomic_folder(path) as tmp:
        writer = _Writer(tmp)
        try:
            for arrays in build_chunks:
                writer.add(arrays)
            described = writer.close()
        finally:
            writer.abandon()
        sidecar = {"key": key_parts, "num_examples": writer.rows, "arrays": described}
        atomic_write_text(os.path.join(tmp, SIDECAR),
                          json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
    return _map(path, sidecar)


def _map(path: str, sidecar: dict) -> FeatureSet:
    """The entry's arrays, memory-mapped copy-on-write (pages are read as they are used)."""
    arrays = {}
    for name, info in sidecar["arrays"].items():
        shape = tuple(info["shape"])
        file = os.path.join(path, name + ".bin")
        arrays[name] = (np.memmap(file, np.dtype(info["dtype"]), "c", shape=shape)
                        if shape[0] else np.zeros(shape, np.dtype(info["dtype"])))
    return FeatureSet(**arrays)  # (names checked against ARRAYS)


def _load(path: str) -> Optional[FeatureSet]:
    """Loads an entry, or returns None when it is missing or corrupt."""
    if not os.path.exists(path):
        return None
    try:
        with open(os.path.join(path, SIDECAR)) as f:
            sidecar = json.load(f)
        unknown = set(sidecar["arrays"]) - ARRAYS
        if unknown:
            raise ValueError(f"{SIDECAR} names unknown arrays {sorted(unknown)}")
        for name, info in sidecar["arrays"].items():
            if sha256_file(os.path.join(path, name + ".bin")) != info["sha256"]:
                raise ValueError(f"{name}: sha256 does not match {SIDECAR}")
        features = _map(path, sidecar)
        if len(features) != sidecar["num_examples"]:
            raise ValueError(f"row count does not match {SIDECAR}")
    except (OSError, ValueError, KeyError, TypeError) as e:
        logger.warning("Cache entry %s is corrupt (%s); rebuilding it", path, e)
        return None
    logger.info("Loaded %d features from cache %s", len(features), path)
    return features


def load_or_build(cache_dir: str, name: str, key_parts: dict,
                  build_chunks: Callable[[], Iterator[FeatureArrays]], overwrite: bool = False,
                  on_ready: Optional[Callable[[], None]] = None) -> FeatureSet:
    """The cached features for `key_parts`, building and caching them on a miss;
    `on_ready` runs under the entry's lock once the entry is whole."""
    path = entry_path(cache_dir, name, key_parts)
    os.makedirs(cache_dir, exist_ok=True)
    with file_lock(path + ".lock"):
        remove_temp_files(cache_dir, os.path.basename(path))  # left by a killed build
        features = None if overwrite else _load(path)
        if features is None:
            start = time.perf_counter()
            features = _build(path, key_parts, build_chunks())
            logger.info("Built %d %s features in %.2fs: %s", len(features), name,
                        time.perf_counter() - start, path)
        if on_ready is not None:
            on_ready()
        return features


def build_chunks(examples, label_list: Optional[Sequence[str]], max_seq_length: int,
                 builder: FeatureBuilder, windows: Optional[Windows] = None
                 ) -> Iterator[FeatureArrays]:
    """Feature arrays of successive chunks of examples; the first few rows are logged.

    `windows`: long texts become windows (BERT's layout only).
    """
    for i, chunk in enumerate(chunks(examples)):
        arrays = builder.build(chunk, label_list, max_seq_length, windows)
        if i == 0:
            log_examples(chunk, arrays, builder.tokenizer)
        yield arrays


def load_features(processor, data_dir: str, split: str, builder: FeatureBuilder,
                  vocab_file: str, do_lower_case: bool, max_seq_length: int, cache_dir: str,
                  overwrite: bool = False, examples: Optional[SplitExamples] = None,
                  windows: Optional[Windows] = None, record: bool = True) -> FeatureSet:
    """One split's features for a processor, from the cache or freshly built.

    `builder`: the model family's layout (`builders.feature_builder`); what it adds
    to the key (another family's tokenizer files) enters the key.
    `examples`: the split as the pre-run checks already read and hashed it.
    `windows`: long texts become windows (None: they are truncated).
    `record`: write the examples record a pass found missing (False: another process
    does, as under torchrun the local main).
    """
    examples = examples or SplitExamples(processor, data_dir, split, cache_dir=cache_dir,
                                         overwrite=overwrite)
    labels = processor.get_labels()
    name, key = split_key(processor, split, examples.digest, builder.key(), vocab_file,
                          do_lower_case, max_seq_length, windows)
    features = load_or_build(cache_dir, name, key, lambda: build_chunks(
        examples, labels, max_seq_length, builder, windows), overwrite,
        examples.save_record if record else None)
    if windows:
        features.pooling = windows.pooling
        logger.info("%s", describe(split, features, max_seq_length))
    return features
