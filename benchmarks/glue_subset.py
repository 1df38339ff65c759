"""Writes a copy of a GLUE task directory whose train.tsv is a seeded random subset.

    python benchmarks/glue_subset.py --task_dir=$GLUE_DIR/SST-2 --rows=2000 \
        --out=/tmp/sst2_2000 [--min_words=8] [--seed=42]

train.tsv keeps its header and each chosen row's bytes, in the file's order; the other
files (dev.tsv, test.tsv) are copied as they are. `--min_words` draws only from rows
whose text column has at least that many words: SST-2's train file holds every phrase
of its parse trees (half of them under 8 words), its dev file whole sentences.
`--whole_sentences` draws only rows whose text is part of no other row's text: in SST-2,
the 6,885 roots of those trees, the train sentences themselves.
"""

import argparse
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data.make_long_documents import part_of_others  # noqa: E402 (the data's own rule)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task_dir", required=True, help="a GLUE task dir with train.tsv")
    p.add_argument("--out", required=True, help="the directory to write (must not exist)")
    p.add_argument("--rows", type=int, required=True, help="train rows to keep")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--min_words", type=int, default=0)
    p.add_argument("--whole_sentences", action="store_true",
                   help="only rows whose text is no word span of another row's text")
    p.add_argument("--text_column", type=int, default=0,
                   help="for --min_words and --whole_sentences (0-based)")
    p.add_argument("--header", type=int, default=1, help="header lines in train.tsv")
    return p.parse_args(argv)


def choose(lines: list[bytes], args) -> list[bytes]:
    """The subset: args.rows lines drawn without replacement, in their original order."""
    def words(line: bytes) -> tuple[bytes, ...]:
        columns = line.rstrip(b"\r\n").split(b"\t")
        return tuple(columns[args.text_column].split()) if args.text_column < len(columns) \
            else ()
    texts = [words(line) for line in lines]
    parts = part_of_others(texts) if args.whole_sentences else set()
    pool = [i for i, (line, text) in enumerate(zip(lines, texts)) if line.strip()
            and len(text) >= args.min_words and text not in parts]
    if len(pool) < args.rows:
        sys.exit(f"glue_subset: only {len(pool)} train rows qualify, fewer than --rows="
                 f"{args.rows}")
    return [lines[i] for i in sorted(random.Random(args.seed).sample(pool, args.rows))]


def main(argv=None) -> None:
    args = parse_args(argv)
    if os.path.exists(args.out):
        sys.exit(f"glue_subset: --out={args.out} already exists")
    with open(os.path.join(args.task_dir, "train.tsv"), "rb") as f:
        lines = [line if line.endswith(b"\n") else line + b"\n" for line in f]
    head, body = lines[:args.header], lines[args.header:]
    chosen = choose(body, args)
    os.makedirs(args.out)
    with open(os.path.join(args.out, "train.tsv"), "wb") as f:
        f.writelines(head + chosen)
    for name in sorted(os.listdir(args.task_dir)):
        path = os.path.join(args.task_dir, name)
        if name != "train.tsv" and os.path.isfile(path):
            shutil.copyfile(path, os.path.join(args.out, name))
    print(f"{args.out}: {len(chosen)} of {len(body)} train rows")


if __name__ == "__main__":
    main()
