"""--long_text=windows end to end on a tiny BERT: resume mid-epoch, extract_features."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import write_similarity_data
from extract_features import ExtractArgs, extract_to_files, load_encoder
from modeling.model import load_config, resolve_source
from modeling.tokenization import load_tokenizer
from processors import InputError, InputExample
from training import loop as training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOWS = dict(task_name="sentence_similarity", do_train=True, do_eval=True, do_predict=True,
               long_text="windows", max_seq_length=16, doc_stride=3, train_batch_size=8,
               eval_batch_size=16, predict_batch_size=16, num_train_epochs=2.0,
               learning_rate=1e-3, precision="fp32", save_checkpoints_steps=4, seed=3)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def run_main(**values):
    with flagsaver.flagsaver(**{**WINDOWS, **values}):
        run_classifier.main(["run_classifier"])


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def test_a_windowed_run_killed_mid_epoch_resumes_to_the_same_bytes(tiny_bert, tmp_path,
                                                                   monkeypatch, caplog):
    data = write_similarity_data(tmp_path / "data", n_train=32, n_dev=12, n_test=10)
    common = dict(data_dir=data, init_checkpoint=tiny_bert)
    run_main(output_dir=str(tmp_path / "plain"), **common)
    stats = json.loads(read(tmp_path / "plain" / "training_stats.json"))
    assert stats[0]["step"] > 6  # more windows than rows: step 6 is inside epoch 1
    assert len(read(tmp_path / "plain" / "predictions.tsv", "r").splitlines()) == 11

    real = training._Loop.train_on

    def killed_at_step_6(loop, *args):
        if loop.step == 6:
            raise KeyboardInterrupt
        real(loop, *args)

    out = tmp_path / "killed"
    monkeypatch.setattr(training._Loop, "train_on", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        run_main(output_dir=str(out), **common)
    monkeypatch.setattr(training._Loop, "train_on", real)
    with pytest.raises(InputError, match="doc_stride"):  # another stride: other windows
        run_main(output_dir=str(out), **{**common, "doc_stride": 4})
    caplog.set_level("INFO")
    run_main(output_dir=str(out), **common)
    assert f"Resuming from {out / 'checkpoint-4'}" in caplog.text
    for name in ("model.safetensors", "eval_results.json", "test_results.tsv",
                 "predictions.tsv"):
        assert read(out / name) == read(tmp_path / "plain" / name), name


def extract(encoder, texts: list[str], path, doc_stride=None) -> np.ndarray:
    """extract_features' vectors ([CLS]) of `texts`, max_seq_length 8, batches of 2."""
    model, tokenizer = encoder
    examples = [InputExample(str(i), text) for i, text in enumerate(texts)]
    args = ExtractArgs((-1,), "cls", 8, 2, None, str(path), doc_stride)
    extract_to_files(model, tokenizer, examples, args, torch.device("cpu"), "fp32", {})
    return np.load(path)


def test_extract_features_writes_the_mean_of_each_documents_windows(tiny_bert, tmp_path):
    source = resolve_source(tiny_bert, None, None)
    encoder = (load_encoder(source, load_config(source.config_file, 2, None)),
               load_tokenizer(source.vocab_file, True))
    docs = [[f"w{i}" for i in range(first, first + n)]
            for first, n in ((0, 4), (10, 15), (40, 9))]
    vectors = extract(encoder, [" ".join(d) for d in docs], tmp_path / "docs.npy", 4)
    # Room 6, stride 4: windows at 0 (a 4-token doc), 0, 4, 8, 12 (15 tokens), 0, 4 (9 tokens).
    spans = [(0, [0]), (1, [0, 4, 8, 12]), (2, [0, 4])]
    windows = [" ".join(docs[d][s:s + 6]) for d, starts in spans for s in starts]
    alone = extract(encoder, windows, tmp_path / "windows.npy")
    assert vectors.shape == (3, 32) and alone.shape == (7, 32)
    np.testing.assert_allclose(vectors, [alone[0], alone[1:5].mean(0), alone[5:].mean(0)],
                               atol=1e-5)


def test_extract_features_windows_refuse_token_states(tiny_bert, tmp_path):
    (tmp_path / "in.txt").write_text("the dog runs\n")
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "extract_features.py"), f"--init_checkpoint="
         f"{tiny_bert}", f"--input_file={tmp_path / 'in.txt'}", "--long_text=windows",
         f"--output_file={tmp_path / 'out.jsonl'}"], capture_output=True, text=True, cwd=ROOT,
        timeout=120)
    assert result.returncode == 2 and not (tmp_path / "out.jsonl").exists()
    assert result.stderr == ("extract_features: error: --output_file: not with "
                             "--long_text=windows (a document's tokens span windows); use "
                             "--output_vectors\n")
