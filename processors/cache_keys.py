"""The features cache's keys and entry names, without torch: a run finds its entries before
torch's import (`run_classifier.prefetch_digests`), and `cache` keys them the same way.
"""

import hashlib
import json
import os
from typing import Optional, Sequence

from modeling.sha256 import sha256_file

from .cells import path_safe
from .windows import Windows, windows_key

FEATURES_VERSION = 2
SIDECAR = "features.json"
# The arrays an entry may hold: a sidecar naming another file is damaged, not followed.
ARRAYS = frozenset({"input_ids", "segment_ids", "offsets", "label_ids", "doc_offsets",
                    "doc_lengths"})


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


def layout_key(tokenizer_files: Optional[Sequence[str]]) -> dict:
    """What a model family's layout adds to the key: nothing for BERT's own (None; keys made
    before other families existed stay valid), else the tokenizer files' sha256 (the vocab
    alone does not fix a tokenizer's output)."""
    if tokenizer_files is None:
        return {}
    return {"layout": "tokenizer", "tokenizer_sha256": [sha256_file(p) for p in tokenizer_files]}


def split_key(processor, split: str, examples_sha256: str, layout: dict, vocab_file: str,
              do_lower_case: bool, max_seq_length: int, windows: Optional[Windows] = None
              ) -> tuple[str, dict]:
    """(entry name, key parts) of a split's features; `layout`: the builder's `key()`."""
    key = cache_key_parts(examples_sha256, processor.get_labels(), vocab_file, do_lower_case,
                          max_seq_length, windows)
    key.update(layout)
    return f"{processor.task_name or type(processor).__name__}_{split}", key


def entry_path(cache_dir: str, name: str, key_parts: dict) -> str:
    """The entry of `key_parts`: `name` (made path-safe) and a digest of the key."""
    digest = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:20]
    return os.path.join(cache_dir, f"{path_safe(name)}_{digest}")


def entry_files(path: str) -> list[str]:
    """The array files an entry's sidecar names (which `cache._load` hashes), for
    `prefetch_sha256`; none without a readable sidecar (a miss builds the entry)."""
    try:
        with open(os.path.join(path, SIDECAR)) as f:
            names = set(json.load(f)["arrays"]) & ARRAYS  # (only known names form paths)
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [os.path.join(path, name + ".bin") for name in sorted(names)]
