"""Encoders of every tested family through the CLI: train, eval, predict, resume after a
SIGKILL, reload in transformers.pipeline, extract features; and their features against
the tokenizer's own pair encoding on all of CoLA and MRPC."""

import concurrent.futures
import json
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from tiny_families import FAMILIES, write_tiny_family

import run_classifier
from conftest import (MORE_ENCODERS, glue_dir, kill_after_checkpoint, write_similarity_data,
                      write_tiny_encoder)
from modeling import families
from processors import InputError, get_processor, split_examples
from processors.hf_features import tokenizer_feature_arrays

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OTHERS = [name for name in FAMILIES if name != "bert"]
TRAIN = dict(task_name="sentence_similarity", train_batch_size=4, eval_batch_size=16,
             predict_batch_size=16, num_train_epochs=2.0, learning_rate=1e-3, precision="fp32",
             save_checkpoints_steps=4, keep_checkpoint_max=2, max_seq_length=64,
             do_lower_case=False, do_train=True, do_eval=True, do_predict=True, seed=3)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict:
    """family -> a tiny random model dir (cased tokenizer), built once per session."""
    root = tmp_path_factory.mktemp("families")
    return {name: write_tiny_family(name, str(root / name)) for name in FAMILIES}


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> str:
    return write_similarity_data(tmp_path_factory.mktemp("data"), n_train=32, n_dev=16,
                                 n_test=12)


def run_main(**values):
    with flagsaver.flagsaver(**values):
        run_classifier.main(["run_classifier"])


def command(flag_values: dict) -> list[str]:
    args = [f"--{k}" if v is True else f"--no{k}" if v is False else f"--{k}={v}"
            for k, v in flag_values.items()]
    return [sys.executable, os.path.join(ROOT, "run_classifier.py"), *args]


def start_killed_run(flag_values: dict, log: str) -> subprocess.Popen:
    with open(log, "w") as err:
        return subprocess.Popen(command(flag_values), stdout=subprocess.DEVNULL, stderr=err,
                                cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))


def read(path):
    with open(path) as f:
        return f.read()


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_resumes_and_reloads(family, tiny, data, tmp_path, caplog):
    common = dict(TRAIN, init_checkpoint=tiny[family], data_dir=data)
    killed_out = str(tmp_path / "killed")
    proc = start_killed_run(dict(common, output_dir=killed_out), str(tmp_path / "killed.log"))
    # Watched from a thread while the uninterrupted run trains here: the command may reach
    # its first checkpoint, and finish, before this process's run does.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        killed = pool.submit(kill_after_checkpoint, proc, killed_out)
        out = str(tmp_path / "out")
        run_main(**common, output_dir=out)
        assert killed.result() == -signal.SIGKILL, read(tmp_path / "killed.log")
    assert not os.path.exists(os.path.join(killed_out, "config.json"))
    with caplog.at_level(logging.INFO, logger="training.checkpoint"):
        run_main(**common, output_dir=killed_out)
    assert any("Resuming from" in r.getMessage() for r in caplog.records)

    probs = np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")
    assert probs.shape == (12, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    resumed = np.loadtxt(os.path.join(killed_out, "test_results.tsv"), delimiter="\t")
    np.testing.assert_allclose(resumed, probs, atol=1e-4)
    keys = [line.split(" = ")[0] for line in read(os.path.join(out, "eval_results.txt"))
            .splitlines()]
    assert keys == ["eval_accuracy", "eval_ece", "eval_f1", "eval_loss", "global_step", "loss"]
    assert read(os.path.join(out, "predictions.tsv")).count("\n") == 13
    assert os.path.isfile(os.path.join(out, "best_model", "config.json"))
    assert os.path.isfile(os.path.join(out, "vocab.txt")) == (family == "bert")

    from transformers import pipeline
    classifier = pipeline("text-classification", model=out, top_k=None, device="cpu")
    rows = [line.split(",", 1) for line in read(os.path.join(data, "test.csv")).splitlines()]
    texts = [{"text": a.strip('"'), "text_pair": b.strip('"')} for a, b in rows]
    scores = [{d["label"]: d["score"] for d in row} for row in classifier(texts)]
    np.testing.assert_allclose([[s["0"], s["1"]] for s in scores], probs, atol=1e-4)


@pytest.mark.parametrize("family", ["roberta", "distilbert", "electra"])
def test_family_extract_features(family, tiny, tmp_path):
    """Layers by index, mean pooling equal to the model's own states; pooler only where the
    model has a trained one (RobertaModel does; DistilBERT and ELECTRA have none)."""
    import torch
    from extract_features import ExtractArgs, extract_to_files, load_encoder
    from modeling.model import load_config, resolve_source
    from processors.base import InputExample
    source = resolve_source(tiny[family], None, None)
    tokenizer = families.load_tokenizer(tiny[family])
    model = load_encoder(source, load_config(source.config_file, 2, None), "mean")
    examples = [InputExample("0", "Olga sees lamps."), InputExample("1", "The kids", "hide.")]
    args = ExtractArgs((-1, 0), "mean", 64, 8, str(tmp_path / "f.jsonl"),
                       str(tmp_path / "v.npy"))
    extract_to_files(model, tokenizer, examples, args, torch.device("cpu"), "fp32", {})
    inputs = tokenizer("The kids", "hide.", return_tensors="pt")
    with torch.no_grad():
        states = model(**inputs, output_hidden_states=True).hidden_states
    np.testing.assert_allclose(np.load(tmp_path / "v.npy")[1], states[-1][0].mean(0), atol=1e-5)
    line = read(tmp_path / "f.jsonl").splitlines()[1]
    assert line.count('"token"') == inputs["input_ids"].shape[1]
    if family == "roberta":
        assert load_encoder(source, None, "pooler").pooler is not None
    else:
        with pytest.raises(InputError, match="^--pooling=pooler: the .* has no trained pooler"):
            load_encoder(source, None, "pooler")


def test_casing_is_checked_against_the_tokenizer(tiny, data, tmp_path):
    with pytest.raises(InputError, match=r"^--do_lower_case=True: the tokenizer of .* keeps "
                       "case; pass --nodo_lower_case$"):
        run_main(**dict(TRAIN, init_checkpoint=tiny["roberta"], data_dir=data,
                        output_dir=str(tmp_path / "out"), do_lower_case=True))
    lower = write_tiny_family("distilbert", str(tmp_path / "lower"), lower=True)
    assert families.lowercases(lower) and not families.lowercases(tiny["distilbert"])
    with pytest.raises(InputError, match="lower-cases; pass --do_lower_case$"):
        run_main(**dict(TRAIN, init_checkpoint=lower, data_dir=data,
                        output_dir=str(tmp_path / "out")))
    assert not os.path.exists(tmp_path / "out")


def test_bert_flags_are_refused_for_other_families(tiny, data, tmp_path):
    with pytest.raises(InputError, match="^--vocab_file: only for BERT; .* holds a roberta"):
        run_main(**dict(TRAIN, init_checkpoint=tiny["roberta"], data_dir=data,
                        output_dir=str(tmp_path / "out"),
                        vocab_file=os.path.join(tiny["bert"], "vocab.txt")))


@pytest.mark.parametrize("flag,message", [
    (dict(long_text="windows"),
     r"^--long_text=windows: BERT models only for now \(.* has model_type roberta\)$"),
    (dict(compile="on"),
     r"^--compile=on: BERT models only \(.* has model_type roberta\); use --compile=off$"),
])
def test_bert_only_features_are_refused_for_other_families(tiny, data, tmp_path, flag,
                                                           message):
    with pytest.raises(InputError, match=message):
        run_main(**dict(TRAIN, init_checkpoint=tiny["roberta"], data_dir=data,
                        output_dir=str(tmp_path / "out"), **flag))
    assert not os.path.exists(tmp_path / "out")


def test_cache_key_hashes_every_tokenizer_file(tiny, data, tmp_path):
    """A changed tokenizer_config.json (not only the vocab) makes another cache entry."""
    import shutil
    other = str(tmp_path / "other")
    shutil.copytree(tiny["roberta"], other)
    with open(os.path.join(other, "tokenizer_config.json"), "a") as f:
        f.write("\n")
    cache = str(tmp_path / "cache")
    for model in (tiny["roberta"], other):
        run_main(**dict(TRAIN, init_checkpoint=model, data_dir=data, do_train=False,
                        do_predict=False, output_dir=str(tmp_path / "out"), cache_dir=cache))
    assert len([n for n in os.listdir(cache) if n.startswith("sentence_similarity_dev_")
                and not n.endswith(".lock")]) == 2


@pytest.mark.parametrize("family", OTHERS)
def test_features_equal_the_tokenizers_pair_encoding(family, tiny):
    """On every CoLA and MRPC row: ids and token types of `tokenizer(a, b, truncation=
    "longest_first", max_length)`; a short max_length makes many pairs truncate."""
    tokenizer = families.load_tokenizer(tiny[family])
    for task, folder in (("cola", "CoLA"), ("mrpc", "MRPC")):
        processor = get_processor(task, glue_dir(folder))
        for split in ("train", "dev"):
            examples = list(split_examples(processor, glue_dir(folder), split))
            arrays = tokenizer_feature_arrays(examples, processor.get_labels(), 40, tokenizer)
            assert len(arrays) == len(examples)
            for e, row in zip(examples, arrays.rows()):
                expected = tokenizer(e.text_a, e.text_b, truncation="longest_first",
                                     max_length=40)
                assert row.input_ids.tolist() == expected["input_ids"], e.guid
                types = expected.get("token_type_ids", [0] * len(expected["input_ids"]))
                assert row.segment_ids.tolist() == types, e.guid


def test_missing_encoder_weight_is_an_error(tiny, data, tmp_path):
    """A family's checkpoint without one encoder weight is refused (not trained at random)."""
    import shutil
    from safetensors.torch import load_file, save_file
    broken = str(tmp_path / "broken")
    shutil.copytree(tiny["electra"], broken)
    path = os.path.join(broken, "model.safetensors")
    weights = load_file(path)
    dropped = next(k for k in sorted(weights) if "layer.1" in k)
    del weights[dropped]
    save_file(weights, path, metadata={"format": "pt"})
    with pytest.raises(InputError, match=f"^{broken}: 1 missing encoder weights, e.g. "
                       f"electra.{dropped}$"):
        run_main(**dict(TRAIN, init_checkpoint=broken, data_dir=data,
                        output_dir=str(tmp_path / "out")))
    assert not os.path.exists(tmp_path / "out")


@pytest.fixture(scope="session")
def more_encoders(tmp_path_factory) -> dict:
    """BigBird, MPNet and ALBERT tiny random model dirs (cased tokenizers)."""
    root = tmp_path_factory.mktemp("more_encoders")
    return {name: write_tiny_encoder(name, str(root / name)) for name in MORE_ENCODERS}


@pytest.mark.parametrize("family", MORE_ENCODERS)
def test_more_encoders_train_eval_and_predict_through_the_cli(family, more_encoders, tmp_path):
    """One epoch on the sample data through run_classifier.py: BigBird (whose classifier
    reads [CLS], not its pooler, and block-sparse attention), MPNet (positions after the
    pad id) and ALBERT (factorized embeddings)."""
    out = tmp_path / "out"
    flags = dict(task_name="sentence_similarity", data_dir=os.path.join(ROOT, "data",
                 "sentence_similarity"), output_dir=str(out), init_checkpoint=more_encoders[family],
                 do_train=True, do_eval=True, do_predict=True, num_train_epochs=1,
                 do_lower_case=False, max_seq_length=64, precision="fp32")
    proc = subprocess.run(command(flags), capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = dict(line.split(" = ") for line in read(out / "eval_results.txt").splitlines())
    assert 0 <= float(results["eval_accuracy"]) <= 1 and results["global_step"] == "19"
    probs = np.loadtxt(out / "test_results.tsv", delimiter="\t")
    assert probs.shape == (150, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert read(out / "predictions.tsv").count("\n") == 151
    with open(out / "config.json") as f:
        assert json.load(f)["model_type"] == family
