"""The peer benchmarks' logic: train_throughput.py's matmul share (its matmul-bound ceiling
rests on it), configurations, steady-state timing and ratios against HF's fastest;
whole_command.py's; and the HF Trainer configurations of benchmarks/hf_peer.py."""

import importlib.util
import os
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "train_throughput.py")
sys.path.insert(0, ROOT)

from benchmarks import hf_peer, throughput_ratios, whole_command  # noqa: E402


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_matmul_share_is_the_share_of_wall_time_in_matmuls():
    bench = load_benchmark()
    a, batch = torch.randn(512, 512), torch.randn(8, 128, 128)

    def matmuls():
        for _ in range(20):
            torch.addmm(a, a, a), a @ a, torch.bmm(batch, batch)

    def elementwise():
        for _ in range(20):
            a.exp(), a + a

    def half_waiting():
        start = time.perf_counter()
        matmuls()
        time.sleep(time.perf_counter() - start)

    assert bench.matmul_share(matmuls) > 0.8
    assert bench.matmul_share(elementwise) < 0.05
    assert 0.3 < bench.matmul_share(half_waiting) < 0.6


def test_configs_include_hf_compiled_and_unknown_ones_are_refused(capsys):
    bench = load_benchmark()
    assert "hf_compiled" in bench.parse_args([]).configs.split(",")
    assert bench.parse_args(["--configs=project,hf_compiled"]).configs == "project,hf_compiled"
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--configs=project,hf_fast"])
    assert exit_.value.code == 2 and "--configs: unknown hf_fast" in capsys.readouterr().err
    assert "hf_compiled" in whole_command.parse_args([]).configs.split(",")
    with pytest.raises(SystemExit):
        whole_command.parse_args(["--configs=hf_fast"])


def test_warm_timed_times_the_second_pass_and_calls_the_rest_compile():
    bench = load_benchmark()
    calls = []

    def run():  # the first pass is slower, as a compiling one
        time.sleep(0.2 if not calls else 0.05)
        calls.append(1)

    seconds, compile_s, graphs = bench.warm_timed(run, True)
    assert len(calls) == 2 and 0.04 < seconds < 0.15 and 0.1 < compile_s < 0.25
    assert graphs == 0  # nothing compiled
    calls.clear()
    seconds, compile_s, _ = bench.warm_timed(run, False)
    assert len(calls) == 1 and seconds >= 0.2 and compile_s == 0


def fake(train, predict):
    return {"train_examples_per_s": train, "predict_examples_per_s": predict}


def test_ratios_against_hf_fastest_take_each_repeats_best_hf_number():
    runs = {"project": [fake(300.0, 1200.0), fake(240.0, 1000.0)],
            "hf_default": [fake(20.0, 80.0), fake(15.0, 70.0)],
            "hf_best": [fake(200.0, 800.0), fake(100.0, 500.0)],
            "hf_compiled": [fake(150.0, 1000.0), fake(160.0, 400.0)]}
    fastest = throughput_ratios.hf_fastest(runs)
    assert fastest == [
        {"train_examples_per_s": 200.0, "train_config": "hf_best",
         "predict_examples_per_s": 1000.0, "predict_config": "hf_compiled"},
        {"train_examples_per_s": 160.0, "train_config": "hf_compiled",
         "predict_examples_per_s": 500.0, "predict_config": "hf_best"}]
    ratios = throughput_ratios.paired_ratios(runs)
    assert ratios["train_examples_per_s_project_over_hf_fastest"] == [1.5, 1.5]
    assert ratios["predict_examples_per_s_project_over_hf_fastest"] == [1.2, 2.0]
    assert ratios["train_examples_per_s_project_over_hf_compiled"] == [2.0, 1.5]
    assert ratios["train_examples_per_s_project_over_hf_best"] == [1.5, 2.4]


def test_ratios_report_puts_hf_fastest_first_and_apart_in_the_json(capsys):
    import json
    runs = {"project": [fake(300.0, 1200.0)], "hf_best": [fake(200.0, 800.0)],
            "hf_compiled": [fake(250.0, 600.0)]}
    throughput_ratios.report(throughput_ratios.paired_ratios(runs),
                             throughput_ratios.hf_fastest(runs))
    lines = capsys.readouterr().out.splitlines()
    assert "train ['hf_compiled'], predict ['hf_best']" in lines[0]
    assert lines[2].startswith("train_examples_per_s_project_over_hf_fastest: 1.20x")
    assert lines[3].startswith("predict_examples_per_s_project_over_hf_fastest: 1.50x")
    assert "over_hf_fastest" not in "".join(lines[4:-1])
    out = json.loads(lines[-1])
    assert out["ratios_over_hf_fastest"] == {
        "predict_examples_per_s_project_over_hf_fastest": 1.5,
        "train_examples_per_s_project_over_hf_fastest": 1.2}


def test_no_hf_configuration_no_hf_fastest():
    runs = {"project": [fake(300.0, 1200.0)], "project_compiled": [fake(330.0, 1500.0)]}
    assert throughput_ratios.hf_fastest(runs) == []
    assert list(throughput_ratios.paired_ratios(runs)) == [
        "train_examples_per_s_project_compiled_over_project",
        "predict_examples_per_s_project_compiled_over_project"]


def test_whole_command_ratio_against_hf_fastest_is_each_repeats_fewest_seconds():
    seconds = {"project": [10.0, 12.0], "hf_best": [15.0, 14.0], "hf_compiled": [20.0, 12.0]}
    ratios = whole_command.hf_ratios(seconds)
    assert ratios == {"hf_fastest_over_project": [1.5, 1.0],
                      "hf_best_over_project": [1.5, 14.0 / 12.0],
                      "hf_compiled_over_project": [2.0, 1.0]}
    assert list(ratios)[0] == "hf_fastest_over_project"


def test_hf_configurations_are_the_trainers_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_DYNAMO_USE_DYNAMIC", "0")  # restored afterwards
    monkeypatch.delenv("ACCELERATE_DYNAMO_USE_DYNAMIC")
    recipe = dict(batch_size=4, eval_batch_size=8, learning_rate=1e-4, epochs=1.0,
                  warmup=0.1, weight_decay=0.01, seed=1)
    made = {name: hf_peer.training_arguments(name, str(tmp_path), "cpu", **recipe)
            for name in hf_peer.HF_CONFIGS}
    bf16 = hf_peer.fast_bf16("cpu")
    assert not made["hf_default"].torch_compile and not made["hf_default"].bf16
    assert made["hf_default"].train_sampling_strategy == "random"
    for name in ("hf_best", "hf_compiled"):
        args = made[name]
        assert args.bf16 == bf16 and args.optim == "adamw_torch_fused"
        assert args.train_sampling_strategy == "group_by_length"
        assert args.torch_compile == (name == "hf_compiled")
    assert made["hf_compiled"].torch_compile_backend == "inductor"
    assert hf_peer.precision("hf_default", "cpu") == "fp32"
    assert hf_peer.precision("hf_compiled", "cpu") == ("bf16" if bf16 else "fp32")


def test_hf_compiled_trainer_compiles_with_the_chosen_shapes(tmp_path, monkeypatch):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    monkeypatch.setenv("ACCELERATE_DYNAMO_USE_DYNAMIC", "0")  # restored afterwards
    monkeypatch.delenv("ACCELERATE_DYNAMO_USE_DYNAMIC")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = BertTokenizerFast(tokenizer_object=backend)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=6, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16))
    args = hf_peer.training_arguments("hf_compiled", str(tmp_path), "cpu", batch_size=2,
                                      eval_batch_size=2, learning_rate=1e-4, epochs=1.0,
                                      warmup=0.1, weight_decay=0.01, seed=1)
    trainer = hf_peer.trainer("hf_compiled", model, tokenizer, [], args)
    plugin = trainer.accelerator.state.dynamo_plugin
    assert plugin.backend.value.lower() == "inductor"
    assert plugin.dynamic == (hf_peer.COMPILED_DYNAMIC == "1" or None)
    assert trainer.data_collator.pad_to_multiple_of == hf_peer.COMPILED_PAD_MULTIPLE
    best = hf_peer.trainer("hf_best", model, tokenizer, [], hf_peer.training_arguments(
        "hf_best", str(tmp_path), "cpu", batch_size=2, eval_batch_size=2, learning_rate=1e-4,
        epochs=1.0, warmup=0.1, weight_decay=0.01, seed=1))
    assert best.data_collator.pad_to_multiple_of is None


def test_the_benchmarks_write_the_projects_bytecode_first(tmp_path):
    """As a user's first run would, even where PYTHONDONTWRITEBYTECODE is set."""
    import importlib.util
    from benchmarks.bytecode import PACKAGES, write_bytecode
    sources = []
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        sources.append(tmp_path / package / "module.py")
        sources[-1].write_text("VALUE = 1\n")
    write_bytecode(str(tmp_path))
    assert all(os.path.isfile(importlib.util.cache_from_source(str(s))) for s in sources)
