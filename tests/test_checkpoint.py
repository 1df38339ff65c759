"""Checkpoints: damaged ones, leftovers of a killed run, foreign ones, and retention."""

import errno
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import write_tiny_bert
from modeling.disk import DamagedFile, check_integrity, read_integrity, write_integrity
from training import checkpoint
from modeling.export import load_weights
from processors import InputError, SentenceSimilarityProcessor
from test_bad_disk_checkpoints import flip_bit, flip_weight_bit

FLAGS = flags.FLAGS
RESULTS = ("eval_results.txt", "test_results.tsv", "predictions.tsv")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS_OF_RUN_MAIN = ("--task_name=sentence_similarity", "--train_batch_size=8",
                     "--eval_batch_size=16", "--predict_batch_size=16", "--num_train_epochs=2",
                     "--learning_rate=1e-3", "--precision=fp32", "--save_checkpoints_steps=5",
                     "--keep_checkpoint_max=2", "--do_train", "--do_eval", "--do_predict")


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
                               weights_only=True) for step in (15, 16)}
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


class Payload:
    """What a crafted state file holds: unpickling it runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("record", ["rewritten", "stale"])
def test_a_pickled_payload_in_a_checkpoint_never_runs(finished, tmp_path, record):
    """The issue's reproduction through the command line: a real state with one pickled
    object added. With the integrity record rewritten to match, only weights_only=True
    stands between it and the shell; with the record stale, the record catches it first.
    Either way: a warning, the checkpoint before used, the uninterrupted run's results."""
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    newest, marker = os.path.join(out, "checkpoint-16"), tmp_path / "PWNED"
    state_file = os.path.join(newest, "training_state.pt")
    state = torch.load(state_file, weights_only=True)
    state["extra"] = Payload(marker)
    torch.save(state, state_file)
    if record == "rewritten":
        write_integrity(newest, ["model.safetensors", "training_state.pt"])
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_classifier.py"), *FLAGS_OF_RUN_MAIN,
         f"--output_dir={out}", *(f"--{k}={v}" for k, v in args.items())],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert not marker.exists()
    assert proc.returncode == 0, proc.stderr[-3000:]
    why = "UnpicklingError: Weights only load failed" if record == "rewritten" else (
        f"DamagedFile: {state_file}: damaged")
    assert f"Checkpoint {newest} is unreadable ({why}" in proc.stderr
    assert "Resuming from " + os.path.join(out, "checkpoint-15") in proc.stderr
    assert os.path.isdir(newest + ".unreadable")
    for name in RESULTS:
        assert read(os.path.join(out, name)) == read(os.path.join(source, name)), name


def rng_state_flipped(path):
    """One bit of the saved torch RNG state (found by its bytes: torch.save stores
    tensors uncompressed) flipped."""
    state = torch.load(path, weights_only=True)
    data = read(path)
    offset = data.index(state["rng"]["torch_per_rank"][0].numpy().tobytes())
    flip_bit(path, offset + 100, 0)


@pytest.mark.parametrize("name,flip", [("model.safetensors", flip_weight_bit),
                                       ("training_state.pt", rng_state_flipped)],
                         ids=["weights", "rng-state"])
def test_a_bit_flip_in_the_newest_checkpoint_falls_back_to_the_previous(
        finished, tmp_path, caplog, name, flip):
    """The flipped checkpoint still loads (a weight doubled, another RNG state); only its
    integrity record tells. It is moved aside and never used: the results are the
    uninterrupted run's."""
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    bad = os.path.join(out, "checkpoint-16")
    flip(os.path.join(bad, name))
    with caplog.at_level(logging.INFO):
        run_main(output_dir=out, **args)
    assert (f"Checkpoint {bad} is unreadable (DamagedFile: {os.path.join(bad, name)}: damaged"
            in caplog.text)
    assert "Resuming from " + os.path.join(out, "checkpoint-15") in caplog.text
    for result in RESULTS:
        assert read(os.path.join(out, result)) == read(os.path.join(source, result)), result
    assert read(os.path.join(out, "checkpoint-16", "model.safetensors")) == read(
        os.path.join(source, "checkpoint-16", "model.safetensors"))


def test_a_divergence_right_after_a_resume_does_not_call_that_checkpoint_good(
        finished, tmp_path):
    """A damaged but loadable checkpoint (whole, its record matching: an infinite weight)
    diverges at the first step after the resume: the message says so and points to
    --overwrite_output_dir, instead of calling it the last good checkpoint."""
    from modeling.errors import TrainingDiverged
    source, args = finished
    out = unfinished_copy(source, tmp_path / "out")
    shutil.rmtree(os.path.join(out, "checkpoint-16"))
    resumed = os.path.join(out, "checkpoint-15")
    state = torch.load(os.path.join(resumed, "training_state.pt"), weights_only=True)
    model = torch.nn.Module()
    model.state_dict = lambda: {k: v.fill_(float("inf")) if k == "classifier.weight" else v
                                for k, v in checkpoint.load_file(
                                    os.path.join(resumed, "model.safetensors")).items()}
    checkpoint.save_checkpoint(out, model, state, keep_max=2)
    with pytest.raises(TrainingDiverged) as info:
        run_main(output_dir=out, **args)
    assert str(info.value) == (
        f"training diverged: the loss was not finite at step 16, the first after resuming "
        f"from {resumed} (which may be damaged); pass --overwrite_output_dir to start over, "
        "or a lower --learning_rate=0.001. No model was saved")


def test_saved_models_carry_an_integrity_record_that_load_weights_checks(finished, tmp_path):
    """The final model and best_model/ each have a record of every file (config.json and
    the tokenizer's too); the early-stopping reload of best_model/ refuses a flip."""
    out, _ = finished
    for folder in (out, os.path.join(out, "best_model")):
        assert {"model.safetensors", "config.json", "vocab.txt",
                "tokenizer_config.json"} <= set(read_integrity(folder)), folder
        assert check_integrity(folder)
    best = shutil.copytree(os.path.join(out, "best_model"), tmp_path / "best")
    flip_weight_bit(best / "model.safetensors")
    from transformers import BertForSequenceClassification
    model = BertForSequenceClassification.from_pretrained(out)
    with pytest.raises(DamagedFile, match=f"^{best / 'model.safetensors'}: damaged"):
        load_weights(model, str(best))


def test_a_checkpoint_without_its_integrity_record(tmp_path, caplog):
    """This version's checkpoint whose record is gone is unreadable; an older version's
    (no record, no format mark) is read, with a warning that it is unchecked."""
    model, signature = torch.nn.Linear(2, 2), {"task": "x"}
    path = checkpoint.save_checkpoint(str(tmp_path), model, {
        "global_step": 1, "signature": signature}, keep_max=1)
    os.remove(os.path.join(path, "integrity.json"))
    with pytest.raises(InputError, match="no earlier one is readable"):
        checkpoint.load_latest_checkpoint(str(tmp_path), model, signature)
    assert "integrity.json: missing" in caplog.text
    torch.save({"global_step": 1, "signature": signature},
               os.path.join(path, "training_state.pt"))
    with caplog.at_level(logging.INFO):
        state = checkpoint.load_latest_checkpoint(str(tmp_path), model, signature)
    assert state["global_step"] == 1 and "has no integrity record (an older version" in \
        caplog.text


def test_numpy_values_in_the_state_are_saved_as_plain_types(tmp_path):
    """sklearn's metrics are numpy floats: saved as Python numbers (and arrays as tensors),
    which weights_only=True reads back."""
    import numpy as np
    model, signature = torch.nn.Linear(2, 2), {"task": "x"}
    checkpoint.save_checkpoint(str(tmp_path), model, {
        "global_step": 2, "signature": signature,
        "stats": [{"dev_f1": np.float64(0.5), "counts": np.arange(3), "n": np.int64(4)}]},
        keep_max=1)
    state = checkpoint.load_latest_checkpoint(str(tmp_path), model, signature)
    row = state["stats"][0]
    assert type(row["dev_f1"]) is float and type(row["n"]) is int and row["dev_f1"] == 0.5
    assert torch.equal(row["counts"], torch.arange(3))
