"""data/make_long_documents.py: seeded, 200-600 tokens, one whole SST-2 sentence decides
the label."""

import csv
import os
import subprocess
import sys

from conftest import glue_dir
from modeling.model import default_model_dir
from modeling.tokenization import load_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make(out, glue: str) -> dict[str, bytes]:
    subprocess.run([sys.executable, os.path.join(ROOT, "data", "make_long_documents.py"),
                    f"--output_dir={out}", f"--glue_dir={os.path.dirname(glue)}",
                    "--num_train=12", "--num_dev=6"], check=True, capture_output=True,
                   timeout=120)
    return {name: (out / name).read_bytes() for name in ("train.csv", "dev.csv", "test.csv")}


def sst2(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        return {row[0].strip(): "pos" if row[1] == "1" else "neg"
                for row in list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]}


def test_documents_are_seeded_long_and_decided_by_one_sst2_sentence(tmp_path):
    glue = glue_dir("SST-2")
    files = make(tmp_path / "a", glue)
    assert make(tmp_path / "b", glue) == files
    tokenizer = load_tokenizer(os.path.join(default_model_dir(), "vocab.txt"), True)
    for split, source in (("train", "train.tsv"), ("dev", "dev.tsv")):
        every_row = sst2(os.path.join(glue, source))
        sentences = {s: label for s, label in every_row.items() if 8 <= len(s.split()) <= 30}
        rows = list(csv.DictReader(files[f"{split}.csv"].decode().splitlines()))
        assert len(rows) == (12 if split == "train" else 6)
        starts = []
        for row in rows:
            tokens = len(tokenizer(row["text"], add_special_tokens=False)["input_ids"])
            assert 200 <= tokens <= 600
            # (SST-2's train phrases nest: the deciding sentence is the longest one found)
            found = max((s for s in sentences if f" {s} " in f" {row['text']} "), key=len)
            assert sentences[found] == row["label"]
            # a whole sentence: no phrase of another SST-2 row
            assert not any(f" {found} " in f" {other} " for other in every_row if other != found)
            starts.append(row["text"].index(found))
        assert len(set(starts)) == len(starts) and min(starts) < max(starts) / 2
    test = list(csv.DictReader(files["test.csv"].decode().splitlines()))
    dev = list(csv.DictReader(files["dev.csv"].decode().splitlines()))
    assert [row["text"] for row in test] == [row["text"] for row in dev]
