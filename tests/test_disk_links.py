"""modeling.disk.write_file: the same bytes written twice are one file under two names (a
hard link), only while the first is still unchanged; integrity records stay true."""

import errno
import os

import pytest
import torch
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import write_similarity_data
from modeling import disk
from modeling.disk import atomic_folder, atomic_write_bytes, check_integrity, write_file

FLAGS = flags.FLAGS


def write_folder(path, data: bytes) -> str:
    with atomic_folder(str(path)) as tmp:
        write_file(os.path.join(tmp, "w.bin"), data)
        disk.write_integrity(tmp, ["w.bin"])
    return os.path.join(str(path), "w.bin")


def payload(tmp_path, what: str = "weights") -> bytes:
    """Bytes of this test's own (files other tests wrote stay known to `write_file`)."""
    return f"{what} of {tmp_path}".encode() * 100


def inode(path) -> int:
    return os.stat(path).st_ino


def test_the_same_bytes_are_linked_and_other_bytes_are_written(tmp_path):
    first = write_folder(tmp_path / "a", payload(tmp_path))
    second = write_folder(tmp_path / "b", payload(tmp_path))
    other = write_folder(tmp_path / "c", payload(tmp_path, "other"))
    assert inode(first) == inode(second) != inode(other)
    assert os.stat(first).st_nlink == 2
    for folder in ("a", "b", "c"):
        assert check_integrity(str(tmp_path / folder))


@pytest.mark.parametrize("change", ["replaced", "edited in place", "removed"])
def test_a_file_changed_since_it_was_written_is_never_linked(tmp_path, change):
    first = write_folder(tmp_path / "a", payload(tmp_path))
    if change == "replaced":
        atomic_write_bytes(first, payload(tmp_path))  # another writer, a new file
    elif change == "edited in place":
        with open(first, "r+b") as f:
            f.write(b"W")
        os.utime(first, ns=(1, 1))  # (a coarse clock could leave the mtime as it was)
    else:
        os.unlink(first)
    second = write_folder(tmp_path / "b", payload(tmp_path))
    assert os.stat(second).st_nlink == 1
    assert check_integrity(str(tmp_path / "b"))
    with open(second, "rb") as f:
        assert f.read() == payload(tmp_path)


def test_a_disk_without_links_gets_the_bytes(tmp_path, monkeypatch):
    write_folder(tmp_path / "a", payload(tmp_path))

    def no_links(src, dst):
        raise OSError(errno.EPERM, "links not supported")
    monkeypatch.setattr(os, "link", no_links)
    second = write_folder(tmp_path / "b", payload(tmp_path))
    assert os.stat(second).st_nlink == 1 and check_integrity(str(tmp_path / "b"))


def test_the_record_of_a_written_file_needs_no_second_read(tmp_path, monkeypatch):
    def unread(path):
        raise AssertionError(f"read back: {path}")
    monkeypatch.setattr(disk, "sha256_file", unread)
    write_folder(tmp_path / "a", payload(tmp_path))
    monkeypatch.undo()
    assert check_integrity(str(tmp_path / "a"))


def test_a_one_epoch_run_writes_its_weights_once(tiny_bert, tmp_path):
    """The final model, best_model/ and the last checkpoint hold one step's weights: one
    file under three names, each folder's integrity record true, transformers loads it."""
    from transformers import BertForSequenceClassification
    out = tmp_path / "out"
    with flagsaver.flagsaver(task_name="sentence_similarity",
                             data_dir=write_similarity_data(tmp_path / "data", 32, 8, 8),
                             init_checkpoint=tiny_bert, output_dir=str(out), do_train=True,
                             do_eval=True, num_train_epochs=1.0, train_batch_size=8):
        run_classifier.main(["run_classifier"])
    names = [out / "model.safetensors", out / "best_model" / "model.safetensors",
             out / "checkpoint-4" / "model.safetensors"]
    assert len({inode(p) for p in names}) == 1 and os.stat(names[0]).st_nlink == 3
    for folder in (out, out / "best_model", out / "checkpoint-4"):
        assert check_integrity(str(folder))
    model = BertForSequenceClassification.from_pretrained(str(out))
    assert torch.isfinite(model.classifier.weight).all()
