"""--early_stopping_patience: the count (pure), and runs that stop, keep the best epoch and
resume with the count they had."""

import json
import os

import pytest
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import write_keyword_data
from modeling import export
from processors import InputError
from training import loop as training
from training.early_stopping import best_epoch, epochs_without_gain, is_better, should_stop

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def test_count_resets_only_on_a_gain_above_the_threshold():
    assert epochs_without_gain([]) == 0
    assert epochs_without_gain([0.5, 0.7, 0.6, 0.7]) == 2  # a tie is no gain
    assert epochs_without_gain([0.5, 0.7, 0.6, 0.71]) == 0
    assert epochs_without_gain([0.5, 0.7, 0.6, 0.71], threshold=0.05) == 2
    assert epochs_without_gain([0.5, 0.52, 0.54, 0.56], threshold=0.05) == 3  # the best moves
    assert not should_stop([0.5, 0.4, 0.3], patience=0)  # 0: never
    assert should_stop([0.5, 0.4, 0.3], patience=2) and not should_stop([0.5, 0.4], patience=2)


def test_best_epoch_is_the_first_highest():
    assert best_epoch([0.5, 0.8, 0.8, 0.7]) == 1
    assert best_epoch([0.3]) == 0
    assert is_better(0.8, [0.5, 0.7]) and not is_better(0.8, [0.8])


def run_main(**overrides):
    values = dict(task_name="generic", train_batch_size=8, eval_batch_size=16,
                  num_train_epochs=8.0, learning_rate=1e-2, precision="fp32",
                  save_checkpoints_steps=5, keep_checkpoint_max=2, do_train=True, do_eval=True)
    values.update(overrides)
    with flagsaver.flagsaver(**values):
        run_classifier.main(["run_classifier"])


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def stats_of(out):
    return [{k: v for k, v in row.items() if k != "time_s"}
            for row in json.loads(read(os.path.join(out, "training_stats.json")))]


@pytest.mark.parametrize("patience, threshold", [(1, 0.0), (2, 0.5)])
def test_stops_and_keeps_the_best_epoch(patience, threshold, tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), str(tmp_path / "out")
    run_main(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
             early_stopping_patience=patience, early_stopping_threshold=threshold)
    stats = stats_of(out)
    scores = [row["dev_accuracy"] for row in stats]
    assert len(stats) < 8 and max(scores) == 1.0  # it learns, then stops well before 8
    assert should_stop(scores, patience, threshold)
    assert not should_stop(scores[:-1], patience, threshold)
    best = stats[best_epoch(scores)]
    results = json.loads(read(os.path.join(out, "eval_results.json")))
    assert results["global_step"] == best["step"] and results["eval_accuracy"] == 1.0
    assert results["eval_loss"] == pytest.approx(best["dev_loss"], abs=1e-6)
    assert read(os.path.join(out, "model.safetensors"), "rb") == read(
        os.path.join(out, "best_model", "model.safetensors"), "rb")
    checkpoints = sorted(n for n in os.listdir(out) if n.startswith("checkpoint-"))
    assert checkpoints[-1] == f"checkpoint-{stats[-1]['step']}"  # nothing trained past the stop


def test_resume_keeps_the_count(tiny_bert, tmp_path, monkeypatch):
    data = write_keyword_data(tmp_path / "data")
    args = dict(init_checkpoint=tiny_bert, data_dir=data, early_stopping_patience=2)
    run_main(output_dir=str(tmp_path / "a"), **args)
    expected = stats_of(tmp_path / "a")
    scores = [row["dev_accuracy"] for row in expected]
    assert epochs_without_gain(scores[:-1]) == 1  # the epoch before the stop counted one

    original, interrupt_at = training._Loop.train_on, expected[-2]["step"] + 3

    def interrupted(self, *a):
        if self.step == interrupt_at:  # in the last epoch, a checkpoint after its start
            raise KeyboardInterrupt
        original(self, *a)

    monkeypatch.setattr(training._Loop, "train_on", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_main(output_dir=str(tmp_path / "b"), **args)
    monkeypatch.setattr(training._Loop, "train_on", original)
    load = export.load_weights

    def interrupted_load(*a):  # killed after the stop, before the final outputs
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "load_weights", interrupted_load)
    with pytest.raises(KeyboardInterrupt):
        run_main(output_dir=str(tmp_path / "b"), **args)
    monkeypatch.setattr(export, "load_weights", load)
    run_main(output_dir=str(tmp_path / "b"), **args)
    assert stats_of(tmp_path / "b") == expected
    for name in ("eval_results.txt", "model.safetensors"):
        assert read(tmp_path / "b" / name, "rb") == read(tmp_path / "a" / name, "rb"), name


@pytest.mark.parametrize("overrides, message", [
    (dict(early_stopping_patience=2, do_eval=False), "--early_stopping_patience needs"),
    (dict(early_stopping_patience=-1), "--early_stopping_patience=-1: must be >= 0"),
    (dict(early_stopping_patience=1, early_stopping_threshold=-0.1),
     "--early_stopping_threshold=-0.1: must be >= 0"),
])
def test_bad_early_stopping_flags(overrides, message, tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), tmp_path / "out"
    with pytest.raises(InputError, match=message):
        run_main(init_checkpoint=tiny_bert, data_dir=data, output_dir=str(out), **overrides)
    assert not out.exists()
