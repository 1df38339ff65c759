"""--compile: compiled and eager training passes and predictions agree; auto's decisions.

Tolerances: fp32, 1e-5 relative and absolute (the same math, fused in another order);
bf16, 2e-2 (inductor keeps fused intermediates in fp32 where eager rounds each op's
output to bf16). The SIGKILL resume test runs with --compile=on too (test_resume.py).
"""

import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from core import InputError
from model_checks import check_compile_model
from modeling import compiled
from modeling.compiled import TrainingForward, should_compile, use_cache_dir
from modeling.evaluation import predict_logits
from modeling.forward import classifier_logits
from modeling.model import build_model, load_config, resolve_source
from processors.cache import FeatureSet
from processors.features import InputFeatures

TOLERANCES = {torch.float32: {"rtol": 1e-5, "atol": 1e-5},
              torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2}}


def tiny_model(tiny_bert):
    source = resolve_source(tiny_bert, None, None)
    torch.manual_seed(0)
    return build_model(source, load_config(source.config_file, 2, ["0", "1"]))


def batch(rows: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (rows, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, length // 2:] = 0
    types = (torch.arange(length) >= length // 3).long().expand(rows, length)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.mark.parametrize("dtype", [torch.float32])
def test_compiled_training_logits_and_gradients_equal_eager_with_dropout(
        tiny_bert, dtype, monkeypatch, tmp_path):
    """Dropout on: the compiled pass draws the same bits, so it masks the same elements.
    Two lengths: the second runs the same dynamic-shape graph. (bf16: see the predict test;
    each dtype is a compile of its own, tens of seconds on 2 cores.)"""
    model = tiny_model(tiny_bert).train()
    monkeypatch.setattr(compiled, "_marker", lambda model, precision: str(tmp_path / precision))
    forward = TrainingForward("fp32")
    for length in (9, 13):
        inputs = batch(4, length, length)
        results = []
        for fn in (classifier_logits, forward):
            torch.manual_seed(length)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                logits = fn(model, **inputs)
            logits.float().pow(2).sum().backward()
            results.append((logits.float(), {n: p.grad.to_dense() for n, p in
                                             model.named_parameters() if p.grad is not None}))
            model.zero_grad(set_to_none=True)
        assert os.path.exists(tmp_path / "fp32")  # auto's warm-cache marker
        (eager, eager_grads), (comp, comp_grads) = results
        torch.testing.assert_close(comp, eager, **TOLERANCES[dtype])
        assert comp_grads.keys() == eager_grads.keys() and len(eager_grads) > 30
        for name, grad in eager_grads.items():
            torch.testing.assert_close(comp_grads[name], grad, **TOLERANCES[dtype], msg=name)
    assert model.bert.embeddings.word_embeddings.weight.grad is None  # (zeroed above)


@pytest.mark.parametrize("precision", ["bf16"])
def test_frozen_predictor_matches_eager_predict_and_leaves_the_model_alone(tiny_bert,
                                                                           precision):
    model = tiny_model(tiny_bert)
    inputs = batch(11, 12, 3)
    rows = [InputFeatures(ids.tolist(), [1] * 12, types.tolist(), i % 2) for i, (ids, types)
            in enumerate(zip(inputs["input_ids"], inputs["token_type_ids"]))]
    rows += [InputFeatures(f.input_ids[:5], f.input_mask[:5], f.segment_ids[:5], f.label_id)
             for f in rows[:6]]  # other lengths: one graph for all
    dataset = FeatureSet.from_features(rows)
    device = torch.device("cpu")
    eager = predict_logits(model, dataset, 4, device, precision)
    compiled_ = predict_logits(model, dataset, 4, device, precision, compile_=True)
    tolerance = TOLERANCES[torch.float32 if precision == "fp32" else torch.bfloat16]
    np.testing.assert_allclose(compiled_, eager, **tolerance)
    assert next(model.parameters()).dtype == torch.float32  # the copy is frozen, not the model


def test_auto_compiles_long_cpu_runs_of_bert_only(tiny_bert, caplog):
    model, cpu = tiny_model(tiny_bert), torch.device("cpu")
    with caplog.at_level(logging.INFO):
        assert should_compile("auto", model, cpu, 100, 100, "training steps")
        assert not should_compile("auto", model, cpu, 99, 100, "training steps")
        assert not should_compile("auto", model, torch.device("cuda"), 10 ** 6, 100, "steps")
        assert should_compile("on", model, cpu, 1, 100, "steps")
        assert not should_compile("off", model, cpu, 10 ** 6, 100, "steps")
    assert ("Training steps: compiled (--compile=auto: 100 training steps, at least the 100 "
            "that repay compiling)") in caplog.messages
    assert "Training steps: eager (--compile=auto: 99 training steps, under the 100 that " \
           "repay compiling)" in caplog.messages
    model.config.model_type = "roberta"
    assert not should_compile("auto", model, cpu, 10 ** 6, 100, "steps")


def test_auto_needs_fewer_steps_once_the_model_has_been_compiled_here(
        tiny_bert, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    model = tiny_model(tiny_bert)
    steps = compiled.TRAIN_BREAK_EVEN_STEPS
    assert steps["warm"] < steps["cold"]
    assert compiled.train_break_even(model, "bf16") == steps["cold"]
    marker = compiled._marker(model, "bf16")
    os.makedirs(os.path.dirname(marker))
    open(marker, "w").close()
    assert compiled.train_break_even(model, "bf16") == steps["warm"]
    assert compiled.train_break_even(model, "fp32") == steps["cold"]  # another precision
    model.config.hidden_dropout_prob = 0.2
    assert compiled.train_break_even(model, "bf16") == steps["cold"]  # another model


def test_the_cache_dir_is_per_user_unless_set(monkeypatch, tmp_path):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert use_cache_dir() == str(tmp_path / "bert-classifier" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    assert use_cache_dir() == "/elsewhere"


def test_without_a_cpp_compiler_on_is_refused_and_auto_stays_eager(tiny_bert, monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    bert = SimpleNamespace(family="bert", config_file="/m/config.json")
    with pytest.raises(InputError, match=r"^--compile=on: torch.compile needs a C\+\+ compiler "
                                         r"\(no-such-compiler-here\) and none was found"):
        check_compile_model(SimpleNamespace(compile="on"), bert)
    check_compile_model(SimpleNamespace(compile="auto"), bert)
    assert not should_compile("auto", tiny_model(tiny_bert), torch.device("cpu"), 10 ** 9, 1,
                              "training steps")
    monkeypatch.delenv("CXX")
    check_compile_model(SimpleNamespace(compile="on"), bert)  # g++ is here
