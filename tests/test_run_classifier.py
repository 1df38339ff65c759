"""End-to-end tests of run_classifier.main on a tiny random BERT (flagsaver)."""

import json
import os

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver

import run_classifier
from processors import InputError, get_processor
from training import loop as training

FLAGS = flags.FLAGS


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def run_main(**overrides):
    """Runs main with test defaults (tiny model, fp32, small batches) plus overrides."""
    values = dict(task_name="sentence_similarity", train_batch_size=8, eval_batch_size=16,
                  predict_batch_size=16, num_train_epochs=2.0, learning_rate=1e-3,
                  precision="fp32", save_checkpoints_steps=5, keep_checkpoint_max=2)
    values.update(overrides)
    with flagsaver.flagsaver(**values):
        run_classifier.main(["run_classifier"])


def read(path):
    with open(path) as f:
        return f.read()


@pytest.fixture
def trained(tiny_bert, similarity_dir, tmp_path):
    out = str(tmp_path / "out")
    run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=out,
             do_train=True, do_eval=True, do_predict=True)
    return out


def test_train_eval_predict_writes_google_outputs(trained, similarity_dir):
    lines = read(os.path.join(trained, "eval_results.txt")).splitlines()
    keys = [line.split(" = ")[0] for line in lines]
    assert keys == sorted(["eval_accuracy", "eval_ece", "eval_f1", "eval_loss", "global_step",
                           "loss"])
    results = json.loads(read(os.path.join(trained, "eval_results.json")))
    assert results["global_step"] == 16 and results["loss"] == results["eval_loss"]
    probs = np.loadtxt(os.path.join(trained, "test_results.tsv"), delimiter="\t")
    assert probs.shape == (20, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    predictions = read(os.path.join(trained, "predictions.tsv")).splitlines()
    assert predictions[0] == "index\tprediction" and len(predictions) == 21
    assert [p.split("\t")[1] for p in predictions[1:]] == [str(i) for i in probs.argmax(1)]
    stats = json.loads(read(os.path.join(trained, "training_stats.json")))
    assert [row["epoch"] for row in stats] == [1, 2]
    assert {"train_loss", "dev_loss", "dev_f1", "time_s"} <= set(stats[0])
    config = json.loads(read(os.path.join(trained, "config.json")))
    assert config["id2label"] == {"0": "0", "1": "1"} and config["label2id"] == {"0": 0, "1": 1}
    run_config = json.loads(read(os.path.join(trained, "run_config.json")))
    assert run_config["flags"]["task_name"] == "sentence_similarity"
    assert run_config["resolved"]["precision"] == "fp32"
    names = sorted(os.listdir(trained))
    assert [n for n in names if n.startswith("checkpoint-")] == ["checkpoint-15", "checkpoint-16"]
    assert "best_model" in names and not [n for n in names if n.endswith(".tmp")]


def test_loss_falls_when_overfitting(tiny_bert, tmp_path):
    from conftest import write_similarity_data
    data = write_similarity_data(tmp_path / "data", n_train=32)
    out = str(tmp_path / "out")
    run_main(init_checkpoint=tiny_bert, data_dir=data, output_dir=out, do_train=True,
             num_train_epochs=40.0, learning_rate=1e-3, warmup_proportion=0.0)
    stats = json.loads(read(os.path.join(out, "training_stats.json")))
    assert stats[-1]["train_loss"] < 0.5 * stats[0]["train_loss"]


def test_pipeline_reload_predicts_the_same(trained, similarity_dir):
    from transformers import pipeline
    from processors import get_processor
    examples = get_processor("sentence_similarity").get_test_examples(similarity_dir)
    classifier = pipeline("text-classification", model=trained, top_k=None, device="cpu")
    outputs = classifier([{"text": e.text_a, "text_pair": e.text_b} for e in examples])
    got = np.array([[s["score"] for s in sorted(out, key=lambda s: s["label"])]
                    for out in outputs])
    expected = np.loadtxt(os.path.join(trained, "test_results.tsv"), delimiter="\t")
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_eval_only_reuses_the_trained_model(trained, similarity_dir):
    before = json.loads(read(os.path.join(trained, "eval_results.json")))
    run_main(data_dir=similarity_dir, output_dir=trained, do_eval=True)
    after = json.loads(read(os.path.join(trained, "eval_results.json")))
    assert after["eval_accuracy"] == before["eval_accuracy"]
    assert after["eval_loss"] == pytest.approx(before["eval_loss"], abs=1e-6)


def test_fine_tuned_init_checkpoint_keeps_its_head(trained, similarity_dir, tmp_path):
    """Eval and predict with --init_checkpoint=<a fine-tuned dir> use its classifier head
    (a fresh random head would score by chance), as the run that trained it did."""
    out = str(tmp_path / "elsewhere")
    run_main(init_checkpoint=trained, data_dir=similarity_dir, output_dir=out, do_eval=True,
             do_predict=True)
    before = json.loads(read(os.path.join(trained, "eval_results.json")))
    after = json.loads(read(os.path.join(out, "eval_results.json")))
    assert after["eval_loss"] == pytest.approx(before["eval_loss"], abs=1e-6)
    assert read(os.path.join(out, "test_results.tsv")) == read(
        os.path.join(trained, "test_results.tsv"))


def test_a_head_for_other_labels_is_not_kept(trained):
    from modeling.model import head_trained_for, resolve_source
    source = resolve_source(trained, None, None)
    labels = get_processor("sentence_similarity").get_labels()
    assert head_trained_for(source, labels, "single_label_classification")
    assert not head_trained_for(source, labels[::-1], "single_label_classification")
    assert not head_trained_for(source, None, "regression")
    assert not head_trained_for(resolve_source(None, None, None), labels,
                                "single_label_classification")


def test_finished_run_refuses_to_train_again(trained, similarity_dir, tiny_bert):
    with pytest.raises(InputError, match="already finished.*--overwrite_output_dir"):
        run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=trained,
                 do_train=True)
    run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=trained,
             do_train=True, overwrite_output_dir=True, num_train_epochs=1.0)
    assert json.loads(read(os.path.join(trained, "training_stats.json")))[-1]["step"] == 8


def test_resume_after_interruption_matches_uninterrupted_run(tiny_bert, similarity_dir,
                                                             tmp_path, monkeypatch):
    flags_ = dict(init_checkpoint=tiny_bert, data_dir=similarity_dir, do_train=True,
                  do_eval=True, do_predict=True, save_checkpoints_steps=3)
    run_main(output_dir=str(tmp_path / "a"), **flags_)
    original = training._Loop.train_on

    def crash_at_step_7(self, *args):
        if self.step == 7:
            raise KeyboardInterrupt
        original(self, *args)

    monkeypatch.setattr(training._Loop, "train_on", crash_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        run_main(output_dir=str(tmp_path / "b"), **flags_)
    monkeypatch.setattr(training._Loop, "train_on", original)
    run_main(output_dir=str(tmp_path / "b"), **flags_)
    for name in ("eval_results.txt", "test_results.tsv", "training_stats.json"):
        a, b = read(tmp_path / "a" / name), read(tmp_path / "b" / name)
        if name == "training_stats.json":  # wall-clock times differ
            a, b = ([{k: v for k, v in r.items() if k != "time_s"} for r in json.loads(x)]
                    for x in (a, b))
        assert a == b, name


def test_checkpoint_from_another_run_is_refused(trained, similarity_dir, tiny_bert):
    os.remove(os.path.join(trained, "config.json"))  # unfinished: it would resume
    with pytest.raises(InputError, match="different run.*max_seq_length"):
        run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=trained,
                 do_train=True, max_seq_length=64)


@pytest.mark.parametrize("overrides, message", [
    (dict(), "at least one of --do_train"),
    (dict(do_train=True, max_seq_length=2), "--max_seq_length=2: must be at least 3"),
    (dict(do_train=True, max_seq_length=129), "--max_seq_length=129: must be at most"),
    (dict(do_train=True, train_batch_size=0), "--train_batch_size=0: must be positive"),
    (dict(do_train=True, learning_rate=-1.0), "--learning_rate=-1.0: must be positive"),
    (dict(do_train=True, num_train_epochs=0.0), "--num_train_epochs=0.0: must be positive"),
    (dict(do_train=True, do_lower_case=False), "--do_lower_case=False: the checkpoint"),
    (dict(do_train=True, task_name="nope"), "--task_name=nope: unknown task"),
    (dict(do_train=True, precision="fp16"), "--precision=fp16: needs a CUDA GPU"),
])
def test_bad_flags_fail_before_any_work(overrides, message, tiny_bert, similarity_dir,
                                        tmp_path):
    out = tmp_path / "out"
    args = dict(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=str(out))
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        run_main(**{**args, **overrides})
    assert not out.exists() or os.listdir(out) == []


def test_missing_split_file_names_flag_and_path(tiny_bert, similarity_dir, tmp_path):
    os.remove(os.path.join(similarity_dir, "test.csv"))
    with pytest.raises(InputError, match=r"^.*/test\.csv: file not found$"):
        run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir,
                 output_dir=str(tmp_path / "out"), do_predict=True)


def test_output_dir_that_is_a_file(tiny_bert, similarity_dir, tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(InputError, match="--output_dir=.*: not a directory"):
        run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=str(path),
                 do_train=True)


def test_training_stops_at_the_first_non_finite_loss(tiny_bert, tmp_path, monkeypatch):
    """The loss is checked only when pending losses are flushed (every few steps), yet the
    report names the first bad step, and nothing trained after it is saved."""
    from safetensors.torch import load_file
    from conftest import write_similarity_data
    from modeling.errors import TrainingDiverged
    data = write_similarity_data(tmp_path / "data", n_train=64)
    out = tmp_path / "out"
    real, calls = training.training_loss, []

    def nan_at_step_7(*args):
        calls.append(1)
        return real(*args) * (float("nan") if len(calls) == 7 else 1.0)

    monkeypatch.setattr(training, "training_loss", nan_at_step_7)
    with pytest.raises(TrainingDiverged, match=r"^training diverged: the loss was not finite at "
                       r"step 7; lower --learning_rate=0\.001\. Kept the last good checkpoint, "
                       + str(out / "checkpoint-5") + "; no model was saved$"):
        run_main(init_checkpoint=tiny_bert, data_dir=data, output_dir=str(out), do_train=True,
                 do_eval=True)  # 8 steps an epoch: checked at 5 (a checkpoint) and at 8
    assert sorted(os.listdir(out)) == [".lock", "cache", "checkpoint-5", "run_config.json"]
    weights = load_file(out / "checkpoint-5" / "model.safetensors")
    assert all(bool(w.isfinite().all()) for w in weights.values())


def test_the_final_eval_reuses_the_last_epochs_dev_results(
        tiny_bert, similarity_dir, tmp_path, monkeypatch):
    """The final model is the last epoch's: its dev set is not predicted twice."""
    from training import evaluation
    calls, real = [], evaluation.predict_logits
    monkeypatch.setattr(evaluation, "predict_logits",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    out = str(tmp_path / "out")
    run_main(init_checkpoint=tiny_bert, data_dir=similarity_dir, output_dir=out,
             do_train=True, do_eval=True)
    assert len(calls) == 2  # one per epoch
    last = json.loads(read(os.path.join(out, "training_stats.json")))[-1]
    results = json.loads(read(os.path.join(out, "eval_results.json")))
    assert results["eval_f1"] == last["dev_f1"] and results["eval_loss"] == last["dev_loss"]
    assert results["global_step"] == last["step"]


def test_do_lower_case_left_unset_follows_the_model(similarity_dir, tmp_path):
    """A flag left at its default never contradicts the model: a case-preserving RoBERTa
    trains without --nodo_lower_case, and a cased BERT dir that records its casing is read
    cased; given explicitly, a mismatch is refused before any work."""
    from conftest import write_tiny_bert
    from tiny_families import write_tiny_family
    from training.cli import settings
    roberta = write_tiny_family("roberta", str(tmp_path / "roberta"))
    common = dict(data_dir=similarity_dir, max_seq_length=64, num_train_epochs=1.0)
    run_main(init_checkpoint=roberta, output_dir=str(tmp_path / "out"), do_train=True, **common)
    run_config = json.loads(read(tmp_path / "out" / "run_config.json"))
    assert run_config["flags"]["do_lower_case"] is False
    with pytest.raises(InputError, match=r"^--do_lower_case=True: the tokenizer of .* keeps "
                       "case; pass --nodo_lower_case$"):
        run_main(init_checkpoint=roberta, output_dir=str(tmp_path / "refused"), do_train=True,
                 do_lower_case=True, **common)
    assert not (tmp_path / "refused").exists()
    cased = write_tiny_bert(tmp_path / "cased", do_lower_case=False)
    values = dict(task_name="sentence_similarity", init_checkpoint=cased, do_train=True,
                  output_dir=str(tmp_path / "bert"), **common)
    with flagsaver.flagsaver(**values):
        assert run_classifier.validate(settings(FLAGS, run_classifier)).settings.do_lower_case \
            is False
    with flagsaver.flagsaver(**values, do_lower_case=True):
        with pytest.raises(InputError, match="^--do_lower_case=True: the checkpoint's "
                           "tokenizer has do_lower_case=False; pass --nodo_lower_case$"):
            run_classifier.validate(settings(FLAGS, run_classifier))


def test_unset_inference_batch_sizes_fill_the_device():
    """--eval_batch_size and --predict_batch_size: Google's 8 on the CPU; on CUDA, 16384
    tokens' worth of rows (8 to 128); a size the user gives is kept."""
    import dataclasses
    import torch
    from training.cli import settings
    with flagsaver.flagsaver(max_seq_length=256):
        s = settings(FLAGS, run_classifier)
    assert s.eval_batch_size is None and s.predict_batch_size is None
    cpu = run_classifier.inference_sizes(s, torch.device("cpu"))
    assert (cpu.eval_batch_size, cpu.predict_batch_size) == (8, 8)
    cuda = run_classifier.inference_sizes(s, torch.device("cuda"))
    assert (cuda.eval_batch_size, cuda.predict_batch_size) == (64, 64)
    given = run_classifier.inference_sizes(dataclasses.replace(s, eval_batch_size=3),
                                           torch.device("cuda"))
    assert (given.eval_batch_size, given.predict_batch_size) == (3, 64)


def test_a_cached_run_reads_no_row_of_a_built_in_split(tiny_bert, similarity_dir, tmp_path,
                                                       monkeypatch):
    """The first run writes an examples record per split; the next one finds the features
    without parsing train.csv, with the same results; --overwrite_cache parses again."""
    import processors.table
    cache, opened, real = str(tmp_path / "cache"), [], processors.table.read_rows
    monkeypatch.setattr(processors.table, "read_rows",
                        lambda path, *a: opened.append(os.path.basename(path)) or real(path, *a))
    common = dict(init_checkpoint=tiny_bert, data_dir=similarity_dir, cache_dir=cache,
                  do_train=True, do_eval=True, num_train_epochs=1.0)
    run_main(output_dir=str(tmp_path / "a"), **common)
    assert opened.count("train.csv") == 1
    assert len([n for n in os.listdir(cache) if n.startswith("examples_")]) == 2
    run_main(output_dir=str(tmp_path / "b"), **common)
    assert opened.count("train.csv") == 1
    results = [json.loads(read(str(tmp_path / out / "eval_results.json"))) for out in "ab"]
    assert results[0] == results[1]
    run_main(output_dir=str(tmp_path / "c"), overwrite_cache=True, **common)
    assert opened.count("train.csv") == 2  # the pass again (its examples feed the build)
