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

from modeling import compiled
from modeling.compiled import TrainingForward, should_compile
from modeling.errors import InputError
from modeling.forward import classifier_logits
from modeling.model import build_model, load_config, resolve_source
from modeling.toolchain import use_cache_dir
from processors.cache import FeatureSet
from processors.features import InputFeatures
from training.evaluation import predict_logits
from training.model_checks import check_compile_model

TOLERANCES = {torch.float32: {"rtol": 1e-5, "atol": 1e-5},
              torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2}}


def traced_once() -> bool:
    """Dynamo traced each compiled function once: no second attempt (a restart, such as
    the one symbolic float settings cause)."""
    metrics = torch._dynamo.utils.compilation_time_metrics
    return "compile_attempt_0" in metrics and "compile_attempt_1" not in metrics


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
    monkeypatch.setattr(compiled, "_marker",
                        lambda model, precision, what: str(tmp_path / precision))
    forward = TrainingForward("fp32")
    torch._dynamo.utils.compilation_time_metrics.clear()
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
    assert traced_once()
    assert model.bert.embeddings.word_embeddings.weight.grad is None  # (zeroed above)


@pytest.mark.parametrize("precision", ["bf16"])
def test_compiled_predictor_matches_eager_predict_and_leaves_the_model_alone(
        tiny_bert, precision, monkeypatch, tmp_path):
    monkeypatch.setattr(compiled, "_marker", lambda model, precision, what: str(tmp_path / what))
    model = tiny_model(tiny_bert)
    inputs = batch(11, 12, 3)
    rows = [InputFeatures(ids.tolist(), [1] * 12, types.tolist(), i % 2) for i, (ids, types)
            in enumerate(zip(inputs["input_ids"], inputs["token_type_ids"]))]
    rows += [InputFeatures(f.input_ids[:5], f.input_mask[:5], f.segment_ids[:5], f.label_id)
             for f in rows[:6]]  # other lengths: one graph for all
    dataset = FeatureSet.from_features(rows)
    device = torch.device("cpu")
    eager = predict_logits(model, dataset, 4, device, precision)
    torch._dynamo.utils.compilation_time_metrics.clear()
    compiled_ = predict_logits(model, dataset, 4, device, precision, compile_=True)
    assert traced_once()
    assert os.listdir(tmp_path) == ["predict rows"]  # auto's warm-cache marker
    tolerance = TOLERANCES[torch.float32 if precision == "fp32" else torch.bfloat16]
    np.testing.assert_allclose(compiled_, eager, **tolerance)
    assert next(model.parameters()).dtype == torch.float32  # the copy is cast, not the model


def test_auto_compiles_long_cpu_runs_of_bert_only(tiny_bert, caplog, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    model, cpu = tiny_model(tiny_bert), torch.device("cpu")
    cold = compiled.BREAK_EVEN["training steps"]["cold"]
    with caplog.at_level(logging.INFO):
        assert should_compile("auto", model, cpu, "bf16", cold, "training steps")
        assert not should_compile("auto", model, cpu, "bf16", cold - 1, "training steps")
        assert not should_compile("auto", model, torch.device("cuda"), "bf16", 10 ** 6,
                                  "training steps")
        assert should_compile("on", model, cpu, "bf16", 1, "training steps")
        assert not should_compile("off", model, cpu, "bf16", 10 ** 6, "predict rows")
    assert (f"Training steps: compiled (--compile=auto: {cold} training steps, at least the "
            f"{cold} that repay compiling with cold caches in {tmp_path})") in caplog.messages
    assert (f"Training steps: eager (--compile=auto: {cold - 1} training steps, under the "
            f"{cold} that repay compiling with cold caches in {tmp_path})") in caplog.messages
    assert f"Training steps: compiled (--compile=on, inductor's caches in {tmp_path})" \
        in caplog.messages
    model.config.model_type = "roberta"
    assert not should_compile("auto", model, cpu, "bf16", 10 ** 6, "training steps")


@pytest.mark.parametrize("what", ["training steps", "predict rows"])
def test_auto_needs_less_work_once_the_model_has_been_compiled_here(
        tiny_bert, monkeypatch, tmp_path, what):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    model, cpu = tiny_model(tiny_bert), torch.device("cpu")
    warm, cold = compiled.BREAK_EVEN[what]["warm"], compiled.BREAK_EVEN[what]["cold"]
    assert warm < cold
    assert not should_compile("auto", model, cpu, "bf16", warm, what)
    compiled._mark(model, "bf16", what)
    assert should_compile("auto", model, cpu, "bf16", warm, what)
    assert not should_compile("auto", model, cpu, "bf16", warm - 1, what)
    other = "predict rows" if what == "training steps" else "training steps"
    assert not should_compile("auto", model, cpu, "bf16", compiled.BREAK_EVEN[other]["warm"],
                              other)  # the other graph
    assert not should_compile("auto", model, cpu, "fp32", warm, what)  # another precision
    model.config.hidden_dropout_prob = 0.2
    assert not should_compile("auto", model, cpu, "bf16", warm, what)  # another model


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
        check_compile_model(bert, "on")
    check_compile_model(bert, "auto")
    assert not should_compile("auto", tiny_model(tiny_bert), torch.device("cpu"), "bf16",
                              10 ** 9, "training steps")
    monkeypatch.delenv("CXX")
    check_compile_model(bert, "on")  # g++ is here


def test_the_compiled_training_graph_leaves_the_embedding_lookups_out(tiny_bert, monkeypatch):
    """Inductor's backward of an embedding lookup adds rows with atomics, in no fixed
    order: with the position and token-type lookups compiled, two MiniLM runs of one seed
    ended with different weights. The graph dynamo hands the compiler has no lookup."""
    graphs, real = [], torch.compile

    def recording(gm, example_inputs):
        graphs.append(gm)
        return gm.forward
    monkeypatch.setattr(torch, "compile", lambda fn, **options: real(
        fn, backend=recording, dynamic=True))
    model = tiny_model(tiny_bert).train()
    TrainingForward("fp32")(model, **batch(2, 5, 0))
    targets = [str(node.target) for gm in graphs for node in gm.graph.nodes
               if node.op == "call_function"]
    assert graphs and any("layer_norm" in t for t in targets)
    assert not [t for t in targets if "embedding" in t]


def old_torch_compile(real, calls):
    """torch.compile as torch 2.4-2.11 declare it (no `recompile_limit`), on dynamo's eager
    backend: the same tracing and guards as inductor, without its minutes of compiles."""
    def compile(model=None, *, fullgraph=False, dynamic=None, backend="inductor", mode=None,
                options=None, disable=False):
        calls.append({"dynamic": dynamic, "mode": mode})
        return real(model, fullgraph=fullgraph, dynamic=dynamic, backend="eager",
                    disable=disable)
    return compile


def test_compile_on_trains_and_predicts_with_a_torch_compile_without_recompile_limit(
        tiny_bert, similarity_dir, monkeypatch, tmp_path):
    from absl import flags
    from absl.testing import flagsaver
    import run_classifier
    calls = []
    monkeypatch.setattr(torch, "compile", old_torch_compile(torch.compile, calls))
    limit = "recompile_limit" if hasattr(torch._dynamo.config, "recompile_limit") else \
        "cache_size_limit"
    monkeypatch.setattr(torch._dynamo.config, limit, 1)
    assert "recompile_limit" not in compiled.compile_options(False)
    assert getattr(torch._dynamo.config, limit) == compiled.RECOMPILE_LIMIT  # set there instead
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(task_name="sentence_similarity", data_dir=similarity_dir,
                             output_dir=str(tmp_path / "out"), init_checkpoint=tiny_bert,
                             do_train=True, do_predict=True, compile="on", precision="fp32",
                             num_train_epochs=1.0, train_batch_size=16):
        run_classifier.main(["run_classifier"])
    assert calls == [{"dynamic": True, "mode": None}] * 2  # the training step and predict
    predictions = np.loadtxt(tmp_path / "out" / "test_results.tsv", delimiter="\t")
    assert predictions.shape == (20, 2) and np.isfinite(predictions).all()
    assert (tmp_path / "out" / "model.safetensors").exists()
