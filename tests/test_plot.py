"""Curves to look at: learning_curves.png and TensorBoard events from a training run."""

import json
import os
import sys

import pytest
from absl import flags
from absl.testing import flagsaver
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import run_classifier
from processors import InputError
from training import plot


def run_main(**overrides):
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    values = dict(task_name="sentence_similarity", train_batch_size=8, eval_batch_size=16,
                  num_train_epochs=3.0, learning_rate=1e-3, precision="fp32", do_train=True)
    with flagsaver.flagsaver(**{**values, **overrides}):
        run_classifier.main(["run_classifier"])


def test_training_writes_learning_curves_and_tensorboard_events(tiny_bert, similarity_dir,
                                                                tmp_path):
    out = tmp_path / "out"
    run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=str(out),
             do_eval=True, tensorboard=True)
    image = imread(out / plot.CURVES_FILE)
    assert image.shape[:2] == (400, 1000)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    steps = {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    assert steps == {"train/loss": [10, 20], "train/learning_rate": [10, 20],
                     "train/epoch_loss": [8, 16, 24], "dev/loss": [8, 16, 24],
                     "dev/f1": [8, 16, 24]}
    stats = json.loads((out / plot.STATS_FILE).read_text())
    assert [e.value for e in events.Scalars("dev/loss")] == pytest.approx(
        [row["dev_loss"] for row in stats])
    # 24 steps, 2 of them warmup: the rate at step 10 is the peak times 14/22
    assert events.Scalars("train/learning_rate")[0].value == pytest.approx(1e-3 * 14 / 22)


def test_no_curves_without_matplotlib(tiny_bert, similarity_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(plot, "has_matplotlib", lambda: False)
    out = tmp_path / "out"
    run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=str(out),
             num_train_epochs=1.0)
    assert (out / plot.STATS_FILE).exists() and not (out / plot.CURVES_FILE).exists()


def test_tensorboard_flag_without_the_package_fails_before_any_work(tiny_bert, similarity_dir,
                                                                    tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if it were not installed
    out = tmp_path / "out"
    with pytest.raises(InputError, match="^--tensorboard: needs the tensorboard package"):
        run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=str(out),
                 tensorboard=True)
    assert not out.exists()


def test_plot_command_redraws_from_training_stats(tmp_path, capsys):
    stats = [{"epoch": 1, "step": 5, "train_loss": 0.7, "time_s": 1.0},
             {"epoch": 2, "step": 10, "train_loss": 0.5, "time_s": 1.0}]
    (tmp_path / plot.STATS_FILE).write_text(json.dumps(stats))
    assert plot.main(["plot", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(tmp_path, plot.CURVES_FILE)
    assert imread(tmp_path / plot.CURVES_FILE).shape[:2] == (400, 1000)


def test_plot_command_errors_are_one_line(tmp_path, capsys):
    assert plot.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("training.plot: error: ") and "training_stats.json: cannot read" in err
    assert err.count("\n") == 1
    (tmp_path / plot.STATS_FILE).write_text("[]")
    assert plot.main(["plot", str(tmp_path)]) == 2
    assert "not a list of per-epoch rows" in capsys.readouterr().err
