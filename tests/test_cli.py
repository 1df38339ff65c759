"""The real command line: exit codes and one-line errors, no tracebacks."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, umask=None, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_classifier.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, env=env,
                          preexec_fn=None if umask is None else lambda: os.umask(umask))


@pytest.mark.parametrize("args, message", [
    (["--task_name=nope", "--do_train"], "--task_name=nope: unknown task; registered tasks:"),
    (["--train_batch_size=abc"], "--train_batch_size=abc"),
    (["--task_name=cola"], "at least one of --do_train"),
    (["--task_name=cola", "--do_train", "extra"], "unexpected arguments: extra"),
])
def test_user_errors_exit_2_with_one_line(args, message):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("run_classifier: error: ") and message in result.stderr


def test_task_name_help_lists_tasks_and_exits_0():
    result = cli("--task_name=help")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["task", "problem_type", "metrics", "labels"]
    assert {line.split()[0] for line in lines[1:]} >= {"cola", "sts-b", "xnli", "generic",
                                                       "multilabel_csv"}


@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    """Train, eval and predict (2 epochs) under umask 027, at a learning rate too small to
    change any prediction: the dev F1 ties, so best_model stays at epoch 1 (step 4 of 8).
    TORCHINDUCTOR_CACHE_DIR unset, XDG_CACHE_HOME set: where the inductor caches go."""
    from conftest import write_similarity_data
    root = tmp_path_factory.mktemp("cli")
    data, out = write_similarity_data(root / "data"), root / "out"
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    result = cli("--task_name=sentence_similarity", f"--data_dir={data}",
                 f"--init_checkpoint={tiny_bert}", f"--output_dir={out}", "--do_train",
                 "--do_eval", "--do_predict", "--num_train_epochs=2", "--train_batch_size=16",
                 "--learning_rate=1e-9", umask=0o027,
                 env=env | {"XDG_CACHE_HOME": str(root / "cache")})
    assert result.returncode == 0, result.stderr[-2000:]
    stats = json.loads((out / "training_stats.json").read_text())
    f1 = stats[0]["dev_f1"]
    assert [(row["step"], row["dev_f1"]) for row in stats] == [(4, f1), (8, f1)]
    return data, out, result.stderr, root


def test_train_and_predict_from_the_command_line(trained):
    assert len((trained[1] / "test_results.tsv").read_text().splitlines()) == 20


def log_messages(stderr: str) -> list[str]:
    """absl's log lines, without their `I1202 18:17:57.31 123 file.py:224] ` prefix."""
    return [line.split("] ", 1)[1] for line in stderr.splitlines()
            if re.match(r"[IWEF]\d{4} ", line)]


def test_first_log_lines_say_where_what_and_whither(trained, tiny_bert):
    data, out, stderr, _ = trained
    precision = json.loads((out / "run_config.json").read_text())["resolved"]["precision"]
    device, model, task, output, pooler = log_messages(stderr)[:5]
    assert re.fullmatch(rf"Device: (cpu|cuda)\S* \(.+\) \| precision: {precision} "
                        r"\(auto: the (CPU|GPU) has .+\)", device)
    assert model == f"Model: {tiny_bert} (2 layers, hidden 32)"
    assert task == "Task: sentence_similarity (2 labels) | train 64, dev 24, test 20 examples"
    assert output == f"Output: {out}"
    assert pooler == "Pooler: untrained in the checkpoint (zero bias), starts as the identity"


def test_inductor_caches_go_to_the_users_cache_dir_not_tmp(trained):
    """Building the model imports torch._dynamo, which points TORCHINDUCTOR_CACHE_DIR at
    /tmp unless run_classifier has set it first."""
    from modeling.compiled import BREAK_EVEN
    stderr, root = trained[2], trained[3]
    cold = BREAK_EVEN["training steps"]["cold"]
    assert (f"Training steps: eager (--compile=auto: 8 training steps, under the {cold} that "
            f"repay compiling with cold caches in {root / 'cache' / 'bert-classifier'}"
            f"/inductor)") in log_messages(stderr)


def test_every_output_keeps_the_umask_mode(trained):
    out = trained[1]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"model.safetensors", "config.json", "eval_results.txt"} <= {p.name for p in files}
    assert (out / "best_model" / "model.safetensors") in files
    assert {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in files} == {
        str(p.relative_to(out)): oct(0o640) for p in files}


def test_eval_and_predict_only_report_the_step_of_the_model_they_load(trained, tmp_path):
    data, out, _, _ = trained
    result = cli("--task_name=sentence_similarity", f"--data_dir={data}",
                 f"--output_dir={out}", "--do_eval")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "eval_results.json").read_text())["global_step"] == 8
    best = tmp_path / "best"
    result = cli("--task_name=sentence_similarity", f"--data_dir={data}",
                 f"--init_checkpoint={out / 'best_model'}", f"--output_dir={best}", "--do_eval")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((best / "eval_results.json").read_text())["global_step"] == 4
    result = cli("--task_name=sentence_similarity", f"--data_dir={data}",
                 f"--output_dir={out}", "--do_predict")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"Model: {out} (2 layers, hidden 32; fine-tuned, global step 8)" in log_messages(
        result.stderr)


def test_exit_now_runs_the_exit_hooks_and_flushes_every_stream(tmp_path):
    """A finished run skips the interpreter's teardown, never what it wrote or logged."""
    log = tmp_path / "run.log"
    code = ("import atexit, logging, sys; from training import cli; "
            f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO); "
            "atexit.register(lambda: print('exit hook ran')); "
            "print('results', end=' '); sys.stderr.write('progress'); "
            "logging.info('logged last'); cli.exit_now(0); print('never')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0
    assert result.stdout == "results exit hook ran\n" and result.stderr == "progress"
    assert log.read_text().strip().endswith("logged last")


def test_a_profiled_run_ends_the_usual_way(tmp_path):
    """`python -m cProfile` writes its output after the program returns: exit_now lets it."""
    script = tmp_path / "program.py"
    script.write_text("from training import cli\nprint('done')\ncli.exit_now(0)\n")
    stats = tmp_path / "out.prof"
    result = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(stats), str(script)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0 and result.stdout == "done\n"
    assert stats.stat().st_size > 0


HELD_SIGNAL = r'''
import json, os, signal, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import training.cli as cli
cli.install_interrupt_handler("prog", "hint")
cli._phase[0] = sys.argv[3]
try:
    import outer  # raises the signal on itself, then imports `inner`, then finishes
    while True:  # the held signal arrives here, after the import
        time.sleep(0.01)
except KeyboardInterrupt:
    print(json.dumps({"imported": getattr(sys.modules.get("outer"), "DONE", False),
                      "inner": "inner" in sys.modules, "code": cli._exit_code[0]}))
'''


@pytest.mark.parametrize("signum, phase", [(signal.SIGINT, "running"),
                                           (signal.SIGTERM, "running"),
                                           (signal.SIGINT, "loading")])
def test_a_signal_during_an_import_is_held_until_the_import_ends(tmp_path, signum, phase):
    """torch's import runs Python from C++ (`torch._C._c10d_init()`, say): a KeyboardInterrupt
    raised there aborts the process (a C++ terminate, SIGABRT) instead of unwinding. A
    Ctrl-C or SIGTERM that arrives while a module imports, nested imports included, is
    acted on once the import is over: the same exit as anywhere else."""
    (tmp_path / "outer.py").write_text(
        f"import signal, time\nsignal.raise_signal({int(signum)})\ntime.sleep(0.2)\n"
        "import inner\nDONE = True\nprint('outer imported', flush=True)\n")
    (tmp_path / "inner.py").write_text("import time\ntime.sleep(0.2)\n")
    (tmp_path / "main.py").write_text(HELD_SIGNAL)
    result = subprocess.run([sys.executable, str(tmp_path / "main.py"), ROOT, str(tmp_path),
                             phase], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr, result.stderr
    if phase == "loading":  # nothing written yet: the program exits at once, after the import
        assert result.returncode == 128 + signum and result.stdout == "outer imported\n"
        assert result.stderr == "prog: interrupted; hint\n"
        return
    assert result.returncode == 0, result.stderr
    first, last = result.stdout.splitlines()
    assert first == "outer imported"
    assert json.loads(last) == {"imported": True, "inner": True, "code": 128 + signum}


HELD_IN_TORCH = r'''
import json, signal, sys, time
sys.path[:0] = [sys.argv[1]]
import torch
import training.cli as cli
cli.install_interrupt_handler("prog")
cli._phase[0] = "running"
cli.NOTICE_AFTER = 0.2


class Twice(torch.autograd.Function):  # its backward runs inside torch's (loss.backward)
    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, grad):
        signal.raise_signal(signal.SIGINT)
        time.sleep(float(sys.argv[2]))  # torch's call lasting (as a compile would)
        return 2 * grad


x = torch.ones(3, requires_grad=True)
try:
    Twice.apply(x).sum().backward()
    print(json.dumps({"grad": x.grad.tolist()}))
except KeyboardInterrupt:
    print(json.dumps({"grad": None if x.grad is None else x.grad.tolist(),
                      "code": cli._exit_code[0]}))
'''


@pytest.mark.parametrize("lasting", [0.0, 1.0])
def test_a_signal_inside_torchs_code_is_held_until_it_returns(tmp_path, lasting):
    """Ctrl-C while torch's Python code runs (here `Tensor.backward`, which calls back the
    program's code): the KeyboardInterrupt comes once torch's call returns, its work done;
    a call that lasts past NOTICE_AFTER (0.2 s here) has the user told why, once."""
    (tmp_path / "main.py").write_text(HELD_IN_TORCH)
    result = subprocess.run([sys.executable, str(tmp_path / "main.py"), ROOT, str(lasting)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert json.loads(result.stdout) == {"grad": [2.0, 2.0, 2.0], "code": 130}
    assert result.stderr == ("prog: stopping once torch's current call returns (a graph may "
                             "be compiling); Ctrl-C again stops at once\n" if lasting else "")


def test_a_second_signal_while_one_is_held_ends_the_process_at_once(tmp_path):
    """Held signals wait for the import (or a compile) to return; a second one does not."""
    (tmp_path / "outer.py").write_text(
        "import signal, time\nsignal.raise_signal(signal.SIGINT)\ntime.sleep(0.2)\n"
        "signal.raise_signal(signal.SIGTERM)\ntime.sleep(30)\nprint('outer imported')\n")
    (tmp_path / "inner.py").write_text("")
    (tmp_path / "main.py").write_text(HELD_SIGNAL)
    result = subprocess.run([sys.executable, str(tmp_path / "main.py"), ROOT, str(tmp_path),
                             "running"], capture_output=True, text=True, timeout=20)
    assert result.returncode == 130 and result.stdout == ""
    assert result.stderr == "prog: interrupted; hint\n"
