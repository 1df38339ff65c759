"""Loading Google's TF BERT checkpoints without TensorFlow, checked against fixtures written by real TensorFlow.

The fixtures and their references come from tests/fixtures/make_tf_bert_tiny.py.
"""

import json
import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification

from modeling.tf_checkpoint import (
    is_skipped_variable,
    is_tf_checkpoint,
    load_tf_bert_state_dict,
    read_tf_checkpoint,
    tf_to_bert_state_dict,
)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
BERT_DIR = os.path.join(FIXTURES, "tf_bert_tiny")
BERT_PREFIX = os.path.join(BERT_DIR, "bert_model.ckpt")
DTYPES_PREFIX = os.path.join(FIXTURES, "tf_dtypes", "ckpt")
SKIPPED_IN_FIXTURE = {
    "global_step",
    "cls/predictions/output_bias",
    "bert/embeddings/word_embeddings/adam_m",
    "bert/embeddings/word_embeddings/adam_v",
    "bert/encoder/layer_0/attention/self/query/kernel/adam_m",
    "bert/encoder/layer_0/attention/self/query/kernel/adam_v",
}


@pytest.fixture(scope="module")
def bert_config():
    with open(os.path.join(BERT_DIR, "bert_config.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def variables():
    return read_tf_checkpoint(BERT_PREFIX, verify_crc=True)


@pytest.fixture(scope="module")
def reference():
    return load_file(os.path.join(BERT_DIR, "reference_state_dict.safetensors"))


def copy_checkpoint(tmp_path):
    for name in ("bert_model.ckpt.index", "bert_model.ckpt.data-00000-of-00001"):
        shutil.copy(os.path.join(BERT_DIR, name), tmp_path / name)
    return str(tmp_path / "bert_model.ckpt")


def test_reads_every_variable_including_optimizer_state(variables):
    # 2 layers x 16 + 5 embeddings + 2 pooler = 39 weights, plus the 6 skippable ones.
    assert len(variables) == 45
    assert SKIPPED_IN_FIXTURE <= set(variables)
    assert variables["global_step"].dtype == np.int64 and int(variables["global_step"]) == 1234
    assert variables["bert/encoder/layer_1/intermediate/dense/kernel"].shape == (16, 32)
    assert variables["bert/embeddings/word_embeddings"].dtype == np.float32


def test_skip_leaves_variables_unread():
    names = set(read_tf_checkpoint(BERT_PREFIX, skip=is_skipped_variable))
    assert len(names) == 39 and not names & SKIPPED_IN_FIXTURE


def test_dtypes_match_tensorflow_values():
    with open(DTYPES_PREFIX.replace("ckpt", "reference.json")) as f:
        expected = json.load(f)
    arrays = read_tf_checkpoint(DTYPES_PREFIX, skip=lambda name: name == "scope/notes", verify_crc=True)
    assert set(arrays) == set(expected) == {"f32", "f16", "bf16", "i32", "i64"}
    for name, array in arrays.items():
        assert array.dtype == np.dtype(expected[name]["dtype"]), name
        assert list(array.shape) == expected[name]["shape"], name
        assert array.ravel().tolist() == expected[name]["values"], name


def test_string_tensor_must_be_skipped():
    with pytest.raises(ValueError, match="'scope/notes'.*unsupported TF dtype 7"):
        read_tf_checkpoint(DTYPES_PREFIX)


def test_mapped_tensors_equal_reference(variables, bert_config, reference):
    state = tf_to_bert_state_dict(variables, bert_config)
    assert set(state) == set(reference)
    for key, tensor in reference.items():
        assert state[key].dtype == torch.float32, key
        assert torch.equal(state[key], tensor), key


def test_load_from_path_with_config_object(bert_config, reference):
    state = load_tf_bert_state_dict(BERT_PREFIX, BertConfig(**bert_config))
    assert set(state) == set(reference)
    assert all(torch.equal(state[key], reference[key]) for key in reference)


def load_bert_part(model, state):
    """Load state strictly into the encoder: only the fresh classifier head may be missing."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert sorted(missing) == ["classifier.bias", "classifier.weight"] and unexpected == []
    return model


def bert_outputs(model):
    model.eval()
    input_ids = torch.tensor([[2, 20, 45, 61, 11, 3, 0, 0], [2, 33, 1, 99, 3, 50, 70, 3]])
    token_type_ids = torch.tensor([[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 1, 1]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        out = model.bert(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
    return out.last_hidden_state, out.pooler_output


def test_model_outputs_match_reference(bert_config, reference):
    torch.manual_seed(0)
    config = BertConfig(**bert_config)
    ours = BertForSequenceClassification(config)
    state = load_tf_bert_state_dict(BERT_PREFIX, bert_config)
    assert set(state) == {k for k in ours.state_dict() if k.startswith("bert.")}
    fresh_hidden, fresh_pooled = bert_outputs(ours)
    hidden, pooled = bert_outputs(load_bert_part(ours, state))
    ref_hidden, ref_pooled = bert_outputs(load_bert_part(BertForSequenceClassification(config), reference))
    assert hidden.shape == (2, 8, 16) and pooled.shape == (2, 16)
    assert torch.equal(hidden, ref_hidden) and torch.equal(pooled, ref_pooled)
    assert not torch.allclose(hidden, fresh_hidden, atol=1e-2) and not torch.allclose(pooled, fresh_pooled, atol=1e-2)


def test_unknown_variable_is_an_error(variables, bert_config):
    bad = {**variables, "bert/encoder/layer_0/attention/self/query/kernel_v2": np.zeros((16, 16), np.float32)}
    expected = r"^/ckpt/x: unknown variable 'bert/encoder/layer_0/attention/self/query/kernel_v2'"
    with pytest.raises(ValueError, match=expected):
        tf_to_bert_state_dict(bad, bert_config, source="/ckpt/x")


def test_wrong_shape_is_an_error(variables, bert_config):
    name = "bert/encoder/layer_1/output/dense/kernel"
    bad = {**variables, name: np.zeros((16, 32), np.float32)}
    expected = rf"^/ckpt/x: variable '{name}' has shape \(16, 32\), config implies \(32, 16\)$"
    with pytest.raises(ValueError, match=expected):
        tf_to_bert_state_dict(bad, bert_config, source="/ckpt/x")


def test_config_disagreeing_with_checkpoint_is_an_error(bert_config):
    with pytest.raises(ValueError, match=f"{BERT_PREFIX}: variable 'bert/embeddings/word_embeddings' has shape"):
        load_tf_bert_state_dict(BERT_PREFIX, {**bert_config, "vocab_size": 101})


def test_missing_variable_is_an_error(variables, bert_config):
    bad = {k: v for k, v in variables.items() if k != "bert/pooler/dense/bias"}
    with pytest.raises(ValueError, match=r"^/ckpt/x: missing variable 'bert/pooler/dense/bias'$"):
        tf_to_bert_state_dict(bad, bert_config, source="/ckpt/x")


def test_too_few_layers_in_checkpoint_is_an_error(bert_config):
    with pytest.raises(ValueError, match=r"missing variable 'bert/encoder/layer_2/.*' \(and 15 more\)"):
        load_tf_bert_state_dict(BERT_PREFIX, {**bert_config, "num_hidden_layers": 3})


def test_truncated_data_shard_is_an_error(tmp_path):
    prefix = copy_checkpoint(tmp_path)
    shard = prefix + ".data-00000-of-00001"
    os.truncate(shard, os.path.getsize(shard) // 2)
    with pytest.raises(ValueError, match=f"^{shard}: truncated data shard: '.+' needs bytes"):
        read_tf_checkpoint(prefix)


def test_corrupted_data_fails_crc_check(tmp_path):
    prefix = copy_checkpoint(tmp_path)
    shard = prefix + ".data-00000-of-00001"
    with open(shard, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    read_tf_checkpoint(prefix)  # without verify_crc the flipped byte goes unnoticed
    with pytest.raises(ValueError, match=f"^{prefix}: crc32c mismatch for variable '.+'$"):
        read_tf_checkpoint(prefix, verify_crc=True)


def test_index_format_errors(tmp_path):
    prefix = copy_checkpoint(tmp_path)
    index_path = tmp_path / "bert_model.ckpt.index"
    index = bytearray(index_path.read_bytes())
    compressed = index.copy()
    compressed[-48 - 5] = 1  # trailer type byte of the index block, which sits just before the footer
    index_path.write_bytes(compressed)
    with pytest.raises(ValueError, match=r"\.index: compressed table block \(type 1\) is not supported"):
        read_tf_checkpoint(prefix)
    index[-1] ^= 0xFF
    index_path.write_bytes(index)
    with pytest.raises(ValueError, match=r"\.index: not a TensorFlow checkpoint index"):
        read_tf_checkpoint(prefix)


def test_skip_list():
    fine_tuned_head = {"output_weights", "output_bias"}  # Google's run_classifier head
    for name in SKIPPED_IN_FIXTURE | fine_tuned_head | {"cls/seq_relationship/output_weights",
                                                        "bert/pooler/dense/bias/adam_v"}:
        assert is_skipped_variable(name), name
    for name in ("bert/pooler/dense/kernel", "global_step_1", "output_weights_2",
                 "bert/cls/predictions/x", "adam_m"):
        assert not is_skipped_variable(name), name


def test_is_tf_checkpoint(tmp_path):
    assert is_tf_checkpoint(BERT_PREFIX)
    assert not is_tf_checkpoint(BERT_DIR)
    assert not is_tf_checkpoint(BERT_PREFIX + ".index")
    assert not is_tf_checkpoint(str(tmp_path / "bert_model.ckpt"))
