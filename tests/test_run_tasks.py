"""End to end through run_classifier.main: regression, multi-label, generic files, class weights."""

import json
import logging
import os
import random

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from scipy.stats import pearsonr

import run_classifier
from conftest import make_sentence
from processors import InputError

FLAGS = flags.FLAGS
STSB_HEAD = ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
             "\tscore\n")
TAGS = {"dog": "animal", "cat": "animal", "bird": "animal", "car": "vehicle", "river": "nature",
        "tree": "nature"}


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def run_main(**overrides):
    """main with test defaults (tiny model, fp32, one checkpoint at the end) plus overrides."""
    values = dict(train_batch_size=8, eval_batch_size=16, predict_batch_size=16,
                  num_train_epochs=2.0, learning_rate=1e-3, precision="fp32",
                  save_checkpoints_steps=1000, keep_checkpoint_max=1)
    values.update(overrides)
    with flagsaver.flagsaver(**values):
        run_classifier.main(["run_classifier"])


def read_json(*parts):
    with open(os.path.join(*parts)) as f:
        return json.load(f)


def read_lines(*parts):
    with open(os.path.join(*parts)) as f:
        return f.read().splitlines()


def write_stsb(folder, n_train=32, n_dev=16, seed=0):
    """STS-B-format files: score 5 when the sentences match, low otherwise; test = dev's pairs."""
    rng = random.Random(seed)
    os.makedirs(folder)
    files = {"train.tsv": STSB_HEAD, "dev.tsv": STSB_HEAD,
             "test.tsv": STSB_HEAD.replace("\tscore", "")}
    for split, n in (("train", n_train), ("dev", n_dev)):
        for i in range(n):
            a = make_sentence(rng, rng.randint(3, 8))
            same = rng.random() < 0.5
            b = a if same else make_sentence(rng, rng.randint(3, 8))
            row = f"{i}\tg\tf\t2012\t{i:04d}\tnone\tnone\t{a}\t{b}"
            files[f"{split}.tsv"] += f"{row}\t{5.0 if same else rng.uniform(0, 1.5):.3f}\n"
            files["test.tsv"] += f"{row}\n" if split == "dev" else ""
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return str(folder)


def test_regression_end_to_end(tiny_bert, tmp_path):
    data, out = write_stsb(tmp_path / "stsb"), str(tmp_path / "out")
    run_main(task_name="sts-b", init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
             do_train=True, do_eval=True, do_predict=True)
    results = read_json(out, "eval_results.json")
    assert sorted(results) == ["eval_corr", "eval_loss", "eval_pearson", "eval_spearmanr",
                               "global_step", "loss"]
    scores = np.loadtxt(os.path.join(out, "test_results.tsv"))
    assert scores.shape == (16,)  # one predicted score per line
    gold = np.array([float(r.split("\t")[-1]) for r in read_lines(data, "dev.tsv")[1:]])
    assert results["eval_loss"] == pytest.approx(np.mean((scores - gold) ** 2), rel=1e-4)
    assert results["eval_pearson"] == pytest.approx(pearsonr(scores, gold)[0], rel=1e-4)
    predictions = read_lines(out, "predictions.tsv")
    assert predictions[0] == "index\tprediction"
    assert [float(p.split("\t")[1]) for p in predictions[1:]] == pytest.approx(scores)
    config = read_json(out, "config.json")
    assert config["problem_type"] == "regression" and len(config["id2label"]) == 1
    assert "dev_corr" in read_json(out, "training_stats.json")[0]

    from transformers import pipeline
    regressor = pipeline("text-classification", model=out, device="cpu")
    test = [r.split("\t") for r in read_lines(data, "test.tsv")[1:4]]
    got = [out["score"] for out in regressor([{"text": r[7], "text_pair": r[8]} for r in test])]
    assert got == pytest.approx(scores[:3], abs=1e-5)

    run_main(task_name="sts-b", data_dir=data, output_dir=out, do_eval=True)  # saved model
    assert read_json(out, "eval_results.json")["eval_loss"] == pytest.approx(
        results["eval_loss"], abs=1e-6)


def write_tagged(path, n, seed, test=False):
    """multilabel_csv rows: a sentence's tags are those of the TAGS words it contains."""
    rng = random.Random(seed)
    lines = ["text" if test else "text,labels"]
    for _ in range(n):
        words = make_sentence(rng, rng.randint(3, 8)).split()
        tags = sorted({TAGS[w] for w in words if w in TAGS})
        lines.append(" ".join(words) + ("" if test else "," + "|".join(tags)))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def tagged_dir(tmp_path):
    folder = tmp_path / "tags"
    folder.mkdir()
    write_tagged(folder / "train.csv", 48, 0)
    write_tagged(folder / "dev.csv", 16, 1)
    write_tagged(folder / "test.csv", 12, 2, test=True)
    return str(folder)


def test_multi_label_end_to_end_and_pipeline(tiny_bert, tagged_dir, tmp_path):
    out = str(tmp_path / "out")
    run_main(task_name="multilabel_csv", init_checkpoint=tiny_bert, data_dir=tagged_dir,
             output_dir=out, do_train=True, do_eval=True, do_predict=True)
    labels = ["animal", "nature", "vehicle"]
    config = read_json(out, "config.json")
    assert config["problem_type"] == "multi_label_classification"
    assert config["id2label"] == {"0": "animal", "1": "nature", "2": "vehicle"}
    results = read_json(out, "eval_results.json")
    assert sorted(results) == ["eval_ece", "eval_exact_match", "eval_loss", "eval_macro_f1",
                               "eval_micro_f1", "global_step", "loss"]
    probs = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    assert probs.shape == (12, 3) and ((probs > 0) & (probs < 1)).all()
    names = [line.split("\t")[1] for line in read_lines(out, "predictions.tsv")[1:]]
    assert names == ["|".join(n for n, p in zip(labels, row) if p >= 0.5) for row in probs]

    from transformers import pipeline
    classifier = pipeline("text-classification", model=out, top_k=None, device="cpu")
    texts = read_lines(tagged_dir, "test.csv")[1:]
    got = [{s["label"]: s["score"] for s in scores} for scores in classifier(texts)]
    np.testing.assert_allclose([[g[n] for n in labels] for g in got], probs, atol=1e-5)

    threshold = float(np.median(probs))  # some labels in, some out
    run_main(task_name="multilabel_csv", data_dir=tagged_dir, output_dir=out, do_predict=True,
             multi_label_threshold=threshold)
    names = [line.split("\t")[1] for line in read_lines(out, "predictions.tsv")[1:]]
    assert names == ["|".join(n for n, p in zip(labels, row) if p >= threshold) for row in probs]
    assert len(set(names)) > 1


def write_reviews(folder, n_pos, n_neg, seed=0):
    """Imbalanced JSON Lines reviews: "good" texts are pos, "bad" ones neg."""
    rng = random.Random(seed)
    os.makedirs(folder, exist_ok=True)
    rows = [("good", "pos")] * n_pos + [("bad", "neg")] * n_neg
    rng.shuffle(rows)
    for split in ("train", "dev"):
        with open(os.path.join(folder, f"{split}.jsonl"), "w") as f:
            for word, label in rows:
                f.write(json.dumps({"review": f"{make_sentence(rng, 4)} {word}",
                                    "stars": label}) + "\n")
    return str(folder)


def test_generic_jsonl_with_balanced_class_weights(tiny_bert, tmp_path, caplog):
    data = write_reviews(tmp_path / "reviews", n_pos=28, n_neg=4)
    common = dict(task_name="generic", init_checkpoint=tiny_bert, data_dir=data, do_train=True,
                  do_eval=True, num_train_epochs=1.0, data_format="jsonl",
                  text_a_column="review", label_column="stars")
    with caplog.at_level(logging.INFO):
        run_main(output_dir=str(tmp_path / "balanced"), class_weights="balanced", **common)
    log = caplog.text
    assert "train label distribution: neg: 4 (12.5%), pos: 28 (87.5%)" in log
    assert "dev label distribution: neg: 4 (12.5%), pos: 28 (87.5%)" in log
    assert "Class weights: neg: 4.0000, pos: 0.5714" in log  # 32 / (2 * 4), 32 / (2 * 28)
    run_main(output_dir=str(tmp_path / "plain"), **common)
    balanced, plain = (read_json(tmp_path, name, "training_stats.json")[0]["train_loss"]
                       for name in ("balanced", "plain"))
    assert balanced != pytest.approx(plain, rel=1e-3)
    assert read_json(tmp_path, "plain", "config.json")["id2label"] == {"0": "neg", "1": "pos"}
    with pytest.raises(InputError, match="its model was trained for .* labels neg, pos; this "
                                         "task is single_label_classification with labels "
                                         "pos, neg"):
        run_main(output_dir=str(tmp_path / "plain"),
                 **{**common, "do_train": False, "labels": ["pos", "neg"]})


@pytest.mark.parametrize("overrides,message", [
    (dict(task_name="sts-b", class_weights="balanced"),
     "--class_weights=balanced: only for single-label classification"),
    (dict(task_name="sentence_similarity", class_weights="1,2,3"),
     "--class_weights=1,2,3: expected none, balanced, or 2 positive numbers"),
    (dict(task_name="multilabel_csv", multi_label_threshold=1.0),
     "--multi_label_threshold=1.0: must be a number in (0, 1) or tune"),
    (dict(task_name="cola", labels=["a", "b"]), "--labels=a,b: not used by --task_name=cola"),
])
def test_new_flags_fail_before_any_work(tiny_bert, tagged_dir, tmp_path, overrides, message):
    out = tmp_path / "out"
    data = write_stsb(tmp_path / "stsb") if overrides["task_name"] == "sts-b" else tagged_dir
    with pytest.raises(InputError) as info:
        run_main(init_checkpoint=tiny_bert, data_dir=data, output_dir=str(out), do_train=True,
                 **overrides)
    assert str(info.value).startswith(message)
    assert not out.exists() or os.listdir(out) == []


def test_task_name_help_lists_the_tasks(capsys):
    run_main(task_name="help")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["task", "problem_type", "metrics", "labels"]
    assert len(lines) == 16 and any(line.startswith("sts-b ") for line in lines)


def test_the_training_arguments_come_from_the_settings_by_keyword(tmp_path):
    """run_classifier builds TrainArgs by keyword; the resume signature's training fields are
    TrainArgs.resume_key, in the order a refused resume names the first that differs."""
    from types import SimpleNamespace
    import torch

    with flagsaver.flagsaver(output_dir=str(tmp_path), learning_rate=3e-4, seed=7,
                             class_weights="2,1", compile="off"):
        s = run_classifier.settings(FLAGS, run_classifier)
    processor = SimpleNamespace(get_labels=lambda: ["a", "b"],
                                problem_type="single_label_classification")
    train = type("Train", (), {"labels": [0, 1, 1], "__len__": lambda self: 3})()
    run = SimpleNamespace(processor=processor, datasets={"train": train},
                          model=torch.nn.Linear(1, 1), device=torch.device("cpu"),
                          precision="fp32")
    args = run_classifier.train_args(s, run)
    assert (args.learning_rate, args.seed, args.output_dir, args.class_weights,
            args.precision, args.compile) == (3e-4, 7, str(tmp_path), (2.0, 1.0), "fp32", False)
    assert list(args.resume_key) == ["train_batch_size", "num_train_epochs", "learning_rate",
                                     "warmup_proportion", "seed", "class_weights",
                                     "weight_decay", "adam_epsilon", "max_grad_norm",
                                     "precision"]
    assert args.resume_key["class_weights"] == [2.0, 1.0]
