"""The real command line, SIGKILLed at random moments: the rerun resumes and ends the same.

A run killed twice (while a checkpoint is being written, when the poll
catches one, and mid-epoch) and restarted with the same command each time must
end with the same bytes as a run that never stopped, and a second
uninterrupted run with the same seed must too (CPU, fp32).
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import write_similarity_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")  # steady speed on a shared, busy CPU
SAME_BYTES = ("eval_results.txt", "eval_results.json", "test_results.tsv", "predictions.tsv",
              "model.safetensors", "best_model/model.safetensors",
              "checkpoint-32/model.safetensors")
PREDICT_FILES = ("test_results.tsv", "predictions.tsv")  # not written without --do_predict


def command(tiny_bert, data, out, compile_="off"):
    """The run; with --compile=on, without --do_predict (its compile adds nothing
    to resuming, and tens of seconds to the test)."""
    return [sys.executable, os.path.join(ROOT, "run_classifier.py"), f"--compile={compile_}",
            f"--do_predict={compile_ == 'off'}",
            "--task_name=sentence_similarity", f"--data_dir={data}",
            f"--init_checkpoint={tiny_bert}", f"--output_dir={out}", "--do_train", "--do_eval",
            "--precision=fp32", "--train_batch_size=8", "--num_train_epochs=2",
            "--learning_rate=1e-3", "--save_checkpoints_steps=3", "--keep_checkpoint_max=2",
            "--seed=7"]


def run_to_end(cmd, log):
    with open(log, "w") as err:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV, cwd=ROOT,
                              timeout=180).returncode


def steps_in(out, prefix):
    """Steps of the `<prefix><step>[.tmp]` entries in out."""
    names = os.listdir(out) if os.path.isdir(out) else []
    return [int(n[len(prefix):].removesuffix(".tmp")) for n in names if n.startswith(prefix)]


def run_and_kill(cmd, out, log, target, delay):
    """Starts cmd and SIGKILLs it: with delay None, as soon as it is writing a checkpoint
    >= target; else `delay` seconds after such a checkpoint is complete (mid-epoch)."""
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV, cwd=ROOT)
    deadline = time.monotonic() + 150
    while proc.poll() is None and time.monotonic() < deadline:
        if delay is None and any(s >= target for s in steps_in(out, ".checkpoint-")):
            break
        if any(s >= target for s in steps_in(out, "checkpoint-")):
            time.sleep(delay or 0)
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()


def interrupted_run(cmd, out, logs):
    """Kills the run at seeded random steps (with three logs: once mid-write, then
    mid-epoch; with two: mid-epoch), then lets it finish."""
    rng = random.Random(20240611)
    kills = [(rng.randint(4, 10), None), (rng.randint(15, 24), rng.uniform(0.005, 0.05))]
    codes = [run_and_kill(cmd, out, log, target, delay)
             for log, (target, delay) in zip(logs, kills[3 - len(logs):])]
    return codes + [run_to_end(cmd, logs[-1])]


def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


@pytest.mark.parametrize("compile_,kills,plain", [("off", 2, ("a", "b")), ("on", 1, ("a",))],
                         ids=["eager", "compiled"])
def test_killed_runs_resume_to_the_same_bytes(tiny_bert, tmp_path, compile_, kills, plain):
    """With --compile=on too (killed once, mid-epoch, beside one uninterrupted run: each start
    compiles): compiled runs draw the same dropout bits, and resume."""
    data = write_similarity_data(tmp_path / "data", n_train=128)
    outs = {name: str(tmp_path / name) for name in plain + ("killed",)}
    logs = [str(tmp_path / f"killed{i}.log") for i in range(kills + 1)]
    with ThreadPoolExecutor(3) as pool:
        runs = [pool.submit(run_to_end, command(tiny_bert, data, outs[n], compile_),
                            str(tmp_path / f"{n}.log")) for n in plain]
        killed = pool.submit(interrupted_run, command(tiny_bert, data, outs["killed"], compile_),
                             outs["killed"], logs)
        assert [f.result() for f in runs] == [0] * len(plain), read(tmp_path / "a.log",
                                                                    "r")[-3000:]
        codes = killed.result()
    assert codes == [-signal.SIGKILL] * kills + [0], read(logs[-1], "r")[-3000:]
    for log in logs[1:]:
        assert "Resuming from " + os.path.join(outs["killed"], "checkpoint-") in read(log, "r")
    for out in outs.values():
        assert sorted(os.listdir(out)) == sorted(os.listdir(outs["a"]))
        assert not [n for n in os.listdir(out) if n.endswith(".tmp")]
    for name in [n for n in SAME_BYTES if compile_ == "off" or n not in PREDICT_FILES]:
        for other in list(outs)[1:]:
            assert read(os.path.join(outs[other], name)) == read(
                os.path.join(outs["a"], name)), (other, name)
    stats = [[{k: v for k, v in row.items() if k != "time_s"}
              for row in json.loads(read(os.path.join(out, "training_stats.json")))]
             for out in outs.values()]
    assert all(s == stats[0] for s in stats) and [r["epoch"] for r in stats[0]] == [1, 2]
