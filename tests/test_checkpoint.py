"""Checkpoints: damaged ones, leftovers of a killed run, foreign ones, and retention."""

import errno
import logging
import os
import shutil

import pytest
import torch
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import write_tiny_bert
from modeling import checkpoint
from processors import InputError, SentenceSimilarityProcessor

FLAGS = flags.FLAGS
RESULTS = ("eval_results.txt", "test_results.tsv", "predictions.tsv")


def run_main(**overrides):
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()
    values = dict(task_name="sentence_similarity", train_batch_size=8, eval_batch_size=16,
                  predict_batch_size=16, num_train_epochs=2.0, learning_rate=1e-3,
                  precision="fp32", save_checkpoints_steps=5, keep_checkpoint_max=2,
                  do_train=True, do_eval=True, do_predict=True)
    values.update(overrides)
    with flagsaver.flagsaver(**values):
        run_classifier.main(["run_classifier"])


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def finished(tiny_bert, tmp_path_factory):
    """A finished run (checkpoints 15 and 16) and its flags."""
    from conftest import write_similarity_data
    root = tmp_path_factory.mktemp("finished")
    args = dict(init_checkpoint=tiny_bert, data_dir=write_similarity_data(root / "data"))
    run_main(output_dir=str(root / "out"), **args)
    return str(root / "out"), args


def unfinished_copy(finished, path) -> str:
    """A copy of the finished run as a kill just before its final save would leave it."""
    out = str(path)
    shutil.copytree(finished, out)
    for name in RESULTS + ("config.json", "model.safetensors", "eval_results.json"):
        os.remove(os.path.join(out, name))
    return out


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(finished, tmp_path, caplog):
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    truncate(os.path.join(out, "checkpoint-16", "model.safetensors"))
    with caplog.at_level(logging.INFO):
        run_main(output_dir=out, **args)
    bad = os.path.join(out, "checkpoint-16")
    assert f"Checkpoint {bad} is unreadable" in caplog.text
    assert f"Moved the unreadable {bad} to {bad}.unreadable" in caplog.text
    assert "Resuming from " + os.path.join(out, "checkpoint-15") in caplog.text
    for name in RESULTS:
        assert read(os.path.join(out, name)) == read(os.path.join(source, name)), name
    assert read(os.path.join(out, "checkpoint-16", "model.safetensors")) == read(
        os.path.join(source, "checkpoint-16", "model.safetensors"))


def test_only_the_final_checkpoint_leaves_out_the_optimizer_state(finished):
    out, _ = finished
    states = {step: torch.load(os.path.join(out, f"checkpoint-{step}", "training_state.pt"),
                               weights_only=False) for step in (15, 16)}
    assert states[16]["global_step"] == 16 and states[16]["optimizer"] is None
    assert states[15]["optimizer"]["state"]  # the moments a resume needs


def test_no_readable_checkpoint_stops_without_touching_anything(finished, tmp_path):
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    truncate(os.path.join(out, "checkpoint-16", "training_state.pt"))
    os.remove(os.path.join(out, "checkpoint-15", "model.safetensors"))
    before = sorted(os.listdir(out))
    with pytest.raises(InputError, match=r"checkpoint-16: checkpoint is unreadable and no "
                                         r"earlier one is readable; pass --overwrite_output_dir"):
        run_main(output_dir=out, **args)
    assert sorted(os.listdir(out)) == before


def test_leftovers_of_a_kill_mid_write_are_removed(finished, tmp_path):
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    shutil.rmtree(os.path.join(out, "checkpoint-16"))
    partial = os.path.join(out, ".checkpoint-16.tmp")
    os.makedirs(partial)
    with open(os.path.join(partial, "model.safetensors"), "wb") as f:
        f.write(read(os.path.join(out, "checkpoint-15", "model.safetensors"))[:1000])
    leftovers = [partial, os.path.join(out, ".model.tmp"),
                 os.path.join(out, "best_model", ".model.tmp"),
                 os.path.join(out, ".eval_results.txtk2j4h1.tmp")]
    for path in leftovers[1:3]:
        os.makedirs(path)
        with open(os.path.join(path, "config.json"), "w") as f:
            f.write("{")
    train_cache = next(n for n in os.listdir(os.path.join(out, "cache"))
                       if n.startswith("sentence_similarity_train_") and not n.endswith(".lock"))
    leftovers.append(os.path.join(out, "cache", f".{train_cache}x8f3k.tmp"))
    for path in leftovers[3:]:
        with open(path, "w") as f:
            f.write("partial")
    run_main(output_dir=out, **args)
    assert not [p for p in leftovers if os.path.exists(p)]
    assert sorted(os.listdir(out)) == sorted(os.listdir(source))
    for name in RESULTS:
        assert read(os.path.join(out, name)) == read(os.path.join(source, name)), name


@pytest.mark.parametrize("change", ["labels", "model", "data", "parse_row", "seed"])
def test_checkpoint_of_another_run_is_refused(finished, tmp_path, change, monkeypatch):
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    if change == "labels":
        monkeypatch.setattr(SentenceSimilarityProcessor, "get_labels",
                            lambda self: ["0", "1", "2"])
        monkeypatch.setattr(SentenceSimilarityProcessor, "metric", "accuracy")  # f1: 2 labels
        message = r"label_list: \['0', '1'\] there, \['0', '1', '2'\] now"
    elif change == "model":
        args = dict(args, init_checkpoint=write_tiny_bert(tmp_path / "other_bert", seed=1))
        message = r"model_sha256: '[0-9a-f]{64}' there, '[0-9a-f]{64}' now"
    elif change == "data":  # the training data was edited since the checkpoint
        data = shutil.copytree(args["data_dir"], tmp_path / "data")
        with open(data / "train.csv", "a") as f:
            f.write('1,"a new row","a new row"\n')
        args = dict(args, data_dir=str(data))
        message = r"train_examples_sha256: '[0-9a-f]{64}' there, '[0-9a-f]{64}' now"
    elif change == "parse_row":  # the same file, read another way: other examples
        monkeypatch.setattr(SentenceSimilarityProcessor, "parse_row",
                            lambda self, row, split: (row[-1], row[-2], None if split == "test"
                                                      else row[0]))
        message = r"train_examples_sha256: '[0-9a-f]{64}' there, '[0-9a-f]{64}' now"
    else:
        args = dict(args, seed=43)
        message = r"seed: 42 there, 43 now"
    with pytest.raises(InputError, match=r"checkpoint-16: checkpoint is from a different run \("
                                         + message + r"\); pass --overwrite_output_dir"):
        run_main(output_dir=out, **args)


def test_old_checkpoints_are_deleted_only_after_the_new_one_is_complete(tmp_path, monkeypatch):
    model = torch.nn.Linear(2, 2)
    out = str(tmp_path)
    for step in (1, 2, 3):
        checkpoint.save_checkpoint(out, model, {"global_step": step}, keep_max=2)
    assert [os.path.basename(p) for p in checkpoint.list_checkpoints(out)] == [
        "checkpoint-2", "checkpoint-3"]

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError) as info:
        checkpoint.save_checkpoint(out, model, {"global_step": 4}, keep_max=2)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == os.path.join(out, "checkpoint-4")
    assert sorted(os.listdir(out)) == ["checkpoint-2", "checkpoint-3"]
    monkeypatch.undo()

    removed = []
    original_rmtree = shutil.rmtree

    def rmtree(path, **kwargs):
        if os.path.basename(path) == "checkpoint-2":
            removed.append(os.path.isfile(os.path.join(out, "checkpoint-4", "training_state.pt")))
        original_rmtree(path, **kwargs)

    monkeypatch.setattr(checkpoint.shutil, "rmtree", rmtree)
    checkpoint.save_checkpoint(out, model, {"global_step": 4}, keep_max=2)
    assert removed == [True]
    assert sorted(os.listdir(out)) == ["checkpoint-3", "checkpoint-4"]
