"""A real fine-tune: the embedded MiniLM on 256 CoLA rows (slow: tens of seconds)."""

import json
import os

import pytest
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import glue_dir


@pytest.mark.slow
def test_minilm_fine_tunes_on_256_cola_rows(tmp_path):
    cola = glue_dir("CoLA")
    data = tmp_path / "cola"
    data.mkdir()
    for split, rows in (("train", 256), ("dev", 128)):
        with open(os.path.join(cola, f"{split}.tsv"), encoding="utf-8") as f:
            (data / f"{split}.tsv").write_text("".join(f.readlines()[:rows]))
    out = tmp_path / "out"
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(task_name="cola", data_dir=str(data), output_dir=str(out),
                             do_train=True, do_eval=True, learning_rate=1e-4,
                             num_train_epochs=2.0, eval_batch_size=64):
        run_classifier.main(["run_classifier"])
    results = json.loads((out / "eval_results.json").read_text())
    stats = json.loads((out / "training_stats.json").read_text())
    assert results["global_step"] == 16 and "eval_mcc" in results
    assert results["eval_accuracy"] >= 0.6  # at least near the majority class
    assert stats[1]["train_loss"] < stats[0]["train_loss"]
    config = json.loads((out / "config.json").read_text())
    assert config["hidden_size"] == 384 and config["id2label"] == {"0": "0", "1": "1"}
