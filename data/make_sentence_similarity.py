"""Generate the project's small sentence-similarity (paraphrase) sample dataset.

Why: the quick start needs a tiny task shaped like GLUE's MRPC (is text_b a paraphrase
of text_a?) that trains in minutes; all its text comes from the grammar below.

How: a meaning (subject, verb, number, adjective, noun, place, time, negation) is
rendered in a style (synonyms, digits or words, voice, fronted time, filler). Label 1
renders one meaning in two styles; label 0 changes one slot in the same style (hard:
all but a word or two shared), changes three slots, or pairs two unrelated sentences.

Run from the repository root (deterministic: fixed seed, stdlib only):
    python data/make_sentence_similarity.py
It writes data/sentence_similarity/{train,dev,test}.csv, no header: `label,text_a,text_b`
(train, dev) or `text_a,text_b` (test, labels unknown), quoting fields with commas.
"""
import csv
import os
import random

SEED = 1234
SIZES = (("train", 600), ("dev", 150), ("test", 150))
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentence_similarity")
HARD_RATE = 0.25  # share of negatives changing one slot, same style
UNRELATED_RATE = 0.35  # share of negatives pairing two random sentences
POSITIVE_RESTYLE = 0.3  # chance that a positive redraws each style attribute
NEGATIVE_RESTYLE = 0.5  # same, for negatives changing three slots

# Each entry is one meaning; its tuple lists interchangeable surface forms.
SLOTS = {
    "subj": [("Maria",), ("Daniel",), ("Aisha",), ("Kenji",), ("Olga",), ("Pedro",),
             ("the doctor", "the physician"), ("the chef", "the cook"),
             ("the teacher", "the instructor"), ("the children", "the kids"),
             ("the farmer",), ("my neighbour", "the man next door")],
    "verb": [(("repair", "repaired"), ("fix", "fixed"), ("mend", "mended")),
             (("buy", "bought"), ("purchase", "purchased")),
             (("clean", "cleaned"), ("wash", "washed")), (("carry", "carried"), ("haul", "hauled")),
             (("find", "found"), ("discover", "discovered")),
             (("inspect", "inspected"), ("examine", "examined"), ("check", "checked")),
             (("sell", "sold"),), (("paint", "painted"),), (("hide", "hid"),)],
    "num": [("two", "2"), ("three", "3"), ("four", "4"), ("five", "5"), ("six", "6"),
            ("seven", "7"), ("eight", "8"), ("twelve", "12")],
    "adj": [("big", "large"), ("small", "little"), ("old", "aged"), ("new", "brand-new"),
            ("broken", "damaged"), ("wooden",), ("red",), ("blue",)],
    "noun": [("boxes", "crates"), ("chairs", "seats"), ("bicycles", "bikes"), ("boats",),
             ("lamps", "lights"), ("tables",), ("cars", "automobiles"), ("windows",), ("baskets",)],
    "place": [("in the garage", "inside the garage"), ("at the market", "at the marketplace"),
              ("near the river", "by the river"), ("in the city centre", "downtown"),
              ("at the harbour", "at the port"), ("behind the school",), ("in the kitchen",),
              ("at the train station", "at the railway station")],
    "time": [("on Monday morning", "early on Monday"), ("last week", "the previous week"),
             ("at noon", "at midday"), ("on Friday evening", "on Friday night"),
             ("in the summer", "during the summer"), ("yesterday afternoon",),
             ("before dawn", "before sunrise"), ("in December",)],
}
PARTICIPLES = {"hide": "hidden"}  # where the participle is not the simple past
FILLERS = ("As it turned out, ", "In the end, ", "Interestingly, ")


def random_meaning(rng):
    """Pick one meaning per slot, plus whether the sentence is negated."""
    meaning = {slot: rng.randrange(len(values)) for slot, values in SLOTS.items()}
    meaning["neg"] = rng.random() < 0.2
    return meaning


def random_style(rng):
    """Pick a surface style: synonym choice per slot, voice, word order, filler."""
    style = {slot: rng.randrange(3) for slot in SLOTS}
    style["passive"] = rng.random() < 0.35
    style["contract"] = rng.random() < 0.5
    style["filler"] = rng.choice(FILLERS) if rng.random() < 0.25 else ""
    style["front_time"] = rng.random() < 0.3
    return style


def restyle(style, rng, rate):
    """Redraw each attribute of a style with probability `rate`."""
    fresh = random_style(rng)
    return {key: fresh[key] if rng.random() < rate else value for key, value in style.items()}


def render(meaning, style):
    """Turn a meaning into an English sentence written in the given style."""
    word = {slot: SLOTS[slot][meaning[slot]][style[slot] % len(SLOTS[slot][meaning[slot]])]
            for slot in SLOTS}
    base, past = word["verb"]
    thing = f"{word['num']} {word['adj']} {word['noun']}"
    if style["passive"]:
        aux = ("weren't " if style["contract"] else "were not ") if meaning["neg"] else "were "
        participle = PARTICIPLES.get(base, past)
        clause = f"{thing} {aux}{participle} by {word['subj']} {word['place']}"
    else:
        not_ = "didn't " if style["contract"] else "did not "
        action = not_ + base if meaning["neg"] else past
        clause = f"{word['subj']} {action} {thing} {word['place']}"
    if style["front_time"] and not style["filler"]:
        text = f"{word['time']}, {clause}"
    else:
        text = f"{style['filler']}{clause} {word['time']}"
    return text[0].upper() + text[1:] + "."


def change_slots(meaning, rng, count):
    """Return a copy of the meaning with `count` slots (negation included) changed."""
    changed = dict(meaning)
    for slot in rng.sample(list(SLOTS) + ["neg"], count):
        if slot == "neg":
            changed["neg"] = not meaning["neg"]
        else:
            changed[slot] = rng.choice([i for i in range(len(SLOTS[slot])) if i != meaning[slot]])
    return changed


def make_pair(rng, label):
    """Build one (text_a, text_b) pair whose relation matches the label."""
    meaning, style = random_meaning(rng), random_style(rng)
    kind = rng.random()
    if label == 1:
        other_meaning, other_style = meaning, restyle(style, rng, POSITIVE_RESTYLE)
    elif kind < HARD_RATE:
        other_meaning, other_style = change_slots(meaning, rng, 1), style
    elif kind < HARD_RATE + UNRELATED_RATE:
        other_meaning, other_style = random_meaning(rng), random_style(rng)
    else:
        other_meaning = change_slots(meaning, rng, 3)
        other_style = restyle(style, rng, NEGATIVE_RESTYLE)
    text_a, text_b = render(meaning, style), render(other_meaning, other_style)
    return (text_a, text_b) if text_a != text_b else None


def make_split(rng, size, seen):
    """Make `size` balanced, shuffled rows whose pairs are not yet in `seen`."""
    labels = [1] * (size // 2) + [0] * (size - size // 2)
    rng.shuffle(labels)
    rows = []
    for label in labels:
        pair = None
        while pair is None or frozenset(pair) in seen:
            pair = make_pair(rng, label)
        seen.add(frozenset(pair))
        rows.append((label,) + pair)
    return rows


def main():
    """Write train.csv and dev.csv (label,text_a,text_b) and test.csv (text_a,text_b)."""
    rng, seen = random.Random(SEED), set()
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, size in SIZES:
        rows = make_split(rng, size, seen)
        if name == "test":
            rows = [row[1:] for row in rows]
        path = os.path.join(OUT_DIR, f"{name}.csv")
        with open(path, "w", encoding="utf-8", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)
        print(f"wrote {len(rows)} rows to {path}")


if __name__ == "__main__":
    main()
