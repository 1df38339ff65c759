"""One run per output_dir: a busy one is refused at once, naming the holder; a killed
holder's lock is taken over."""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from modeling.locks import LOCK_FILE, folder_lock
from processors import InputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")
HOLD = ("import sys, time; from modeling.locks import folder_lock\n"
        "with folder_lock(sys.argv[1], 'x', sys.argv[2] == 'shared'):\n"
        "    print('locked', flush=True); time.sleep(600)")
TRY = ("import sys; from modeling.locks import folder_lock\n"
       "from modeling.errors import InputError\n"
       "try:\n    with folder_lock(sys.argv[1], 'x', sys.argv[2] == 'shared'): print('free')\n"
       "except InputError as e: print('busy' if 'in use by' in str(e) else str(e))")


def hold(folder, how="exclusive"):
    """A process that holds `folder` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), how],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline() == "locked\n"
    return proc


def other_process_sees(folder, how="exclusive"):
    return subprocess.run([sys.executable, "-c", TRY, str(folder), how], capture_output=True,
                          text=True, cwd=ROOT).stdout.strip()


def test_search_workers_share_a_folder_that_no_plain_run_enters(tmp_path):
    """Shared holders (a search's workers) together; never beside an exclusive one."""
    worker = hold(tmp_path, "shared")
    try:
        assert other_process_sees(tmp_path, "shared") == "free"
        assert other_process_sees(tmp_path, "exclusive") == "busy"
        assert (tmp_path / LOCK_FILE).read_text().endswith("(a search worker)\n")
    finally:
        worker.kill()
        worker.wait()
    plain = hold(tmp_path)
    try:
        assert other_process_sees(tmp_path, "shared") == "busy"
    finally:
        plain.kill()
        plain.wait()
    assert other_process_sees(tmp_path, "shared") == "free"


@pytest.mark.parametrize("kind", ["link", "dangling-link", "fifo", "folder"])
def test_a_lock_that_is_a_link_or_not_a_file_is_refused_and_its_target_untouched(
        tmp_path, kind):
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.write_text("precious\n")
    lock = out / LOCK_FILE
    if kind == "link":
        lock.symlink_to("../victim")
    elif kind == "dangling-link":
        lock.symlink_to(tmp_path / "created")
    elif kind == "fifo":
        os.mkfifo(lock)
    else:
        lock.mkdir()
    with pytest.raises(InputError, match=f"--output_dir=x: {lock} is (a symbolic link|not a "
                                         "regular file); a lock file must be"):
        with folder_lock(str(out), "--output_dir=x"):
            pass
    assert victim.read_text() == "precious\n" and not (tmp_path / "created").exists()


def test_a_busy_folder_is_refused_at_once_and_a_killed_holders_is_taken(tmp_path):
    holder = hold(tmp_path)
    try:
        start = time.monotonic()
        with pytest.raises(InputError) as e:
            with folder_lock(str(tmp_path), "--output_dir=x"):
                pass
        assert time.monotonic() - start < 1  # not waited for
        assert str(e.value) == f"--output_dir=x: in use by pid {holder.pid} on host " \
                               f"{socket.gethostname()}"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with folder_lock(str(tmp_path), "--output_dir=x"):
        assert (tmp_path / LOCK_FILE).read_text() == \
            f"pid {os.getpid()} on host {socket.gethostname()}\n"
        assert other_process_sees(tmp_path) == "busy"
    assert other_process_sees(tmp_path) == "free"


def test_reentrant_within_a_process(tmp_path):
    with folder_lock(str(tmp_path), "a"):
        with folder_lock(str(tmp_path / ".." / tmp_path.name), "a"):  # the same folder
            pass
        assert other_process_sees(tmp_path) == "busy"  # the inner block let nothing go


def cli(tiny_bert, data, out, *extra, wait=True):
    cmd = [sys.executable, os.path.join(ROOT, "run_classifier.py"),
           "--task_name=sentence_similarity", f"--data_dir={data}",
           f"--init_checkpoint={tiny_bert}", f"--output_dir={out}", "--do_train",
           "--precision=fp32", "--train_batch_size=8", *extra]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=ENV, cwd=ROOT)
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=180)


def holds(out, pid):
    path = out / LOCK_FILE
    return path.exists() and path.read_text().startswith(f"pid {pid} ")


def test_second_run_into_a_busy_output_dir_exits_2(tiny_bert, similarity_dir, tmp_path):
    out = tmp_path / "out"
    first = cli(tiny_bert, similarity_dir, out, "--num_train_epochs=1000", wait=False)
    try:
        deadline = time.monotonic() + 120
        while not holds(out, first.pid) and time.monotonic() < deadline:
            assert first.poll() is None
            time.sleep(0.01)
        second = cli(tiny_bert, similarity_dir, out, "--num_train_epochs=1000")
        assert second.returncode == 2, second.stderr[-2000:]
        assert second.stderr == (f"run_classifier: error: --output_dir={out}: in use by pid "
                                 f"{first.pid} on host {socket.gethostname()}\n")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    third = cli(tiny_bert, similarity_dir, out, "--num_train_epochs=1", "--overwrite_output_dir")
    assert third.returncode == 0, third.stderr[-2000:]  # the killed run's lock is no obstacle
