"""Generate a long-document sentiment task: one sentence decides, anywhere in the text.

Why: `--long_text=windows` matters when what decides a label may sit past
`--max_seq_length`. Here each document is 200 to 600 WordPiece tokens of neutral
filler (office and logistics facts, made by this script from word lists, with no
sentiment word) around one SST-2 sentence (from $GLUE_DIR) placed between two filler
sentences at a random position; its SST-2 label is the document's. Truncation at
128 tokens sees the deciding sentence only when it happens to be near the start.

Train documents take their sentences from SST-2's train file, dev and test documents
from its dev file (so the deciding sentences of dev are unseen). Only whole sentences
of 8 to 30 words are used: SST-2's train file also holds every phrase of each
sentence's parse tree, so a train row counts only if it is part of no other row (as
`benchmarks/glue_subset.py --whole_sentences` draws them), like dev's rows. Tokens are
counted with the embedded MiniLM's vocabulary.

    python data/make_long_documents.py --output_dir=/tmp/long_documents

writes {train,dev}.csv (`text,label`, label `pos` or `neg`) and test.csv (`text`:
dev's documents without labels) for `--task_name=generic`. Seeded: the same
arguments write the same bytes.
"""

import argparse
import csv
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SUBJECTS = ("the committee", "the office", "a technician", "the driver", "the clerk",
            "the archive team", "the warehouse", "a courier", "the board", "the librarian",
            "the surveyor", "the front desk", "the night shift", "the planning group")
VERBS = ("moved", "listed", "counted", "labelled", "scheduled", "filed", "measured",
         "recorded", "stacked", "delivered", "sorted", "copied", "weighed", "checked")
THINGS = ("the boxes", "the invoices", "the folders", "the chairs", "the cables",
          "the forms", "the shelves", "the pallets", "the keys", "the maps", "the lamps",
          "the badges", "the receipts", "the printer paper")
PLACES = ("the second floor", "room {n}", "the loading dock", "the north wing", "hall {n}",
          "the east entrance", "storage unit {n}", "the basement", "building {n}")
TIMES = ("on monday", "on tuesday", "on wednesday", "on thursday", "on friday",
         "at {n} o'clock", "in the morning", "after lunch", "before noon", "in week {n}")
TEMPLATES = ("{subject} {verb} {thing} in {place} {time} .",
             "{time} , {subject} {verb} {thing} near {place} .",
             "{thing} were {verb} by {subject} {time} .",
             "there are {n} of {thing} in {place} .",
             "{subject} {verb} {n} of {thing} and took them to {place} .",
             "the list for {place} has {n} entries , and {subject} {verb} them {time} .")


def filler(rng: random.Random) -> str:
    """One neutral sentence: who moved or counted what, where and when."""
    n = str(rng.randint(2, 90))
    slots = {"subject": rng.choice(SUBJECTS), "verb": rng.choice(VERBS),
             "thing": rng.choice(THINGS), "place": rng.choice(PLACES).format(n=n),
             "time": rng.choice(TIMES).format(n=n), "n": n}
    return rng.choice(TEMPLATES).format(**slots)


def part_of_others(texts: list[tuple[bytes, ...]]) -> set[tuple[bytes, ...]]:
    """Every word span of each text that is shorter than the text itself."""
    spans = set()
    for words in texts:
        for start in range(len(words)):
            spans.update(words[start:end] for end in range(start + 1, len(words) + 1)
                         if end - start < len(words))
    return spans


def read_sst2(path: str) -> list[tuple[str, str]]:
    """SST-2's (sentence, pos|neg) rows of 8 to 30 words that are no phrase of another row."""
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    words = [tuple(text.split()) for text, _ in rows]
    phrases = part_of_others(words)
    return [(" ".join(w), "pos" if label == "1" else "neg") for w, (_, label) in zip(words, rows)
            if 8 <= len(w) <= 30 and w not in phrases]


def document(rng: random.Random, sentence: str, count, min_tokens: int, max_tokens: int
             ) -> str:
    """Filler sentences up to a random length, the deciding one at a random gap among them."""
    target = rng.randint(min_tokens, max_tokens)
    fillers, total = [], count(sentence)
    while True:
        extra = filler(rng)
        if total + count(extra) > target:
            break
        fillers.append(extra)
        total += count(extra)
    at = rng.randint(0, len(fillers))
    return " ".join(fillers[:at] + [sentence] + fillers[at:])


def make_split(rng, sentences, n: int, count, args) -> list[tuple[str, str]]:
    """`n` documents, a distinct deciding sentence each, labels balanced as drawn."""
    return [(document(rng, text, count, args.min_tokens, args.max_tokens), label)
            for text, label in rng.sample(sentences, n)]


def write(path: str, rows: list[tuple], header: tuple) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True, help="Where the CSV files go.")
    parser.add_argument("--glue_dir", default=os.environ.get("GLUE_DIR"),
                        help="GLUE data (its SST-2 folder). Default: $GLUE_DIR.")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--num_train", type=int, default=1000)
    parser.add_argument("--num_dev", type=int, default=300)
    parser.add_argument("--min_tokens", type=int, default=200)
    parser.add_argument("--max_tokens", type=int, default=600)
    args = parser.parse_args()
    sst2 = os.path.join(args.glue_dir or "", "SST-2")
    if not os.path.isdir(sst2):
        parser.error(f"--glue_dir={args.glue_dir}: no SST-2 folder (set GLUE_DIR)")
    from modeling.model import default_model_dir
    from modeling.tokenization import load_tokenizer
    tokenizer = load_tokenizer(os.path.join(default_model_dir(), "vocab.txt"), True)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    rng = random.Random(args.seed)
    train = make_split(rng, read_sst2(os.path.join(sst2, "train.tsv")), args.num_train, count,
                       args)
    dev = make_split(rng, read_sst2(os.path.join(sst2, "dev.tsv")), args.num_dev, count, args)
    os.makedirs(args.output_dir, exist_ok=True)
    write(os.path.join(args.output_dir, "train.csv"), train, ("text", "label"))
    write(os.path.join(args.output_dir, "dev.csv"), dev, ("text", "label"))
    write(os.path.join(args.output_dir, "test.csv"), [(text,) for text, _ in dev], ("text",))
    print(f"Wrote {len(train)} train and {len(dev)} dev documents to {args.output_dir}")


if __name__ == "__main__":
    main()
