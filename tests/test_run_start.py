"""A run's start. Digests taken on a background thread while torch imports
(`modeling.sha256.prefetch_sha256`): the same digest as a read, never one of a file that
changed since, and a cached run's features and model hashed before torch's import has
finished. The program's heavy imports kept out of the garbage collector's way, while they
run and after (`training.cli.heavy_imports`), in its own process only."""

import hashlib
import os
import subprocess
import sys
import threading

import pytest

from conftest import write_similarity_data
from modeling import sha256

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAST_NS = 1_600_000_000 * 10 ** 9  # a modification time long before the test


@pytest.fixture
def reads(monkeypatch):
    """The (thread name, file name) of every file `sha256` reads."""
    seen, read = [], sha256.sha256_of

    def recorded(f, *args):
        seen.append((threading.current_thread().name, f.name))
        return read(f, *args)
    monkeypatch.setattr(sha256, "sha256_of", recorded)
    return seen


def write(path, data: bytes, past: bool = True) -> str:
    """`data` at `path`; `past`: its modification time set long before now, as a file a
    run checks was written before the run."""
    with open(path, "wb") as f:
        f.write(data)
    if past:
        os.utime(path, ns=(PAST_NS, PAST_NS))
    return str(path)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_prefetched_digest_is_the_files_and_is_taken_once(tmp_path, reads):
    data = os.urandom(3 << 20)
    path = write(tmp_path / "big.bin", data)
    sha256.prefetch_sha256([path, path])  # (a path named twice is hashed once)
    assert sha256.sha256_file(path) == digest(data)
    assert reads == [("prefetch_sha256", path)]
    assert sha256.sha256_file(path) == digest(data)  # used once: read again now
    assert reads[1:] == [("MainThread", path)]


def test_a_prefetch_block_is_larger_and_gives_the_same_digest(tmp_path):
    data = os.urandom(sha256.BLOCK * 3 + 5)
    with open(write(tmp_path / "f", data), "rb") as f:
        assert sha256.sha256_of(f, sha256.BLOCK * 2) == digest(data)


def rewrite_in_place(path):
    with open(path, "r+b") as f:
        f.write(b"X")  # same size, other bytes


def replace(path):
    write(path + ".new", b"X" + open(path, "rb").read()[1:])
    os.replace(path + ".new", path)  # another inode, even with the same times


def truncate(path):
    os.truncate(path, 10)


@pytest.mark.parametrize("change", [rewrite_in_place, replace, truncate])
def test_a_file_changed_after_its_prefetch_is_read_again(tmp_path, reads, change):
    path = write(tmp_path / "f.bin", os.urandom(1 << 20))
    sha256.prefetch_sha256([path])
    sha256._prefetched[path].done.wait()
    change(path)
    now = open(path, "rb").read()
    assert sha256.sha256_file(path) == digest(now)
    assert reads[-1] == ("MainThread", path)


def test_a_missing_file_is_an_error_at_use_not_at_prefetch(tmp_path):
    path = str(tmp_path / "later.bin")
    sha256.prefetch_sha256([path])
    with pytest.raises(FileNotFoundError):
        sha256.sha256_file(path)
    sha256.prefetch_sha256([path])
    sha256._prefetched[path].done.wait()
    write(path, b"written after the prefetch")
    assert sha256.sha256_file(path) == digest(b"written after the prefetch")


# Counts, in a program's process, the collections while torch imported (before the program
# froze its imports) and after; prints them and the frozen objects' count at exit.
COLLECTIONS = ("import atexit, gc, sys\n"
               "atexit.register(lambda: print('FROZEN', gc.get_freeze_count()))\n"
               "seen = []  # each collection: (torch imported?, imports frozen?)\n"
               "gc.callbacks.append(lambda phase, info: phase == 'start' and seen.append(\n"
               "    ('torch' in sys.modules, gc.get_freeze_count() > 0)))\n"
               "atexit.register(lambda: print('COLLECTIONS', sum(t and not f for t, f in seen),\n"
               "                              sum(f for t, f in seen)))\n")


def program(script: str, setup: str) -> str:
    """`python -c` code: `setup`, then `script` run as the program (its `__main__`)."""
    return (setup + "import runpy, sys\n"
            f"sys.argv = [{script!r}] + sys.argv[1:]\n"
            f"runpy.run_path({script!r}, run_name='__main__')\n")


# The program, recording each file `modeling.sha256` reads (the thread, the file) and each
# prefetch's start (whether torch was imported by then). Printed at exit, one line each.
WRAPPER = program("run_classifier.py", (
    "import atexit, threading\n"
    "import modeling.sha256 as h\n"
    "read, prefetch, log = h.sha256_of, h.prefetch_sha256, []\n"
    "def traced(f, *a):\n"
    "    log.append((threading.current_thread().name, '-', f.name))\n"
    "    return read(f, *a)\n"
    "def started(paths):\n"
    "    log.append(('PREFETCH', 'torch' in sys.modules, '-'))\n"
    "    return prefetch(paths)\n"
    "h.sha256_of, h.prefetch_sha256 = traced, started\n"
    "atexit.register(lambda: print(*('READ %s %s %s' % r for r in log), sep='\\n'))\n"
    + COLLECTIONS))


def assert_imports_kept_from_the_collector(stdout: str) -> None:
    """No collection while torch imported (hundreds with the collector on), torch's objects
    frozen, and the collector on again after."""
    [frozen] = [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("FROZEN ")]
    [(during, after)] = [tuple(map(int, line.split()[1:])) for line in stdout.splitlines()
                         if line.startswith("COLLECTIONS ")]
    assert frozen > 10000 and during == 0 and after > 0, (frozen, during, after)


def test_a_cached_run_hashes_its_features_and_model_while_torch_imports(tiny_bert, tmp_path):
    """The second run of a command finds its features entry before torch's import, and
    the prefetch thread, not the run, reads the entry's arrays and the model's files."""
    data = write_similarity_data(tmp_path / "data", n_train=16, n_dev=4, n_test=4)
    args = [sys.executable, "-c", WRAPPER, "--task_name=sentence_similarity",
            f"--data_dir={data}", f"--init_checkpoint={tiny_bert}", "--do_train",
            f"--cache_dir={tmp_path / 'cache'}", "--num_train_epochs=1",
            "--train_batch_size=8", "--overwrite_output_dir"]
    for run in ("cold", "cached"):
        result = subprocess.run(args + [f"--output_dir={tmp_path / run}"], capture_output=True,
                                text=True, cwd=ROOT, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    reads = [line.split(" ", 3)[1:] for line in result.stdout.splitlines()
             if line.startswith("READ ")]
    [entry] = [n for n in os.listdir(tmp_path / "cache") if os.path.isdir(tmp_path / "cache" / n)]
    arrays = sorted(os.path.join(tmp_path, "cache", entry, n)
                    for n in os.listdir(tmp_path / "cache" / entry) if n.endswith(".bin"))
    model = [os.path.join(tiny_bert, n) for n in ("config.json", "model.safetensors")]
    prefetched = [path for thread, _, path in reads if thread == "prefetch_sha256"]
    assert sorted(prefetched) == sorted(arrays + model + [os.path.join(tiny_bert, "vocab.txt")])
    assert [torch for name, torch, _ in reads if name == "PREFETCH"] == ["False"]  # then torch
    on_main = {path for thread, _, path in reads if thread == "MainThread"}
    assert not on_main & set(arrays + model), on_main
    assert_imports_kept_from_the_collector(result.stdout)


def test_extract_features_keeps_its_imports_from_the_collector(tiny_bert, tmp_path):
    """extract_features imports torch and transformers at its top: in its own process,
    with the collector paused, then frozen (about a fifth of its start)."""
    (tmp_path / "input.txt").write_text("the dog runs\nthe cat sleeps ||| a bird sings\n")
    result = subprocess.run([sys.executable, "-c", program("extract_features.py", COLLECTIONS),
                             f"--init_checkpoint={tiny_bert}",
                             f"--input_file={tmp_path / 'input.txt'}", "--no_cuda", "--layers=-1",
                             f"--output_vectors={tmp_path / 'vectors.npy'}"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "vectors.npy")
    assert_imports_kept_from_the_collector(result.stdout)


def test_a_run_called_in_a_process_of_its_own_leaves_the_collector_alone(tiny_bert, tmp_path):
    """run_classifier.main called from a user's code (here, the tests') freezes nothing."""
    import gc
    from absl.testing import flagsaver
    import run_classifier
    data = write_similarity_data(tmp_path / "data", n_train=16, n_dev=4, n_test=4)
    before = gc.get_freeze_count()
    with flagsaver.flagsaver(task_name="sentence_similarity", data_dir=data,
                             init_checkpoint=tiny_bert, output_dir=str(tmp_path / "out"),
                             do_train=True, num_train_epochs=1.0, train_batch_size=8):
        run_classifier.main(["run_classifier"])
    assert gc.get_freeze_count() == before
    assert os.path.isfile(tmp_path / "out" / "model.safetensors")


def test_a_fifo_in_a_files_place_is_skipped_not_waited_on(tmp_path):
    """A prefetch never blocks on a FIFO (no writer would ever come): the thread skips it,
    and the file's own read at use is as without a prefetch."""
    path = str(tmp_path / "fifo.bin")
    os.mkfifo(path)
    sha256.prefetch_sha256([path])
    assert sha256._prefetched[path].done.wait(timeout=10)
    assert sha256._prefetched_sha256(path) is None


def test_a_search_keeps_its_imports_from_the_collector(tiny_bert, tmp_path):
    """--search_trials imports optuna and torch before its first trial: paused and frozen
    there; the trials' own objects are collected as usual."""
    data = write_similarity_data(tmp_path / "data", n_train=16, n_dev=4, n_test=4)
    result = subprocess.run([sys.executable, "-c", program("run_classifier.py", COLLECTIONS),
                             "--task_name=sentence_similarity",
                             f"--data_dir={data}", f"--init_checkpoint={tiny_bert}",
                             f"--output_dir={tmp_path / 'out'}", "--do_train", "--do_eval",
                             "--num_train_epochs=1", "--train_batch_size=8",
                             "--search_trials=2", "--search_space=seed"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.isfile(tmp_path / "out" / "model.safetensors")
    assert_imports_kept_from_the_collector(result.stdout)
