"""Model loading, the optimizer recipe, batching and step counting."""

import os
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from modeling.bert import to_transformers
from modeling.model import (build_model, default_model_dir, init_untrained_pooler, load_config,
                            resolve_source)
from processors import InputError
from training.data import inference_batches, train_batches
from training.loop import count_train_steps
from training.optimization import create_optimizer


def tiny_model(tiny_bert, labels=("0", "1")):
    source = resolve_source(tiny_bert, None, None)
    return build_model(source, load_config(source.config_file, len(labels), list(labels)))


def test_weight_decay_skips_biases_and_layer_norm(tiny_bert):
    model = tiny_model(tiny_bert)
    optimizer, _ = create_optimizer(model, 1e-4, 0.01, 1e-6, 100, 10)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = ([names[id(p)] for p in g["params"]] for g in optimizer.param_groups)
    assert optimizer.param_groups[0]["weight_decay"] == 0.01
    assert optimizer.param_groups[1]["weight_decay"] == 0.0
    assert all(n.endswith(("bias", "LayerNorm.weight")) for n in no_decay)
    assert not any(n.endswith(("bias", "LayerNorm.weight")) for n in decay)
    assert len(decay) + len(no_decay) == len(names)
    assert optimizer.defaults["eps"] == 1e-6


def test_schedule_warms_up_then_decays_linearly_from_the_peak(tiny_bert):
    optimizer, scheduler = create_optimizer(tiny_model(tiny_bert), 1e-3, 0.01, 1e-6, 100, 10)
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0 and rates[5] == pytest.approx(5e-4)
    assert rates[10] == pytest.approx(1e-3)  # the peak, then decay starts from it
    assert rates[55] == pytest.approx(1e-3 * 45 / 90)
    assert scheduler.get_last_lr()[0] == 0.0


def test_default_model_is_the_embedded_minilm():
    source = resolve_source(None, None, None)
    assert source.weights_file.startswith(default_model_dir())
    assert source.do_lower_case is True
    assert load_config(source.config_file, 2, ["0", "1"]).hidden_size == 384


def test_google_three_flag_form_loads_a_bert_named_state_dict(tiny_bert, tmp_path):
    weights = load_file(os.path.join(tiny_bert, "model.safetensors"))
    assert not any(k.startswith("bert.") for k in weights)
    weights["cls.predictions.bias"] = torch.zeros(3)  # pretraining heads are ignored
    save_file(weights, tmp_path / "bert.safetensors")
    source = resolve_source(str(tmp_path / "bert.safetensors"),
                            os.path.join(tiny_bert, "config.json"),
                            os.path.join(tiny_bert, "vocab.txt"))
    model = build_model(source, load_config(source.config_file, 3, ["a", "b", "c"]))
    reference = tiny_model(tiny_bert)
    for key, value in reference.bert.state_dict().items():
        assert torch.equal(model.bert.state_dict()[key], value), key
    assert model.classifier.out_features == 3


def test_three_flag_form_requires_all_three(tiny_bert):
    with pytest.raises(InputError, match="--vocab_file is required"):
        resolve_source(os.path.join(tiny_bert, "model.safetensors"),
                       os.path.join(tiny_bert, "config.json"), None)


@pytest.mark.parametrize("edit, message", [
    (lambda w: w.pop("encoder.layer.1.output.dense.weight"), "1 missing encoder weights"),
    (lambda w: w.__setitem__("encoder.layer.9.extra", torch.zeros(1)), "1 unexpected"),
    (lambda w: w.__setitem__("pooler.dense.bias", torch.zeros(5)), "1 wrong-shape"),
])
def test_missing_unexpected_or_misshaped_encoder_weights_are_errors(tiny_bert, tmp_path, edit,
                                                                     message):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_bert, model_dir)
    weights = load_file(model_dir / "model.safetensors")
    edit(weights)
    save_file(weights, model_dir / "model.safetensors")
    with pytest.raises(InputError, match=message):
        tiny_model(str(model_dir))


def test_truncated_weights_file_is_a_clear_error(tiny_bert, tmp_path):
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_bert, model_dir)
    path = model_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError, match="model.safetensors: cannot read weights"):
        tiny_model(str(model_dir))


def test_config_that_is_not_json(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text("{not json")
    with pytest.raises(InputError, match="bert_config.json: not a valid JSON config"):
        load_config(str(path), 2, ["0", "1"])


def test_train_batches_cover_every_row_once_grouped_by_length_and_seeded():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 128, size=1000).tolist()
    batches = train_batches(lengths, 32, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert train_batches(lengths, 32, seed=1, epoch=0) == batches
    assert train_batches(lengths, 32, seed=1, epoch=1) != batches
    assert train_batches(lengths, 32, seed=2, epoch=0) != batches
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    random_order = [list(range(i, min(i + 32, 1000))) for i in range(0, 1000, 32)]
    padded_random = sum(len(b) * max(lengths[i] for i in b) for b in random_order)
    assert padded < 0.7 * padded_random  # grouping cuts the padding


def test_inference_batches_sort_by_length():
    lengths = [5, 9, 2, 9, 7]
    batches = inference_batches(lengths, 2)
    assert batches == [[1, 3], [4, 0], [2]]


@pytest.mark.parametrize("n, batch, epochs, expected", [
    (100, 32, 3.0, (4, 12)), (96, 32, 1.0, (3, 3)), (100, 32, 0.5, (4, 2)), (1, 32, 3.0, (1, 3)),
])
def test_count_train_steps(n, batch, epochs, expected):
    assert count_train_steps(n, batch, epochs) == expected


def test_google_tf_checkpoint_loads_through_the_three_flags():
    fixture = os.path.join(os.path.dirname(__file__), "fixtures", "tf_bert_tiny")
    source = resolve_source(os.path.join(fixture, "bert_model.ckpt"),
                            os.path.join(fixture, "bert_config.json"),
                            os.path.join(fixture, "vocab.txt"))
    model = build_model(source, load_config(source.config_file, 2, ["0", "1"]))
    reference = load_file(os.path.join(fixture, "reference_state_dict.safetensors"))
    state = model.state_dict()
    assert reference and all(torch.equal(state[k], v) for k, v in reference.items())


@pytest.mark.parametrize("padded", [True, False])
def test_cls_only_forward_equals_the_transformers_forward(tiny_bert, padded):
    from modeling.forward import classifier_logits
    model = tiny_model(tiny_bert).eval()
    ids = torch.randint(5, 60, (4, 12))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, 7:] = 0
        mask[3, 3:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    with torch.no_grad():
        expected = to_transformers(model)(input_ids=ids, attention_mask=mask,
                                          token_type_ids=types).logits
        got = classifier_logits(model, ids, mask, types)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_an_untrained_pooler_starts_as_the_identity(tiny_bert):
    model = tiny_model(tiny_bert).eval()
    assert not model.bert.pooler.dense.bias.any()  # a freshly initialized BERT's
    assert init_untrained_pooler(model)
    ids = torch.tensor([[2, 5, 6, 7, 3]])
    with torch.no_grad():
        out = to_transformers(model).bert(input_ids=ids)
    assert torch.allclose(out.pooler_output, torch.tanh(out.last_hidden_state[:, 0]))


def test_a_trained_pooler_is_kept(tiny_bert, tmp_path):
    shutil.copytree(tiny_bert, tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    weights["pooler.dense.bias"] = torch.full_like(weights["pooler.dense.bias"], 0.1)
    save_file(weights, tmp_path / "m" / "model.safetensors")
    model = tiny_model(str(tmp_path / "m"))
    assert not init_untrained_pooler(model)
    assert torch.equal(model.bert.pooler.dense.weight, weights["pooler.dense.weight"])


def test_the_embedded_minilm_pooler_is_untrained():
    source = resolve_source(None, None, None)
    model = build_model(source, load_config(source.config_file, 2, ["0", "1"]))
    assert init_untrained_pooler(model)
    assert torch.equal(model.bert.pooler.dense.weight, torch.eye(384))


def test_a_pooler_of_another_layout_is_left_alone():
    """BigBird's classifier reads [CLS]'s state; its pooler is a bare Linear (no `.dense`)."""
    from transformers import BigBirdConfig, BigBirdForSequenceClassification
    model = BigBirdForSequenceClassification(BigBirdConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64))
    assert isinstance(model.bert.pooler, torch.nn.Linear)
    weight = model.bert.pooler.weight.clone()
    assert not init_untrained_pooler(model)
    assert torch.equal(model.bert.pooler.weight, weight)


def test_the_model_loads_every_weight_and_owns_its_memory(tiny_bert, tmp_path):
    """Built without drawing the encoder's weights: each equals the file's, the new head is
    drawn (std initializer_range, zero bias), and writing into the file in place after
    the build changes no parameter (they are not the file's mapped pages)."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    weights = load_file(folder / "model.safetensors")
    torch.manual_seed(0)
    model = tiny_model(str(folder))
    for key, value in weights.items():
        assert torch.equal(model.state_dict()["bert." + key], value), key
    config = model.config
    head = model.classifier.weight
    assert float(head.detach().std()) == pytest.approx(config.initializer_range, rel=0.5)
    assert not model.classifier.bias.any()
    assert torch.equal(model.bert.embeddings.position_ids[0, :5], torch.arange(5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = bytearray((folder / "model.safetensors").read_bytes())
    start = len(data) - 4096
    data[start:] = bytes(4096)  # zeros over the last weights' bytes, same inode
    with open(folder / "model.safetensors", "r+b") as f:
        f.write(data)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
