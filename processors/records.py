"""The examples record: what a run reads from a built-in processor's examples, kept by
source key (`processors.sources`) in the features cache folder.

A record holds the examples' digest (the features cache's key, so the features
entry is found as without a record), their count and the first example with a
second text (for the model's token-type check). It is written (atomically, via
modeling.disk) only after a full pass has checked every example, and carries its
own sha256 and its key: a record that is damaged, unreadable, of another key or
malformed is ignored (the pass runs again and rewrites it), never trusted. Its
name is a digest of the key: nothing from data forms the path.
"""

import hashlib
import json
import logging
import os
import re
from typing import Optional

from modeling.disk import atomic_write_text

from .base import InputExample

logger = logging.getLogger(__name__)

PREFIX = "examples_"
HEX64 = re.compile(r"[0-9a-f]{64}")


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=True)


def record_path(cache_dir: str, key: dict) -> str:
    digest = hashlib.sha256(_canonical(key).encode()).hexdigest()[:32]
    return os.path.join(cache_dir, f"{PREFIX}{digest}.json")


def _pair(fields) -> Optional[InputExample]:
    """The stored first pair back as an example (None stays None); raises when malformed."""
    if fields is None:
        return None
    guid, text_a, text_b, label = fields
    if not all(isinstance(t, str) for t in (guid, text_a, text_b)):
        raise ValueError("first_pair is malformed")
    if isinstance(label, list):
        label = tuple(label)
    return InputExample(guid, text_a, text_b, label)


def read_record(cache_dir: str, key: dict) -> Optional[dict]:
    """{"examples_sha256", "count", "first_pair"} for `key`, or None: no record, or one
    that does not check out (logged, then ignored)."""
    path = record_path(cache_dir, key)
    try:
        with open(path, "rb") as f:
            record = json.loads(f.read().decode("utf-8"))
        body = record["body"]
        if hashlib.sha256(_canonical(body).encode()).hexdigest() != record["sha256"]:
            raise ValueError("sha256 does not match")
        if body["key"] != key:
            raise ValueError("written for another key")
        summary = {"examples_sha256": body["examples_sha256"], "count": body["count"],
                   "first_pair": _pair(body["first_pair"])}
        count = summary["count"]
        if not (HEX64.fullmatch(summary["examples_sha256"]) and type(count) is int
                and count > 0):
            raise ValueError("malformed")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logger.warning("Examples record %s is damaged (%s); reading the examples again",
                       path, e)
        return None
    return summary


def write_record(cache_dir: str, key: dict, examples_sha256: str, count: int,
                 first_pair: Optional[InputExample]) -> None:
    """Writes the record for `key` (atomically: whole or not at all)."""
    pair = None if first_pair is None else [
        first_pair.guid, first_pair.text_a, first_pair.text_b,
        list(first_pair.label) if isinstance(first_pair.label, tuple) else first_pair.label]
    body = {"key": key, "examples_sha256": examples_sha256, "count": count,
            "first_pair": pair}
    record = {"body": body, "sha256": hashlib.sha256(_canonical(body).encode()).hexdigest()}
    os.makedirs(cache_dir, exist_ok=True)
    atomic_write_text(record_path(cache_dir, key), _canonical(record) + "\n")
