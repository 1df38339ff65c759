"""The features cache: unpadded feature arrays on disk, keyed by the examples themselves.

The key hashes everything that shapes the features: the examples (guid,
text_a, text_b, label, in order, as the processor produced them), the label
list, the vocab's bytes, `do_lower_case`, `max_seq_length`, the features format
version and, with `--long_text=windows`, the stride; no file path and no file
bytes, so a changed processor or a file only an override reads can never give
stale features. An entry is a folder of raw arrays, built chunk by chunk
(bounded memory at any size) in a temp folder that is renamed when whole.
`features.json`, written last, records the key and each array's dtype, shape and
sha256, so a corrupt or truncated entry is detected and rebuilt. Windowed
entries add `doc_offsets` (window rows -> documents) and `doc_lengths`. Arrays
are memory-mapped on load. A file lock (core's) lets two processes ask for the
same entry at once. Entries are named by the task's name made path-safe and the
key's digest: no name leaves the cache folder.
"""

import hashlib
import json
import logging
import os
import time
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch

from modeling.disk import (atomic_folder, atomic_write_text, file_lock, remove_temp_files,
                           sha256_file)

from .cells import path_safe
from .examples import SplitExamples, chunks
from .features import InputFeatures, feature_arrays, log_examples
from .hf_features import tokenizer_feature_arrays
from .windows import Windows, describe, window_arrays, windows_key

logger = logging.getLogger(__name__)

FEATURES_VERSION = 2
SIDECAR = "features.json"
# The arrays an entry may hold: a sidecar naming another file is damaged, not followed.
ARRAYS = frozenset({"input_ids", "segment_ids", "offsets", "label_ids", "doc_offsets",
                    "doc_lengths"})


class FeatureSet(torch.utils.data.Dataset):
    """Variable-length features stored flat: ids, segment ids, row offsets, labels.

    `labels` is a numpy array (class ids, scores or multi-hot rows), None for test.
    With windows, rows are windows: `doc_offsets` maps them to documents (else None),
    and `pooling` is how predictions pool a document's windows.
    """

    def __init__(self, arrays: dict[str, np.ndarray], pooling: str = "mean"):
        self.tensors = {name: torch.from_numpy(array) for name, array in arrays.items()
                        if name not in ("doc_offsets", "doc_lengths")}
        self.offsets = arrays["offsets"]
        self.labels = arrays.get("label_ids")
        self.doc_offsets, self.doc_lengths = arrays.get("doc_offsets"), arrays.get("doc_lengths")
        self.pooling = pooling

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], pooling: str = "mean") -> "FeatureSet":
        """From `feature_arrays` or `window_arrays` output (in memory, not cached)."""
        stored = {name: arrays[name] for name in arrays if name not in ("lengths", "windows")}
        stored["offsets"] = np.concatenate([[0], np.cumsum(arrays["lengths"])]).astype(np.int64)
        if "windows" in arrays:
            stored["doc_offsets"] = np.concatenate([[0], np.cumsum(arrays["windows"])]).astype(
                np.int64)
        return cls(stored, pooling)

    @classmethod
    def from_features(cls, features: Sequence[InputFeatures]) -> "FeatureSet":
        lengths = np.array([len(f.input_ids) for f in features], np.int64)
        arrays = {"input_ids": np.array([i for f in features for i in f.input_ids], np.int32),
                  "segment_ids": np.array([s for f in features for s in f.segment_ids], np.int8),
                  "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)}
        if features and features[0].label_id is not None:
            labels = [f.label_id for f in features]
            arrays["label_ids"] = np.array(labels, np.int64 if isinstance(labels[0], int)
                                           else np.float32)
        return cls(arrays)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int):
        start, end = int(self.offsets[i]), int(self.offsets[i + 1])
        return (self.tensors["input_ids"][start:end], self.tensors["segment_ids"][start:end],
                None if self.labels is None else self.labels[i])


def cache_key_parts(examples_sha256: str, label_list: Optional[Sequence[str]],
                    vocab_file: str, do_lower_case: bool, max_seq_length: int,
                    windows: Optional[Windows] = None) -> dict:
    """The readable parts of the key; the vocab enters as its sha256. Truncated features
    keep the key they had before windows existed (their entries stay valid)."""
    return {"examples_sha256": examples_sha256,
            "label_list": None if label_list is None else list(label_list),
            "vocab_sha256": sha256_file(vocab_file), "do_lower_case": bool(do_lower_case),
            "max_seq_length": int(max_seq_length), "features_version": FEATURES_VERSION,
            **windows_key(windows)}


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

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        offsets = self.end + np.cumsum(arrays["lengths"])
        self.end = int(offsets[-1]) if len(offsets) else self.end
        self._append("offsets", offsets.astype(np.int64))
        for name in ("input_ids", "segment_ids", "label_ids", "doc_lengths"):
            if name in arrays:
                self._append(name, arrays[name])
        if "windows" in arrays:
            if "doc_offsets" not in self.files:
                self._append("doc_offsets", np.zeros(1, np.int64))
            self._append("doc_offsets", (self.rows + np.cumsum(arrays["windows"])).astype(
                np.int64))
        self.rows += len(arrays["lengths"])

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


def _build(path: str, key_parts: dict, build_chunks: Iterator[dict]) -> FeatureSet:
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
    return FeatureSet(arrays)


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
                  build_chunks: Callable[[], Iterator[dict]], overwrite: bool = False
                  ) -> FeatureSet:
    """The cached features for `key_parts`, building and caching them on a miss."""
    digest = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:20]
    path = os.path.join(cache_dir, f"{path_safe(name)}_{digest}")
    os.makedirs(cache_dir, exist_ok=True)
    with file_lock(path + ".lock"):
        remove_temp_files(cache_dir, os.path.basename(path))  # left by a killed build
        if not overwrite:
            cached = _load(path)
            if cached is not None:
                return cached
        start = time.perf_counter()
        features = _build(path, key_parts, build_chunks())
        logger.info("Built %d %s features in %.2fs: %s", len(features), name,
                    time.perf_counter() - start, path)
        return features


def build_chunks(examples, label_list: Optional[Sequence[str]], max_seq_length: int,
                 tokenizer, tokenizer_layout: bool = False, windows: Optional[Windows] = None
                 ) -> Iterator[dict]:
    """Feature arrays of successive chunks of examples; the first few rows are logged.

    `tokenizer_layout`: the tokenizer's own layout (another family's), not Google's.
    `windows`: long texts become windows (BERT's layout only).
    """
    build = tokenizer_feature_arrays if tokenizer_layout else feature_arrays
    for i, chunk in enumerate(chunks(examples)):
        arrays = (window_arrays(chunk, label_list, max_seq_length, tokenizer, windows.doc_stride)
                  if windows else build(chunk, label_list, max_seq_length, tokenizer))
        if i == 0:
            log_examples(chunk, arrays, tokenizer)
        yield arrays


def load_features(processor, data_dir: str, split: str, tokenizer, vocab_file: str,
                  do_lower_case: bool, max_seq_length: int, cache_dir: str,
                  overwrite: bool = False, examples: Optional[SplitExamples] = None,
                  tokenizer_files: Sequence[str] = (), windows: Optional[Windows] = None
                  ) -> FeatureSet:
    """One split's features for a processor, from the cache or freshly built.

    `examples`: the split as the pre-run checks already read and hashed it.
    `tokenizer_files`: another family's tokenizer files: the features take that
    tokenizer's own layout, and the key hashes every one of its files.
    `windows`: long texts become windows (None: they are truncated).
    """
    examples = examples or SplitExamples(processor, data_dir, split)
    labels = processor.get_labels()
    key = cache_key_parts(examples.digest, labels, vocab_file, do_lower_case, max_seq_length,
                          windows)
    if tokenizer_files:
        key.update(layout="tokenizer", tokenizer_sha256=[sha256_file(p) for p in tokenizer_files])
    name = f"{processor.task_name or type(processor).__name__}_{split}"
    features = load_or_build(cache_dir, name, key, lambda: build_chunks(
        examples, labels, max_seq_length, tokenizer, bool(tokenizer_files), windows), overwrite)
    if windows:
        features.pooling = windows.pooling
        logger.info("%s", describe(split, features, max_seq_length))
    return features
