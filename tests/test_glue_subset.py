"""benchmarks/glue_subset.py: the seeded subsets the README's small-data results use."""

import os
import subprocess
import sys

import pytest

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "benchmarks", "glue_subset.py")


def subset(task_dir, out, *flags):
    return subprocess.run([sys.executable, SCRIPT, f"--task_dir={task_dir}", f"--out={out}",
                           *flags], capture_output=True, text=True, check=False)


@pytest.fixture
def task_dir(tmp_path):
    # 2 to 13 words a row: 98 of the 200 have at least 8
    rows = [f"{' '.join(['w'] * (1 + i % 12))} {i}\t{i % 2}\n" for i in range(200)]
    path = tmp_path / "SST-2"
    path.mkdir()
    (path / "train.tsv").write_bytes(("\ufeffsentence\tlabel\n" + "".join(rows)).rstrip(
        "\n").encode())  # GLUE's quirks: a BOM, no final newline
    (path / "dev.tsv").write_text("sentence\tlabel\na b\t1\n")
    return path


def read_rows(path):
    return path.read_bytes().decode().splitlines()


def test_subset_keeps_the_header_and_draws_rows_in_file_order(task_dir, tmp_path):
    done = subset(task_dir, tmp_path / "a", "--rows=50", "--min_words=8")
    assert done.returncode == 0, done.stderr
    rows = read_rows(tmp_path / "a" / "train.tsv")
    original = read_rows(task_dir / "train.tsv")
    assert rows[0] == original[0] and len(rows) == 51
    positions = [original.index(r) for r in rows[1:]]
    assert positions == sorted(positions) and len(set(positions)) == 50
    assert all(len(r.split("\t")[0].split()) >= 8 for r in rows[1:])
    assert (tmp_path / "a" / "dev.tsv").read_bytes() == (task_dir / "dev.tsv").read_bytes()
    assert (tmp_path / "a" / "train.tsv").read_bytes().endswith(b"\n")


def test_subset_is_fixed_by_the_seed(task_dir, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert subset(task_dir, tmp_path / name, "--rows=30", f"--seed={seed}").returncode == 0
    a, b, c = (read_rows(tmp_path / n / "train.tsv") for n in "abc")
    assert a == b and a != c


def test_subset_refuses_too_few_rows_and_an_existing_out(task_dir, tmp_path):
    done = subset(task_dir, tmp_path / "a", "--rows=100", "--min_words=8")
    assert done.returncode != 0 and "only 98 train rows qualify" in done.stderr
    assert not (tmp_path / "a").exists()
    done = subset(task_dir, task_dir, "--rows=10")
    assert done.returncode != 0 and "already exists" in done.stderr


def test_whole_sentences_leaves_out_rows_that_are_part_of_another(tmp_path):
    path = tmp_path / "SST-2"
    path.mkdir()
    rows = ["a good film .\t1", "good film\t1", "a good\t1", "film\t0", "a bad film .\t0",
            "bad\t0", "good film , bad acting\t0"]
    (path / "train.tsv").write_text("sentence\tlabel\n" + "\n".join(rows))
    done = subset(path, tmp_path / "a", "--rows=3", "--whole_sentences")
    assert done.returncode == 0, done.stderr
    assert read_rows(tmp_path / "a" / "train.tsv")[1:] == [
        "a good film .\t1", "a bad film .\t0", "good film , bad acting\t0"]
    done = subset(path, tmp_path / "b", "--rows=4", "--whole_sentences")
    assert done.returncode != 0 and "only 3 train rows qualify" in done.stderr
