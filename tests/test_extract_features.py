"""extract_features: Google's JSON lines and pooled vectors equal the model's hidden states."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import BertModel, BertTokenizer

import extract_features as extraction  # (the program; its flags are defined when it runs)
from modeling.model import load_config, resolve_source
from processors import get_processor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LINES = ["the dog runs", "a man sees the big red car near the river and the old house",
         "the cat sleeps ||| a bird sings in the green tree", "yes", "café , w1 w2 w3 w4 !",
         "the child reads ||| no", "it was not a good day for the happy woman with the car"]


def cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "extract_features.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.fixture(scope="module")
def reference(tiny_bert):
    """The hidden states of each text alone (no padding), by transformers itself."""
    tokenizer = BertTokenizer.from_pretrained(tiny_bert)
    model = BertModel.from_pretrained(tiny_bert).eval()

    def encode(text_a, text_b=None):
        inputs = tokenizer(text_a, text_b, return_tensors="pt")
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True)
        tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0])
        return tokens, [h[0].numpy() for h in out.hidden_states], out.pooler_output[0].numpy()

    return encode


def test_json_lines_and_vectors_equal_the_models_hidden_states(tiny_bert, reference, tmp_path):
    (tmp_path / "input.txt").write_text("\n".join(LINES) + "\n")
    lengths = [len(reference(*line.split(" ||| "))[0]) for line in LINES]
    assert lengths != sorted(lengths, reverse=True)  # batches run in another order
    result = cli(f"--input_file={tmp_path / 'input.txt'}", f"--init_checkpoint={tiny_bert}",
                 f"--output_file={tmp_path / 'features.jsonl'}", "--layers=-1,0",
                 f"--output_vectors={tmp_path / 'vectors.npy'}", "--pooling=mean",
                 "--batch_size=2", "--precision=fp32", "--no_cuda")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "features.jsonl").read_text().splitlines()]
    vectors = np.load(tmp_path / "vectors.npy")
    assert len(rows) == len(LINES) and vectors.shape == (len(LINES), 32)
    assert (tmp_path / "vectors.guids.txt").read_text().split() == [str(i) for i in range(7)]
    for i, (line, row) in enumerate(zip(LINES, rows)):
        tokens, hidden, _ = reference(*line.split(" ||| "))
        assert list(row) == ["linex_index", "features"] and row["linex_index"] == i
        assert [f["token"] for f in row["features"]] == tokens
        for t, feature in enumerate(row["features"]):
            assert list(feature) == ["token", "layers"]
            assert [layer["index"] for layer in feature["layers"]] == [-1, 0]
            np.testing.assert_allclose(feature["layers"][0]["values"], hidden[-1][t], atol=1e-5)
            np.testing.assert_allclose(feature["layers"][1]["values"], hidden[1][t], atol=1e-5)
        np.testing.assert_allclose(vectors[i], hidden[-1].mean(0), atol=1e-5)


@pytest.mark.parametrize("pooling, precision, atol", [
    ("cls", "fp32", 1e-5), ("pooler", "fp32", 1e-5), ("cls", "bf16", 0.1)])
def test_task_split_vectors_in_safetensors(pooling, precision, atol, tiny_bert, reference,
                                           similarity_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(extraction, "CHUNK_BATCHES", 2)  # 24 rows in chunks of 6
    source = resolve_source(tiny_bert, None, None)
    model = extraction.load_encoder(source, load_config(source.config_file, 2, None))
    tokenizer = BertTokenizer.from_pretrained(tiny_bert)
    examples = get_processor("sentence_similarity").get_dev_examples(similarity_dir)
    path = str(tmp_path / "vectors.safetensors")
    args = extraction.ExtractArgs((-1,), pooling, 128, 3, None, path)
    extraction.extract_to_files(model, tokenizer, examples, args, torch.device("cpu"),
                                precision, {"pooling": pooling})
    with safe_open(path, "np") as f:
        vectors, metadata = f.get_tensor("vectors"), f.metadata()
    assert json.loads(metadata["guids"]) == [f"dev-{i}" for i in range(24)]
    assert metadata["pooling"] == pooling and vectors.dtype == np.float32
    for i, example in enumerate(examples):
        _, hidden, pooled = reference(example.text_a, example.text_b)
        expected = hidden[-1][0] if pooling == "cls" else pooled
        np.testing.assert_allclose(vectors[i], expected, atol=atol)


@pytest.mark.parametrize("flag, message", [
    ("--input_file=/nonexistent/input.txt", "--input_file=/nonexistent/input.txt: file not found"),
    ("--layers=-1,2", "--layers=-1,2: layer 2 does not exist in this 2-layer model (use -2 .. 1)"),
])
def test_errors_are_one_line_with_exit_code_2(flag, message, tiny_bert, tmp_path):
    (tmp_path / "input.txt").write_text("the dog runs\n")
    out = tmp_path / "features.jsonl"
    args = {"--input_file": f"--input_file={tmp_path / 'input.txt'}", "--layers": "--layers=-1"}
    args[flag.split("=")[0]] = flag
    result = cli(*args.values(), f"--init_checkpoint={tiny_bert}", f"--output_file={out}")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"extract_features: error: {message}\n"
    assert os.listdir(tmp_path) == ["input.txt"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_while_it_loads_exits_with_one_line(signum, tiny_bert, tmp_path):
    """The handler is installed before torch's import: the signal (held while a module
    imports) ends the program as run_classifier's do, 128 + its number, nothing written."""
    (tmp_path / "input.txt").write_text("the dog runs\n")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "extract_features.py"),
                             f"--input_file={tmp_path / 'input.txt'}",
                             f"--init_checkpoint={tiny_bert}",
                             f"--output_file={tmp_path / 'features.jsonl'}"],
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(0.3)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum and stderr == "extract_features: interrupted\n"
    assert os.listdir(tmp_path) == ["input.txt"]


def test_input_file_reads_texts_and_pairs_and_rejects_blank_lines(tmp_path):
    path = tmp_path / "input.txt"
    path.write_text("one\ttab ||| two ||| three\r\nfour\n")
    examples = extraction.read_input_file(str(path))
    assert [(e.guid, e.text_a, e.text_b) for e in examples] == [
        ("0", "one\ttab ||| two", "three"), ("1", "four", None)]
    path.write_text("one\n\ntwo\n")
    with pytest.raises(extraction.InputError, match=r"input.txt:2: blank line"):
        extraction.read_input_file(str(path))


def test_layers_are_google_indices_into_the_encoder_layers():
    assert extraction.parse_layers("-1,-2,-3,-4", 12) == [-1, -2, -3, -4]
    assert extraction.parse_layers("0,11", 12) == [0, 11]
    with pytest.raises(extraction.InputError, match="^--layers=last: expected comma-separated"):
        extraction.parse_layers("last", 12)
    with pytest.raises(extraction.InputError, match="^--layers=-13: layer -13 does not exist"):
        extraction.parse_layers("-13", 12)
