"""The features cache: unpadded feature tensors on disk, keyed by their inputs.

The key hashes everything that shapes the features: the data file's bytes,
the processor, its labels, the vocab's bytes, `do_lower_case`,
`max_seq_length` and the features format version. Files are written to a temp
name and renamed; a JSON sidecar records the key's parts and the tensor file's
sha256, so a corrupt or truncated cache is detected and rebuilt. A file lock
lets two processes ask for the same cache at once.
"""

import hashlib
import json
import logging
import os
import time
from typing import Callable, Optional, Sequence

import torch
from filelock import FileLock
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from .features import InputFeatures, convert_examples_to_features
from core import atomic_write_bytes, atomic_write_text, remove_temp_files, sha256_file

logger = logging.getLogger(__name__)

FEATURES_VERSION = 1


class FeatureSet(torch.utils.data.Dataset):
    """Variable-length features stored flat: ids, segment ids, row offsets, labels."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.tensors = tensors
        self.offsets = tensors["offsets"].tolist()
        labels = tensors.get("label_ids")
        self.labels = [None] * len(self) if labels is None else labels.tolist()

    @classmethod
    def from_features(cls, features: Sequence[InputFeatures]) -> "FeatureSet":
        lengths = torch.tensor([0] + [len(f.input_ids) for f in features], dtype=torch.long)
        tensors = {
            "input_ids": torch.tensor([i for f in features for i in f.input_ids],
                                      dtype=torch.int32),
            "segment_ids": torch.tensor([s for f in features for s in f.segment_ids],
                                        dtype=torch.int8),
            "offsets": torch.cumsum(lengths, 0),
        }
        if features and features[0].label_id is not None:
            dtype = torch.long if isinstance(features[0].label_id, int) else torch.float
            tensors["label_ids"] = torch.tensor([f.label_id for f in features], dtype=dtype)
        return cls(tensors)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> list[int]:
        return [end - start for start, end in zip(self.offsets, self.offsets[1:])]

    def __getitem__(self, i: int):
        start, end = self.offsets[i], self.offsets[i + 1]
        return (self.tensors["input_ids"][start:end], self.tensors["segment_ids"][start:end],
                self.labels[i])


def cache_key_parts(data_file: str, task_name: str, label_list: Optional[Sequence[str]],
                    vocab_file: str, do_lower_case: bool, max_seq_length: int,
                    processor_settings: Optional[dict] = None) -> dict:
    """The readable parts of the key; file contents enter as sha256 digests.

    `processor_settings` (columns, language, ...) enter only when there are some.
    """
    parts = {
        "data_file": os.path.abspath(data_file),
        "data_sha256": sha256_file(data_file),
        "task_name": task_name,
        "label_list": None if label_list is None else list(label_list),
        "vocab_sha256": sha256_file(vocab_file),
        "do_lower_case": bool(do_lower_case),
        "max_seq_length": int(max_seq_length),
        "features_version": FEATURES_VERSION,
    }
    if processor_settings:
        parts["processor_settings"] = dict(processor_settings)
    return parts


def load_or_build(cache_dir: str, split: str, key_parts: dict,
                  build: Callable[[], Sequence[InputFeatures]],
                  overwrite: bool = False) -> FeatureSet:
    """Returns the cached features for `key_parts`, building and caching on a miss."""
    key = dict(key_parts)
    key.pop("data_file", None)  # the same bytes elsewhere are the same features
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = os.path.join(cache_dir, f"{key_parts['task_name']}_{split}_{digest}.safetensors")
    os.makedirs(cache_dir, exist_ok=True)
    with FileLock(path + ".lock"):
        remove_temp_files(cache_dir, os.path.basename(path))  # left by a killed build
        if not overwrite:
            cached = _load(path)
            if cached is not None:
                return cached
        start = time.perf_counter()
        features = FeatureSet.from_features(build())
        data = save_tensors(features.tensors)
        atomic_write_bytes(path, data)
        sidecar = {"key": key_parts, "num_examples": len(features),
                   "sha256": hashlib.sha256(data).hexdigest()}
        atomic_write_text(path + ".json", json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        logger.info("Built %d %s features in %.2fs: %s", len(features), split,
                    time.perf_counter() - start, path)
        return features


def _load(path: str) -> Optional[FeatureSet]:
    """Loads a cache file, or returns None when it is missing or corrupt."""
    if not os.path.exists(path):
        return None
    try:
        with open(path + ".json") as f:
            sidecar = json.load(f)
        with open(path, "rb") as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != sidecar["sha256"]:
            raise ValueError("sha256 does not match its sidecar")
        features = FeatureSet(load_tensors(data))
        if len(features) != sidecar["num_examples"]:
            raise ValueError("row count does not match its sidecar")
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        logger.warning("Cache file %s is corrupt (%s); rebuilding it", path, e)
        return None
    logger.info("Loaded %d features from cache %s", len(features), path)
    return features


def load_features(processor, data_dir: str, split: str, tokenizer, vocab_file: str,
                  do_lower_case: bool, max_seq_length: int, cache_dir: str,
                  overwrite: bool = False) -> FeatureSet:
    """One split's features for a processor, from the cache or freshly built."""
    labels = processor.get_labels()
    key = cache_key_parts(processor.get_file_path(data_dir, split),
                          processor.task_name or type(processor).__name__,
                          labels, vocab_file, do_lower_case, max_seq_length,
                          processor.settings())
    return load_or_build(cache_dir, split, key, lambda: convert_examples_to_features(
        processor.get_examples(data_dir, split), labels, max_seq_length, tokenizer), overwrite)
