"""torchrun: two gloo processes on the CPU match one process with the same global batch."""

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
from conftest import write_similarity_data, write_tiny_bert
from training import distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A batch of 7 over 64 rows leaves a last batch of one row (one rank runs it at scale 0);
# Adam's large epsilon makes the update proportional to the gradient, so a wrong loss
# scale shows in the results; no clipping, no dropout (see the model below).
FLAG_VALUES = dict(task_name="sentence_similarity", do_train=True, do_eval=True,
                   do_predict=True, no_cuda=True, precision="fp32", train_batch_size=7,
                   gradient_accumulation_steps=2, eval_batch_size=5, predict_batch_size=32,
                   num_train_epochs=2.0, learning_rate=0.1, adam_epsilon=1.0,
                   max_grad_norm=1e9, warmup_proportion=0.0, save_checkpoints_steps=1000)


@pytest.fixture(scope="module")
def tiny_bert_without_dropout(tmp_path_factory):
    path = write_tiny_bert(tmp_path_factory.mktemp("tiny_bert_no_dropout"))
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def read_outputs(out):
    with open(os.path.join(out, "eval_results.json")) as f:
        results = json.load(f)
    with open(os.path.join(out, "training_stats.json")) as f:
        stats = [{k: v for k, v in row.items() if k != "time_s"} for row in json.load(f)]
    return results, stats, np.loadtxt(os.path.join(out, "test_results.tsv"), delimiter="\t")


# Windows: torchrun shards the windows and gathers each document's once (20 test rows).
@pytest.mark.parametrize("long_text", [{}, dict(long_text="windows", max_seq_length=20,
                                                doc_stride=6)], ids=["truncate", "windows"])
def test_two_gloo_processes_match_one_process(tiny_bert_without_dropout, tmp_path, long_text):
    data = write_similarity_data(tmp_path / "data")
    values = dict(FLAG_VALUES, data_dir=data, init_checkpoint=tiny_bert_without_dropout,
                  **long_text)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(output_dir=str(tmp_path / "one"), **values):
        run_classifier.main(["run_classifier"])
    args = [f"--{'' if v else 'no'}{k}" if isinstance(v, bool) else f"--{k}={v}"
            for k, v in values.items()]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "run_classifier.py", *args, f"--output_dir={tmp_path / 'two'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = read_outputs(tmp_path / "one"), read_outputs(tmp_path / "two")
    assert one[0].keys() == two[0].keys() and one[0]["global_step"] == two[0]["global_step"]
    for key, value in one[0].items():
        assert two[0][key] == pytest.approx(value, abs=1e-5), key
    assert [r.keys() for r in one[1]] == [r.keys() for r in two[1]]
    for row_one, row_two in zip(one[1], two[1]):
        assert row_two == pytest.approx(row_one, abs=1e-5)
    assert two[2].shape == (20, 2)
    assert (one[0]["global_step"] > 2 * 10) == bool(long_text)  # 64 rows: 10 batches an epoch
    np.testing.assert_allclose(two[2], one[2], atol=1e-5)
    with open(tmp_path / "two" / "run_config.json") as f:
        assert json.load(f)["resolved"]["world_size"] == 2


@pytest.mark.parametrize("world", [2, 3])
def test_shards_split_each_global_batch_and_weigh_it_by_its_size(monkeypatch, world):
    batches = [[5, 1, 4, 2, 3, 0, 9], [8, 6, 7, 10], [11]]
    shares = {}
    for rank in range(world):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        monkeypatch.setattr(distributed, "world_size", lambda: world)
        shares[rank] = distributed.shard_batches(batches)
    for i, batch in enumerate(batches):
        rows = [r for rank in range(world) if shares[rank][1][i] for r in shares[rank][0][i]]
        assert sorted(rows) == sorted(batch)  # every row once, on one rank
        scales = [shares[rank][1][i] for rank in range(world)]
        sizes = [len(shares[rank][0][i]) if scales[rank] else 0 for rank in range(world)]
        assert scales == pytest.approx([n * world / len(batch) for n in sizes])
    assert shares[1][0][2] == [11] and shares[1][1][2] == 0.0  # an idle rank's stand-in row


def test_without_torchrun_everything_is_a_single_process_no_op(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    device = torch.device("cpu")
    model = torch.nn.Linear(2, 2)
    assert distributed.init(device) == device and distributed.world_size() == 1
    inputs = torch.ones(3, 2)
    forward = distributed.wrap(model, lambda m, x: m(x) * 2)
    assert distributed.is_main() and torch.equal(forward(x=inputs), model(inputs) * 2)
    assert list(forward.parameters()) == list(model.parameters())
    assert distributed.shard_batches([[1, 2], [3]]) == ([[1, 2], [3]], [1.0, 1.0])
    assert distributed.my_share([1, 2, 3]) == [1, 2, 3]
    values, order = np.ones((2, 2)), np.array([1, 0])
    gathered = distributed.gather_rows(values, order)
    assert gathered[0] is values and gathered[1] is order


def test_the_process_group_waits_as_long_as_rank_0_may_build_features(monkeypatch):
    """NCCL's default 10 minutes is about 10M rows' features on 2 cores; the others wait in
    a barrier meanwhile."""
    joined = {}
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group",
                        lambda backend, **kwargs: joined.update(backend=backend, **kwargs))
    distributed.init(torch.device("cpu"))
    assert joined == {"backend": "gloo", "timeout": distributed.MIN_TIMEOUT}
    assert distributed.MIN_TIMEOUT.total_seconds() >= 2 * 3600
    rows = 100_000_000
    distributed.init(torch.device("cpu"), rows=rows)
    assert joined["timeout"].total_seconds() == rows / distributed.ROWS_PER_TIMEOUT_SECOND
    assert joined["timeout"].total_seconds() > rows / 21000 * 3  # 3x the measured build rate


LAUNCHER = """import os, runpy, sys, torch
real = torch.compile


def compile(fn=None, **options):  # dynamo and AOTAutograd, without inductor's C++ compiles
    with open(os.path.join({out!r}, "compiled-" + os.environ["RANK"]), "a") as f:
        f.write(fn.__name__ + "\\n")
    options.pop("mode", None)
    return real(fn, **dict(options, backend="aot_eager"))


torch.compile = compile
sys.path.insert(0, {root!r})
sys.argv[0] = {script!r}
runpy.run_path({script!r}, run_name="__main__")
"""


def test_ddp_with_a_compiled_forward_matches_one_eager_process(
        tiny_bert_without_dropout, tmp_path):
    """Two gloo processes, --compile=on (on aot_eager: DDP's graph splitting and the
    compiled backward's gradient hooks, as under inductor) against one eager process: the
    same dev results after a 5-step epoch."""
    results = {}
    data = write_similarity_data(tmp_path / "data", n_train=32, n_dev=8, n_test=8)
    values = dict(FLAG_VALUES, data_dir=data, init_checkpoint=tiny_bert_without_dropout,
                  num_train_epochs=1.0, gradient_accumulation_steps=1, do_predict=False)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    with flagsaver.flagsaver(output_dir=str(tmp_path / "one"), compile="off", **values):
        run_classifier.main(["run_classifier"])
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER.format(root=ROOT, out=str(tmp_path),
                                        script=os.path.join(ROOT, "run_classifier.py")))
    args = [f"--{'' if v else 'no'}{k}" if isinstance(v, bool) else f"--{k}={v}"
            for k, v in values.items()]
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(launcher), *args, "--compile=on", f"--output_dir={tmp_path / 'two'}"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    for rank in "01":  # each rank compiled its training step
        assert (tmp_path / f"compiled-{rank}").read_text().split() == ["logits_from_embeddings"]
    for out in ("one", "two"):
        with open(tmp_path / out / "eval_results.json") as f:
            results[out] = json.load(f)
    assert results["one"].keys() == results["two"].keys()
    for key, value in results["one"].items():
        assert results["two"][key] == pytest.approx(value, abs=1e-5), key
