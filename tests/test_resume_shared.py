"""Resumes that stay exact: a changed optimizer or clipping flag is refused (and the refused
run changes nothing in output_dir), and torchrun (2 gloo processes, dropout on) stopped by
SIGTERM resumes to the same bytes as an uninterrupted torchrun run."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import write_similarity_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
MODEL_FILES = ("config.json", "model.safetensors", "integrity.json", "training_stats.json")


def command(bert, data, out, *extra, torchrun=False):
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                 "--nproc_per_node=2"] if torchrun else [sys.executable])
    return launcher + [
        os.path.join(ROOT, "run_classifier.py"), "--task_name=sentence_similarity",
        f"--data_dir={data}", f"--init_checkpoint={bert}", f"--output_dir={out}",
        "--do_train", "--precision=fp32", "--no_cuda", "--train_batch_size=16",
        "--save_checkpoints_steps=5", "--keep_checkpoint_max=10", *extra]


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def files(folder):
    """Each file's bytes (the lock file records its last holder: left out)."""
    return {name: read(folder / name) for name in os.listdir(folder)
            if (folder / name).is_file() and name != ".lock"}


@pytest.fixture(scope="module")
def unfinished(tiny_bert, tmp_path_factory):
    """(data, output_dir) of a run killed after its checkpoints, before its model was saved."""
    root = tmp_path_factory.mktemp("unfinished")
    data, out = write_similarity_data(root / "data", n_train=48), root / "out"
    proc = subprocess.run(command(tiny_bert, data, out, "--num_train_epochs=2"),
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in MODEL_FILES:  # what a kill before the final save leaves
        os.remove(out / name)
    return data, out


@pytest.mark.parametrize("flag, old, new", [("weight_decay", 0.01, 0.9),
                                            ("adam_epsilon", 1e-6, 1e-3),
                                            ("max_grad_norm", 1.0, 0.5)])
def test_a_changed_optimizer_or_clipping_flag_is_refused_and_changes_nothing(
        tiny_bert, unfinished, tmp_path, flag, old, new):
    data, original = unfinished
    out = shutil.copytree(original, tmp_path / "out")
    before = files(out)
    proc = subprocess.run(command(tiny_bert, data, out, "--num_train_epochs=2", f"--{flag}={new}"),
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.splitlines()[-1]
    assert last.startswith(f"run_classifier: error: {out}/checkpoint-") and (
        f"checkpoint is from a different run ({flag}: {old!r} there, {new!r} now); pass "
        "--overwrite_output_dir to start over") in last, last
    assert files(out) == before  # run_config.json included: the refused run recorded nothing


def sigterm_after_checkpoint(proc, folder, step, seconds=240):
    """SIGTERMs torchrun (as a scheduler would) once `folder` holds checkpoint-`step`."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if os.path.isdir(os.path.join(folder, f"checkpoint-{step}")):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=120)


def test_torchrun_stopped_by_sigterm_resumes_to_the_same_bytes(tiny_bert, tmp_path):
    """Dropout on: each rank's RNG stream is saved and restored on its own rank."""
    data = write_similarity_data(tmp_path / "data", n_train=96, n_dev=8, n_test=4)
    plain, stopped = tmp_path / "plain", tmp_path / "stopped"
    args = ("--num_train_epochs=3",)  # 6 steps an epoch: 18 steps, checkpoints every 5
    with open(tmp_path / "plain.log", "w") as log:
        reference = subprocess.Popen(command(tiny_bert, data, plain, *args, torchrun=True),
                                     stdout=subprocess.DEVNULL, stderr=log, env=ENV, cwd=ROOT)
    with open(tmp_path / "stopped.log", "w") as log:
        proc = subprocess.Popen(command(tiny_bert, data, stopped, *args, torchrun=True),
                                stdout=subprocess.DEVNULL, stderr=log, env=ENV, cwd=ROOT)
        code = sigterm_after_checkpoint(proc, stopped, 10)
    assert reference.wait(timeout=300) == 0, read(tmp_path / "plain.log", "r")[-3000:]
    assert code != 0 and not (stopped / "model.safetensors").exists(), code
    assert "interrupted; run the same command again" in read(tmp_path / "stopped.log", "r")
    resumed = subprocess.run(command(tiny_bert, data, stopped, *args, torchrun=True),
                             capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming from " + str(stopped / "checkpoint-1") in resumed.stderr
    assert read(stopped / "model.safetensors") == read(plain / "model.safetensors")
