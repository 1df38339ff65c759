"""modeling.bert: transformers' BertForSequenceClassification's modules, without its model
code: the same state dict, head, saved files and logits."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from transformers import BertConfig, BertForSequenceClassification
from transformers.activations import ACT2FN

from conftest import write_similarity_data
from modeling import bert
from modeling.forward import classifier_logits
from modeling.model import build_model, load_config, resolve_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**kwargs) -> BertConfig:
    return BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=48, num_labels=3, **kwargs)


def test_the_state_dict_and_buffers_are_transformers_own():
    config = tiny_config()
    ours, theirs = bert.BertClassifier(config), BertForSequenceClassification(config)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
    assert dict(ours.named_buffers()).keys() == dict(theirs.named_buffers()).keys()
    assert torch.equal(ours.bert.embeddings.position_ids, theirs.bert.embeddings.position_ids)
    attention = ours.bert.encoder.layer[0].attention.self
    assert (attention.num_attention_heads, attention.attention_head_size,
            attention.scaling) == (4, 8, 8 ** -0.5)


def test_a_new_head_is_the_one_transformers_draws_from_the_same_seed(tiny_bert):
    source = resolve_source(tiny_bert, None, None)
    torch.manual_seed(3)
    ours = build_model(source, load_config(source.config_file, 2, ["0", "1"]))
    torch.manual_seed(3)
    theirs = BertForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    assert ours.classifier.weight.std() > 0.005 and not ours.classifier.bias.any()


@pytest.mark.parametrize("name", sorted(bert.ACTIVATIONS))
def test_each_activation_is_transformers_own(name):
    x = torch.linspace(-6, 6, 1001)
    torch.testing.assert_close(bert.activation(name)(x), ACT2FN[name](x), rtol=0, atol=0)


def test_another_activation_comes_from_transformers():
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(bert.activation("gelu_new")(x), ACT2FN["gelu_new"](x))


def test_it_saves_what_save_pretrained_saves_and_transformers_loads_it(tiny_bert, tmp_path):
    source = resolve_source(tiny_bert, None, None)
    torch.manual_seed(0)
    model = build_model(source, load_config(source.config_file, 3, ["a", "b", "c"]))
    model.config.finetuning_task = "cola"
    model.save_pretrained(str(tmp_path / "ours"))
    bert.to_transformers(model).save_pretrained(str(tmp_path / "theirs"))
    assert sorted(os.listdir(tmp_path / "ours")) == sorted(os.listdir(tmp_path / "theirs"))
    texts = [(tmp_path / side / "config.json").read_text() for side in ("ours", "theirs")]
    assert texts[0] == texts[1]
    assert json.loads(texts[0])["architectures"] == ["BertForSequenceClassification"]
    files = [safe_open(str(tmp_path / side / "model.safetensors"), "pt")
             for side in ("ours", "theirs")]
    assert files[0].metadata() == files[1].metadata() == {"format": "pt"}
    assert sorted(files[0].keys()) == sorted(files[1].keys())
    for key in files[1].keys():
        assert torch.equal(files[0].get_tensor(key), files[1].get_tensor(key)), key
    loaded = BertForSequenceClassification.from_pretrained(str(tmp_path / "ours")).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 13, 3, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        expected = loaded(input_ids=ids, attention_mask=mask).logits
        got = classifier_logits(model.eval(), ids, mask, torch.zeros_like(ids))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_a_run_never_imports_transformers_nor_dynamo(tiny_bert, tmp_path):
    """Train, eval, predict and save a BERT: no transformers at all (its config and
    tokenizer are the project's, `bert_config` and `tokenization`), and torch without
    torch._dynamo (an eager run: --compile=auto on so short a run)."""
    data = write_similarity_data(tmp_path / "data", 24, 8, 8)
    argv = ["run_classifier.py", "--task_name=sentence_similarity", f"--data_dir={data}",
            f"--init_checkpoint={tiny_bert}", f"--output_dir={tmp_path / 'out'}",
            "--do_train", "--do_eval", "--do_predict", "--num_train_epochs=1",
            "--train_batch_size=8"]
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('IMPORTED', sorted(m for m in sys.modules if m in "
            "('transformers', 'torch._dynamo'))))\n"
            f"sys.argv = {argv!r}\n"
            "runpy.run_path('run_classifier.py', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "test_results.tsv").is_file()
    assert "IMPORTED []" in done.stdout.splitlines()
