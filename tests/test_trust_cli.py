"""Issue 32 end to end through run_classifier.main on the tiny BERT: calibration folded into
the saved model, tuned thresholds stored and used by --do_predict, report.html for
classification, regression, multi-label and windows, and the degenerate-case warnings."""

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest

from conftest import write_keyword_data
from test_report import EVIL, Page
from test_run_tasks import parsed_flags, read_json, read_lines, run_main, write_stsb  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def report_of(out):
    with open(os.path.join(out, "report.html"), encoding="utf-8") as f:
        text = f.read()
    page = Page(text)
    assert "script" not in page.tags and page.urls == []
    return text, page


def keyword_dir(tmp_path):
    folder = write_keyword_data(tmp_path / "kw", n_train=48, n_dev=8)
    with open(os.path.join(folder, "dev.csv"), "a") as f:  # one is a mistake, shown (< 20)
        f.write(f'"good {EVIL}",neg\n"good {EVIL}",pos\n')
    return folder


def test_calibration_threshold_and_report(tiny_bert, tmp_path):
    data, out = keyword_dir(tmp_path), str(tmp_path / "out")
    run_main(task_name="generic", init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
             do_train=True, do_eval=True, do_predict=True, learning_rate=1e-2,
             calibration="temperature", labels=["neg", "pos"])
    results = read_json(out, "eval_results.json")
    assert results["eval_temperature"] > 0 and "eval_ece_before_calibration" in results
    assert results["eval_ece"] <= results["eval_ece_before_calibration"] + 1e-9
    config = read_json(out, "config.json")
    assert config["calibration_temperature"] == [results["eval_temperature"]]
    assert config["finetuning_task"] == "generic"
    assert read_json(out, "tokenizer_config.json")["model_max_length"] == 128
    text, page = report_of(out)
    assert {"summary", "curves", "confusion", "per-class", "reliability",
            "mistakes"} <= set(page.ids)
    assert f"good {EVIL}" in page.cells and EVIL not in text

    from transformers import pipeline  # the saved (calibrated) model, no code of ours
    probs = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    classifier = pipeline("text-classification", model=out, top_k=None, device="cpu")
    texts = [line.rsplit(",", 1)[0] for line in read_lines(data, "test.csv")[1:]]
    got = [{s["label"]: s["score"] for s in scores} for scores in classifier(texts)]
    np.testing.assert_allclose([[g["neg"], g["pos"]] for g in got], probs, atol=1e-4)


def test_multi_label_tuned_thresholds_on_the_bundled_sample(tiny_bert, tmp_path):
    data, out = os.path.join(ROOT, "data", "multilabel"), str(tmp_path / "out")
    run_main(task_name="multilabel_csv", init_checkpoint=tiny_bert, data_dir=data,
             output_dir=out, do_train=True, do_eval=True, do_predict=True,
             learning_rate=1e-2, num_train_epochs=1.0, multi_label_threshold="tune",
             train_batch_size=32, calibration="temperature")
    results = read_json(out, "eval_results.json")
    assert results["eval_macro_f1"] >= results["eval_macro_f1_at_0.5"]
    stored = read_json(out, "config.json")["decision_thresholds"]
    names = [read_json(out, "config.json")["id2label"][str(i)] for i in range(len(stored))]
    assert sorted(stored) == sorted(names)
    probs = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    predicted = [line.split("\t")[1] for line in read_lines(out, "predictions.tsv")[1:]]
    limits = np.array([stored[n] for n in names])
    assert predicted == ["|".join(n for n, p, t in zip(names, row, limits) if p >= t)
                         for row in probs]
    text, page = report_of(out)
    assert {"per-label", "reliability", "mistakes"} <= set(page.ids)


def test_regression_report_and_constant_targets_warning(tiny_bert, tmp_path, caplog):
    data, out = write_stsb(tmp_path / "stsb"), str(tmp_path / "out")
    run_main(task_name="sts-b", init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
             do_train=True, do_eval=True)
    text, page = report_of(out)
    assert {"scatter", "errors"} <= set(page.ids)
    lines = read_lines(data, "dev.tsv")
    with open(os.path.join(data, "dev.tsv"), "w") as f:  # every dev score the same
        f.write("\n".join([lines[0]] + [r.rsplit("\t", 1)[0] + "\t2.0" for r in lines[1:]]))
    with caplog.at_level(logging.WARNING):
        run_main(task_name="sts-b", data_dir=data, output_dir=out, do_eval=True)
    message = "dev targets are all 2: correlation is undefined (reported as 0.0)"
    assert message in caplog.text and message in report_of(out)[0]


def test_windows_report_and_task_mismatch(tiny_bert, tmp_path, caplog):
    data, out = keyword_dir(tmp_path), str(tmp_path / "out")
    run_main(task_name="generic", init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
             do_train=True, do_eval=True, long_text="windows", max_seq_length=8,
             labels=["neg", "pos"])
    text, page = report_of(out)
    assert "windows" in page.cells or "windows" in text
    assert "document" in text
    config = read_json(out, "config.json")
    config["finetuning_task"] = "sst-2"  # as a model trained on another task would say
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f)
    os.remove(os.path.join(out, "integrity.json"))
    with caplog.at_level(logging.WARNING):
        run_main(task_name="generic", data_dir=data, output_dir=out, do_eval=True,
                 long_text="windows", max_seq_length=8, labels=["neg", "pos"])
    assert "fine-tuned for task sst-2, and is evaluated on task generic" in caplog.text


def test_one_class_train_and_new_head_warnings(tiny_bert, tmp_path, caplog):
    data, out = keyword_dir(tmp_path), str(tmp_path / "out")
    run_main(task_name="generic", init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
             do_train=True, num_train_epochs=1.0, labels=["neg", "pos"])
    one = tmp_path / "one"
    shutil.copytree(data, one)
    rows = read_lines(one, "train.csv")
    (one / "train.csv").write_text("\n".join([rows[0]] + [r.rsplit(",", 1)[0] + ",pos"
                                                          for r in rows[1:]]) + "\n")
    with caplog.at_level(logging.WARNING):
        run_main(task_name="generic", init_checkpoint=out, data_dir=str(one),
                 output_dir=str(tmp_path / "o2"), do_train=True, num_train_epochs=1.0,
                 labels=["pos", "neg", "other"])
    assert "train has one class only (pos)" in caplog.text
    assert "its classifier head was trained for single_label_classification with labels " \
           "neg, pos" in caplog.text


@pytest.mark.parametrize("overrides,message", [
    (dict(calibration="temperature"), "--calibration=temperature needs --do_train and "
     "--do_eval"),
    (dict(threshold="2"), "--threshold=2: must be a number in (0, 1) or tune"),
])
def test_bad_flags(tiny_bert, tmp_path, overrides, message):
    from modeling.errors import InputError
    with pytest.raises(InputError, match=re.escape(message)):
        run_main(task_name="generic", init_checkpoint=tiny_bert,
                 data_dir=keyword_dir(tmp_path), output_dir=str(tmp_path / "o"),
                 do_predict=True, **overrides)
