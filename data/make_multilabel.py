"""Generate the project's small multi-label (topic tags) sample dataset.

Why: the `multilabel_csv` task needs a tiny, license-free dataset whose rows
carry any number of labels, to try multi-label training end to end. All text
is produced here from hand-written templates; nothing is copied from a corpus.

How: a row picks 0 to 3 topics (the tags: food, music, sports, travel,
weather) and writes one clause per topic from that topic's templates, joined
by connectives in random order. Some templates mention a topic only
indirectly ("the striker", "the gate"), and a row without tags gets an
everyday clause that belongs to none, so that no single word decides a tag.

Run from the repository root (deterministic, fixed seed, stdlib only):
    python data/make_multilabel.py
It writes data/multilabel/{train,dev,test}.csv with a header: `text,labels`
(train, dev; labels `|`-separated and sorted, empty for none) or `text` (test).
"""
import csv
import os
import random

SEED = 2024
SIZES = (("train", 400), ("dev", 100), ("test", 100))
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multilabel")
TAG_COUNTS = (0, 1, 1, 1, 2, 2, 2, 3)  # drawn uniformly, before repeats are dropped

NAMES = ("Maria", "Daniel", "Aisha", "Kenji", "Olga", "Pedro", "my neighbour", "the teacher")
TIMES = ("on Monday", "last week", "at noon", "on Friday evening", "yesterday", "in December")
FILL = {
    "name": NAMES, "time": TIMES,
    "team": ("the home team", "our club", "the visitors", "the national side"),
    "sport": ("football", "tennis", "basketball", "hockey"),
    "dish": ("a spicy curry", "fresh pasta", "a lemon cake", "grilled fish", "vegetable soup"),
    "song": ("an old folk song", "a new single", "a slow ballad", "a loud anthem"),
    "city": ("Lisbon", "Oslo", "Nairobi", "Kyoto", "Lima", "Vienna"),
    "sky": ("heavy rain", "thick fog", "a cold wind", "bright sunshine", "a sudden storm"),
}
TEMPLATES = {
    "food": ("{name} cooked {dish} {time}", "the kitchen smelled of {dish}",
             "we ordered {dish} at the corner restaurant", "{name} shared a recipe for {dish}"),
    "music": ("{name} played {song} on the piano", "the band rehearsed {song} {time}",
              "the concert hall was sold out {time}", "{name} sang {song} at the party"),
    "sports": ("{team} won the {sport} match {time}", "the striker scored twice {time}",
               "{name} trained for the {sport} final", "{team} lost on penalties"),
    "travel": ("{name} flew to {city} {time}", "our train to {city} was delayed",
               "{name} booked a hotel in {city}", "we waited at the gate for hours"),
    "weather": ("{sky} hit the coast {time}", "the forecast warned of {sky}",
                "{name} got caught in {sky}", "{sky} closed the mountain roads"),
}
NEUTRAL = ("{name} painted the fence {time}", "{name} fixed a broken chair",
           "the library opened late {time}", "{name} wrote a long letter")
JOINERS = (", and ", "; ", ", while ", ". Meanwhile, ")


def fill(template, rng):
    """Fill a template's slots with random words."""
    return template.format(**{slot: rng.choice(words) for slot, words in FILL.items()})


def make_row(rng):
    """One (text, sorted tags) row with 0 to 3 topics."""
    tags = sorted(rng.sample(sorted(TEMPLATES), rng.choice(TAG_COUNTS)))
    clauses = [fill(rng.choice(TEMPLATES[tag]), rng) for tag in tags] or [
        fill(rng.choice(NEUTRAL), rng)]
    rng.shuffle(clauses)
    text = clauses[0]
    for clause in clauses[1:]:
        joiner = rng.choice(JOINERS)
        text += joiner + (clause[0].upper() + clause[1:] if joiner.endswith(". ") else clause)
    return text[0].upper() + text[1:] + ".", tags


def main():
    """Write train.csv and dev.csv (text,labels) and test.csv (text); no text repeats."""
    rng = random.Random(SEED)
    seen = set()
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, size in SIZES:
        rows = []
        while len(rows) < size:
            text, tags = make_row(rng)
            if text not in seen:
                seen.add(text)
                rows.append([text] if name == "test" else [text, "|".join(tags)])
        path = os.path.join(OUT_DIR, f"{name}.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(["text"] if name == "test" else ["text", "labels"])
            writer.writerows(rows)
        print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
