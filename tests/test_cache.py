"""The features cache: hits, misses on every key part, corruption, concurrency."""

import errno
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from modeling.tokenization import load_tokenizer
from processors import SentenceSimilarityProcessor, builders, cache, cache_keys
from processors.builders import BertFeatures
from processors.cache import FeatureSet, load_features
from processors.digest import ExamplesDigest
from processors.features import convert_examples_to_features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def env(tiny_bert, similarity_dir, tmp_path, feature_builds):
    """Paths, a tokenizer, and `builds`: the arguments of every features build."""
    builds = feature_builds
    vocab = os.path.join(tiny_bert, "vocab.txt")
    return SimpleNamespace(data_dir=similarity_dir, vocab=vocab, cache_dir=str(tmp_path / "cache"),
                           tokenizer=load_tokenizer(vocab, True), builds=builds)


def load(env, split="train", **overrides):
    args = dict(processor=SentenceSimilarityProcessor(), data_dir=env.data_dir, split=split,
                builder=BertFeatures(env.tokenizer), vocab_file=env.vocab, do_lower_case=True,
                max_seq_length=32, cache_dir=env.cache_dir)
    args.update(overrides)
    return load_features(**args)


def cache_files(env, suffix=""):
    """The cache entries (folders), or the names ending in `suffix`."""
    return sorted(os.path.join(env.cache_dir, n) for n in os.listdir(env.cache_dir)
                  if (n.endswith(suffix) if suffix else os.path.isdir(
                      os.path.join(env.cache_dir, n)) and not n.startswith(".")))


def stored(features: FeatureSet) -> dict:
    """The set's arrays under their cache file names (None where it has none)."""
    return {"input_ids": features.input_ids.numpy(), "segment_ids": features.segment_ids.numpy(),
            "offsets": features.offsets, "label_ids": features.labels,
            "doc_offsets": features.doc_offsets, "doc_lengths": features.doc_lengths}


def assert_same(a: FeatureSet, b: FeatureSet):
    for (name, x), y in zip(stored(a).items(), stored(b).values()):
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), name


def test_second_call_is_a_hit(env):
    first = load(env)
    assert len(env.builds) == 1 and len(first) == 64
    second = load(env)
    assert len(env.builds) == 1
    assert_same(first, second)
    processor = SentenceSimilarityProcessor()
    expected = convert_examples_to_features(processor.get_train_examples(env.data_dir),
                                            processor.get_labels(), 32, env.tokenizer)
    assert_same(second, FeatureSet.from_features(expected))


class SwappedLabels(SentenceSimilarityProcessor):
    def get_labels(self):
        return ["1", "0"]


def edit_data(env, tmp_path):
    with open(os.path.join(env.data_dir, "train.csv"), "a") as f:
        f.write('1,"the dog","the dog"\n')
    return {}


def other_vocab(env, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text(open(env.vocab).read() + "extra\n")
    return {"vocab_file": str(vocab), "builder": BertFeatures(load_tokenizer(str(vocab), True))}


CHANGES = {
    "data-file": edit_data,
    "max-seq-length": lambda env, tmp_path: {"max_seq_length": 8},
    "vocab-bytes": other_vocab,
    "do-lower-case": lambda env, tmp_path: {
        "do_lower_case": False, "builder": BertFeatures(load_tokenizer(env.vocab, False))},
    "label-list": lambda env, tmp_path: {"processor": SwappedLabels()},
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_miss_after_a_change(env, tmp_path, change):
    load(env)
    overrides = change(env, tmp_path)
    changed = load(env, **overrides)
    assert len(env.builds) == 2
    assert len(cache_files(env)) == 2
    assert_same(load(env, **overrides), changed)
    assert len(env.builds) == 2


def test_same_examples_elsewhere_is_a_hit(env, tmp_path):
    load(env)
    copy = shutil.copytree(env.data_dir, tmp_path / "copy")
    with open(copy / "train.csv", "rb+") as f:  # other bytes, the same examples
        data = f.read().replace(b"\n", b"\r\n")
        f.seek(0)
        f.write(data)
    load(env, data_dir=str(copy))
    assert len(env.builds) == 1


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_sidecar_names_the_key(env):
    features = load(env)
    [path] = cache_files(env)
    with open(os.path.join(path, cache.SIDECAR)) as f:
        sidecar = json.load(f)
    examples = SentenceSimilarityProcessor().get_train_examples(env.data_dir)
    digest = ExamplesDigest()
    digest.update(examples)
    assert sidecar["key"] == {
        "examples_sha256": digest.hexdigest(), "label_list": ["0", "1"],
        "vocab_sha256": sha(env.vocab), "do_lower_case": True, "max_seq_length": 32,
        "features_version": cache_keys.FEATURES_VERSION}
    assert sidecar["num_examples"] == len(features) == 64
    for name, info in sidecar["arrays"].items():
        assert info["sha256"] == sha(os.path.join(path, name + ".bin"))
    assert sidecar["arrays"]["offsets"]["shape"] == [65]
    assert os.path.basename(path).startswith("sentence_similarity_train_")


def test_overwrite_rebuilds(env):
    first = load(env)
    second = load(env, overwrite=True)
    assert len(env.builds) == 2
    assert_same(first, second)


def truncate(path):
    ids = os.path.join(path, "input_ids.bin")
    with open(ids, "r+b") as f:
        f.truncate(os.path.getsize(ids) // 2)


def flip_byte(path):
    labels = os.path.join(path, "label_ids.bin")
    data = bytearray(open(labels, "rb").read())
    data[-1] ^= 0xFF
    open(labels, "wb").write(bytes(data))


def drop_sidecar(path):
    os.unlink(os.path.join(path, cache.SIDECAR))


def sidecar_names_an_outside_file(path):
    """A sidecar whose array name points outside the entry, at a file with its sha256."""
    outside = os.path.join(os.path.dirname(os.path.dirname(path)), "secret.bin")
    with open(outside, "wb") as f:
        f.write(b"\0" * 8)
    with open(os.path.join(path, cache.SIDECAR)) as f:
        sidecar = json.load(f)
    sidecar["arrays"]["../../secret"] = {"dtype": "<i8", "shape": [1],
                                         "sha256": hashlib.sha256(b"\0" * 8).hexdigest()}
    with open(os.path.join(path, cache.SIDECAR), "w") as f:
        json.dump(sidecar, f)


@pytest.mark.parametrize("damage", [truncate, flip_byte, drop_sidecar,
                                    sidecar_names_an_outside_file])
def test_corrupt_cache_is_rebuilt(env, caplog, damage):
    mapped = load(env)  # memory-mapped: copied before its files are damaged in place
    original = FeatureSet(**{name: array.copy() for name, array in stored(mapped).items()
                             if array is not None})
    [path] = cache_files(env)
    damage(path)
    with caplog.at_level(logging.WARNING, logger="processors.cache"):
        rebuilt = load(env)
    assert len(env.builds) == 2
    assert any("corrupt" in r.getMessage() and path in r.getMessage() for r in caplog.records)
    assert_same(original, rebuilt)
    assert_same(original, load(env))
    assert len(env.builds) == 2


def test_a_full_disk_mid_build_names_the_entry_and_leaves_nothing(env, monkeypatch):
    """The build's writes fail as on a full disk: the OSError names the entry (not a temp
    file), and no entry or temp folder is left; the next build succeeds."""
    real_write = cache._Writer._append

    def full(self, name, array):
        if name == "input_ids":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, name, array)

    monkeypatch.setattr(cache._Writer, "_append", full)
    with pytest.raises(OSError) as info:
        load(env)
    assert info.value.errno == errno.ENOSPC
    assert os.path.dirname(info.value.filename) == env.cache_dir
    assert os.path.basename(info.value.filename).startswith("sentence_similarity_train_")
    assert [n for n in os.listdir(env.cache_dir) if not n.endswith(".lock")] == []
    monkeypatch.setattr(cache._Writer, "_append", real_write)
    assert len(load(env)) == 64 and cache_files(env) == [info.value.filename]


def test_no_temp_files_and_test_split_without_labels(env):
    for split in ("train", "dev", "test", "train"):
        load(env, split=split)
    load(env, overwrite=True)
    assert len(env.builds) == 4
    assert cache_files(env, ".tmp") == []
    test = load(env, split="test")
    assert test.labels is None and len(test) == 20
    [entry] = [p for p in cache_files(env) if "sentence_similarity_test_" in p]
    with open(os.path.join(entry, cache.SIDECAR)) as f:
        assert "label_ids" not in json.load(f)["arrays"]


def test_feature_set_round_trip(env):
    processor = SentenceSimilarityProcessor()
    examples = processor.get_train_examples(env.data_dir)
    for label_list in (["0", "1"], None):
        features = convert_examples_to_features(examples, label_list, 16, env.tokenizer)
        dataset = FeatureSet.from_features(features)
        assert len(dataset) == len(features) == 64
        assert dataset.lengths().tolist() == [len(f.input_ids) for f in features]
        for i, f in enumerate(features):
            ids, segments, label = dataset[i]
            assert ids.tolist() == f.input_ids and segments.tolist() == f.segment_ids
            assert label.tolist() == f.label_id and type(label.tolist()) is type(f.label_id)


WORKER = r"""
import os, sys, time
from modeling.tokenization import load_tokenizer
from processors import SentenceSimilarityProcessor, builders, cache

data_dir, vocab, cache_dir, go = sys.argv[1:]
real = builders.feature_arrays

def slow_build(*args):
    print("BUILD", flush=True)
    time.sleep(0.5)  # keeps the other process waiting on the lock
    return real(*args)

builders.feature_arrays = slow_build
tokenizer = load_tokenizer(vocab, True)
print("READY", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
features = cache.load_features(SentenceSimilarityProcessor(), data_dir, "train",
                               builders.BertFeatures(tokenizer), vocab, True, 32, cache_dir)
print("DONE", features.input_ids.tolist(), flush=True)
"""


def test_two_processes_build_once(env, tmp_path, monkeypatch):
    """This process and a worker ask for the same cache at once: one builds, one loads."""
    go = tmp_path / "go"
    argv = [sys.executable, "-c", WORKER, env.data_dir, env.vocab, env.cache_dir, str(go)]
    worker = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    counting = builders.feature_arrays

    def slow_build(*args):
        time.sleep(0.5)
        return counting(*args)

    monkeypatch.setattr(builders, "feature_arrays", slow_build)
    try:
        assert worker.stdout.readline() == "READY\n"
        go.touch()
        features = load(env)
        output = worker.communicate(timeout=120)[0].splitlines()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0
    builds = len(env.builds) + output.count("BUILD")
    assert builds == 1
    assert output[-1] == "DONE " + str(features.input_ids.tolist())
    [path] = cache_files(env)
    assert cache_files(env, ".tmp") == []
    path = os.path.join(path, cache.SIDECAR)
    mtime, parent_builds = os.stat(path).st_mtime_ns, len(env.builds)
    assert_same(load(env), features)
    assert len(env.builds) == parent_builds
    assert os.stat(path).st_mtime_ns == mtime


@pytest.mark.parametrize("labels", ["ids", "scores", "multi_hot", None])
def test_a_batch_gathered_from_the_flat_arrays_is_the_collated_rows(labels, tmp_path):
    """FeatureSet.batch (what training, eval and predict feed the model) against collate of
    the same rows, in memory and memory-mapped from a cache entry."""
    import torch
    from processors.features import FeatureArrays, collate
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 30, size=50)
    values = {"ids": rng.integers(0, 3, size=50), "scores": rng.random(50).astype(np.float32),
              "multi_hot": (rng.random((50, 4)) > 0.5).astype(np.float32), None: None}[labels]
    arrays = FeatureArrays(rng.integers(1, 999, size=lengths.sum()).astype(np.int32),
                           rng.integers(0, 2, size=lengths.sum()).astype(np.int8), lengths,
                           values)
    memory = FeatureSet.from_arrays(arrays)
    mapped = cache.load_or_build(str(tmp_path), "t", {"k": labels}, lambda: iter([arrays]))
    for dataset in (memory, mapped):
        for indices in ([3], [7, 1, 7, 0], list(range(50)), list(rng.permutation(50)[:13])):
            expected = collate([dataset[i] for i in indices])
            got = dataset.batch(indices)
            assert list(got) == list(expected)
            for name, tensor in expected.items():
                assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name
