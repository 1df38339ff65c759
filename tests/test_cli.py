"""The real command line: exit codes and one-line errors, no tracebacks."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_classifier.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


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


def test_train_and_predict_from_the_command_line(tiny_bert, similarity_dir, tmp_path):
    out = tmp_path / "out"
    result = cli("--task_name=sentence_similarity", f"--data_dir={similarity_dir}",
                 f"--init_checkpoint={tiny_bert}", f"--output_dir={out}", "--do_train",
                 "--do_predict", "--num_train_epochs=1", "--train_batch_size=16")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((out / "test_results.tsv").read_text().splitlines()) == 20


def test_task_name_help_lists_tasks_and_exits_0():
    result = cli("--task_name=help")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["task", "problem_type", "metrics", "labels"]
    assert {line.split()[0] for line in lines[1:]} >= {"cola", "sts-b", "xnli", "generic",
                                                       "multilabel_csv"}
