"""Searches on many machines share one PostgreSQL database: a real server on 127.0.0.1
(Debian's `postgresql`, started here in a temp folder; `.ci/run` installs it), two workers
of one search and a second search at once, through the README's URL form."""

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest

from conftest import write_keyword_data
from training.search import RESULTS, study_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
SEARCH = ["--task_name=generic", "--train_batch_size=8", "--eval_batch_size=16",
          "--precision=fp32", "--num_train_epochs=1", "--do_train", "--do_eval",
          "--search_trials=2", "--search_space=learning_rate=1e-4:1e-2:log", "--seed=1"]


def _server_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (.ci/run installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own on 127.0.0.1, stopped (and its folder removed) after
    the module. Its folder is in /tmp itself: the server's user must reach it."""
    bin_dir, folder = _server_bin(), tempfile.mkdtemp(prefix="bert-classifier-postgres-")
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(folder, "data"), _free_port()
    subprocess.run(as_user + [f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "-w", "-l",
                              os.path.join(folder, "log"), "-o",
                              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_user + [f"{bin_dir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _search(tiny_bert, data, out, url, log):
    cmd = [sys.executable, os.path.join(ROOT, "run_classifier.py"), f"--data_dir={data}",
           f"--init_checkpoint={tiny_bert}", f"--output_dir={out}", f"--search_storage={url}",
           *SEARCH]
    with open(log, "w") as err:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV, cwd=ROOT,
                              timeout=600).returncode


def read(path):
    with open(path) as f:
        return f.read()


def test_workers_and_searches_share_one_postgres_database(tiny_bert, tmp_path, postgres_url):
    data = write_keyword_data(tmp_path / "data", n_train=64, n_dev=24)
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    jobs = [(first, "a0.log"), (first, "a1.log"), (second, "b.log")]
    with ThreadPoolExecutor(3) as pool:
        codes = list(pool.map(lambda job: _search(tiny_bert, data, job[0], postgres_url,
                                                  str(tmp_path / job[1])), jobs))
    logs = [read(tmp_path / name) for _, name in jobs]
    assert codes == [0, 0, 0], "\n".join(log[-2000:] for log in logs)
    ran = [re.findall(r"\*\*\*\*\* Trial (\d)", log) for log in logs]
    assert sorted(ran[0] + ran[1]) == ["0", "1"] and ran[2] == ["0", "1"]  # none twice
    names = {s.study_name for s in optuna.get_all_study_summaries(postgres_url)}
    assert {study_name(first), study_name(second)} <= names  # each search its own study
    for out in (first, second):
        study = optuna.load_study(study_name=study_name(out), storage=postgres_url)
        assert len(study.trials) == 2 and all(t.state.is_finished() for t in study.trials)
        assert os.path.isfile(os.path.join(out, "model.safetensors"))
        assert not os.path.exists(os.path.join(out, "search.db"))  # the study is in postgres
    # One final model for the shared search: copied once, by the worker that ended last.
    assert sorted("***** Search results *****" in log for log in logs[:2]) == [False, True]
    assert "best: trial " in read(os.path.join(first, RESULTS))
