"""The cheap layer: a user error is found before torch is imported.

run_classifier.py runs as the program (a subprocess), with an exit hook that reports
whether `torch` (or transformers) was ever imported: every check, up to the model's files
and the rows of the data, imports neither, so a mistake costs a fraction of a second.
"""

import os
import subprocess
import sys

import pytest

from conftest import write_similarity_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The program as `python run_classifier.py ARGS`, and at exit a line on stdout naming the
# heavy modules it imported.
WRAPPER = ("import atexit, runpy, sys\n"
           "atexit.register(lambda: print('imported:', *sorted(m for m in ('torch', "
           "'transformers') if m in sys.modules)))\n"
           "sys.argv = ['run_classifier.py'] + sys.argv[1:]\n"
           "runpy.run_path('run_classifier.py', run_name='__main__')\n")


def run_program(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


def assert_cheap_failure(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"run_classifier: error: {message}"), result.stderr
    assert result.stdout.splitlines()[-1] == "imported:"  # neither torch nor transformers


@pytest.fixture
def data(tmp_path) -> str:
    return write_similarity_data(tmp_path / "data", n_train=8, n_dev=4, n_test=4)


def test_a_misspelt_task_imports_no_torch(data, tmp_path):
    result = run_program("--task_name=sentence_similarty", f"--data_dir={data}",
                         f"--output_dir={tmp_path / 'out'}", "--do_train")
    assert_cheap_failure(result, "--task_name=sentence_similarty: unknown task; registered "
                         "tasks: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("data_dir, message", [
    (None, "--data_dir is required"),
    ("missing", "--data_dir={}: not a directory"),
])
def test_a_missing_data_dir_imports_no_torch(data_dir, message, tmp_path):
    args = [] if data_dir is None else [f"--data_dir={tmp_path / data_dir}"]
    result = run_program("--task_name=sentence_similarity", *args,
                         f"--output_dir={tmp_path / 'out'}", "--do_train")
    assert_cheap_failure(result, message.format(tmp_path / str(data_dir)))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag, message", [
    ("--train_batch_size=0", "--train_batch_size=0: must be positive"),
    ("--class_weights=1,2,3", "--class_weights=1,2,3: expected none, balanced, or 2 positive"),
])
def test_a_bad_number_imports_no_torch(flag, message, data, tmp_path):
    result = run_program("--task_name=sentence_similarity", f"--data_dir={data}",
                         f"--output_dir={tmp_path / 'out'}", "--do_train", flag)
    assert_cheap_failure(result, message)


def test_the_model_and_every_row_are_checked_without_torch(tiny_bert, data, tmp_path):
    """The checks that read the model's files (casing, sizes) and every row of the data
    come before any heavy import too."""
    common = ("--task_name=sentence_similarity", f"--data_dir={data}",
              f"--init_checkpoint={tiny_bert}", f"--output_dir={tmp_path / 'out'}",
              "--do_train", "--do_eval")
    assert_cheap_failure(run_program(*common, "--nodo_lower_case"),
                         "--do_lower_case=False: the checkpoint's tokenizer has "
                         "do_lower_case=True")
    assert_cheap_failure(run_program(*common, "--max_seq_length=129"),
                         "--max_seq_length=129: must be at most")
    with open(os.path.join(data, "dev.csv"), "a") as f:
        f.write('"an unclosed quote\n')
    result = run_program(*common)
    assert_cheap_failure(result, os.path.join(data, "dev.csv"))
    assert not (tmp_path / "out").exists()


def test_a_search_checks_every_row_before_its_heavy_imports(data, tmp_path):
    """--search_trials imports optuna and torch only once the checks have passed."""
    with open(os.path.join(data, "train.csv"), "a") as f:
        f.write('"an unclosed quote\n')
    result = run_program("--task_name=sentence_similarity", f"--data_dir={data}",
                         f"--output_dir={tmp_path / 'out'}", "--do_train", "--do_eval",
                         "--search_trials=2")
    assert_cheap_failure(result, os.path.join(data, "train.csv"))
    assert not (tmp_path / "out").exists()
