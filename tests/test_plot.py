"""Curves to look at: learning_curves.svg and TensorBoard events from a training run."""

import json
import os
import sys

import subprocess
import xml.etree.ElementTree as ET

import pytest
from absl import flags
from absl.testing import flagsaver
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
    assert _chart_titles(out / plot.CURVES_FILE) == ["loss", "dev metrics"]
    assert _series(out / plot.CURVES_FILE) == ["train_loss", "dev_loss", "dev_f1"]
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


SVG = "{http://www.w3.org/2000/svg}"


def _chart_titles(path) -> list[str]:
    """The titles of the charts in a learning_curves.svg (parsed as XML: well formed)."""
    root = ET.parse(path).getroot()
    assert root.tag == SVG + "svg" and root.find(SVG + "title").text == "learning curves"
    return [chart.find(SVG + "title").text for chart in root.iter(SVG + "svg") if chart != root]


def _series(path) -> list[str]:
    """The legend's names, chart by chart."""
    root = ET.parse(path).getroot()
    return [t.text for chart in root.iter(SVG + "svg") if chart != root
            for t in chart.findall(SVG + "text") if t.get("fill")]


def test_curves_need_no_plotting_library(tiny_bert, similarity_dir, tmp_path):
    """A training run imports no matplotlib to draw its curves (a run's fixed cost)."""
    out = tmp_path / "out"
    code = ("import sys, run_classifier; from absl import flags; "
            "flags.FLAGS(sys.argv); run_classifier.main(['run_classifier']); "
            "print('matplotlib' in sys.modules)")
    done = subprocess.run(
        [sys.executable, "-c", code, "run_classifier", "--task_name=sentence_similarity",
         f"--init_checkpoint={tiny_bert}", f"--data_dir={similarity_dir}",
         f"--output_dir={out}", "--do_train", "--num_train_epochs=1", "--precision=fp32"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert _chart_titles(out / plot.CURVES_FILE) == ["loss"]  # no dev set: no metric chart


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
    assert _chart_titles(tmp_path / plot.CURVES_FILE) == ["loss"]
    assert _series(tmp_path / plot.CURVES_FILE) == ["train_loss"]


def test_plot_command_errors_are_one_line(tmp_path, capsys):
    assert plot.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("training.plot: error: ") and "training_stats.json: cannot read" in err
    assert err.count("\n") == 1
    (tmp_path / plot.STATS_FILE).write_text("[]")
    assert plot.main(["plot", str(tmp_path)]) == 2
    assert "not a list of per-epoch rows" in capsys.readouterr().err
