"""Our WordPiece tokenizer against transformers' own `BertTokenizer(split_special_tokens=True)`:
the same Rust pipeline, ids, tokens and saved bytes, and no transformers (or torch) import."""

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VOCAB
from modeling.model import default_model_dir
from modeling.tokenization import WordPieceTokenizer, load_tokenizer, load_vocab

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Café naïve résumé Ångström façade CAFÉ",
    "e\u0301 a\u0308 \u00c5 \ufb01ne",  # combining marks, a ligature
    "北京欢迎你 日本語のテキスト 한국어 文字abc字",
    "tab\there\nnew\rline\x00nul\x07bell\u200bzero\ufeffbom\u00adsoft",
    "the [SEP] dog [CLS] a [PAD] cat [MASK] [UNK] [sep]",
    "[SEP]", "[CLS][SEP]",
    "a" * 150, "w1" * 60, "dog " + "antidisestablishmentarianism" * 5 + " cat",
    "", " ", "\t\n",
    "xyzzy qwghlm ☃ 🤖 \U0001f600",
    "The DOG Runs QUICKLY and Eats", "MiXeD CaSe WoRdS",
    "don't stop!!! ... (yes) -- \"quoted\" it's 3.14, 1,000 $5",
]
PAIRS = list(zip(CORPUS, reversed(CORPUS)))


def write_vocab(path, tokens) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def vocabs(tiny_bert, tmp_path_factory) -> dict:
    """The embedded default vocab, the tests' tiny one, and a tiny one without [MASK]
    (which the tokenizer then adds with a new id)."""
    folder = tmp_path_factory.mktemp("vocabs")
    return {"default": os.path.join(default_model_dir(), "vocab.txt"),
            "tiny": os.path.join(tiny_bert, "vocab.txt"),
            "no_mask": write_vocab(folder / "vocab.txt", [t for t in VOCAB if t != "[MASK]"])}


CASES = [(kind, lower) for kind in ("default", "tiny", "no_mask") for lower in (True, False)]


@pytest.fixture(scope="module")
def built(vocabs):
    """(ours, transformers') per (vocab, casing), built once."""
    from transformers import BertTokenizer
    cache = {}

    def get(kind, lower):
        if (kind, lower) not in cache:
            path = vocabs[kind]
            cache[kind, lower] = (load_tokenizer(path, lower), BertTokenizer(
                vocab=load_vocab(path), do_lower_case=lower, split_special_tokens=True))
        return cache[kind, lower]
    return get


def encodings(backend, inputs, special: bool) -> list:
    return [(e.ids, e.type_ids, e.tokens, e.attention_mask, e.offsets)
            for e in backend.encode_batch(inputs, add_special_tokens=special)]


@pytest.mark.parametrize("kind,lower", CASES)
def test_the_backend_is_transformers_own(built, kind, lower):
    ours, theirs = built(kind, lower)
    assert isinstance(ours, WordPieceTokenizer)
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
    assert ours.backend_tokenizer.encode_special_tokens is True
    for name in ("cls_token_id", "sep_token_id", "pad_token_id", "unk_token_id",
                 "mask_token_id", "model_max_length", "model_input_names", "do_lower_case"):
        assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize("kind,lower", CASES)
def test_encodings_match_transformers(built, kind, lower):
    ours, theirs = built(kind, lower)
    for special in (True, False):
        for inputs in (CORPUS, PAIRS):
            assert (encodings(ours.backend_tokenizer, inputs, special)
                    == encodings(theirs.backend_tokenizer, inputs, special))
        assert ours(CORPUS, add_special_tokens=special) == dict(
            theirs(CORPUS, add_special_tokens=special))
        for text in CORPUS:
            assert ours(text, add_special_tokens=special) == dict(
                theirs(text, add_special_tokens=special))


def test_special_token_strings_in_text_are_text(built):
    """A literal "[SEP]" is split as any bracketed word, never the separator's id."""
    ours, _ = built("default", True)
    ids = ours("[SEP] x [CLS]")["input_ids"]
    assert ids[1:-1] == ours("[ sep ] x [ cls ]", add_special_tokens=False)["input_ids"]
    assert ids[0] == ours.cls_token_id and ids[-1] == ours.sep_token_id
    assert not {ours.cls_token_id, ours.sep_token_id} & set(ids[1:-1])


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=80), pair=st.none() | st.text(max_size=40))
def test_random_texts_match_transformers(built, text, pair):
    for lower in (True, False):
        ours, theirs = built("tiny", lower)
        inputs = [text if pair is None else (text, pair)]
        assert (encodings(ours.backend_tokenizer, inputs, True)
                == encodings(theirs.backend_tokenizer, inputs, True))


@pytest.mark.parametrize("kind,lower", CASES)
def test_ids_to_tokens_match_transformers(built, kind, lower):
    import numpy as np
    ours, theirs = built(kind, lower)
    ids = list(range(ours.backend_tokenizer.get_vocab_size()))
    assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
    row = ours(CORPUS[5])["input_ids"]
    assert ours.convert_ids_to_tokens(np.array(row)) == theirs.convert_ids_to_tokens(row)


def saved(tokenizer, folder) -> tuple[list[str], dict]:
    """The paths save_pretrained returns (as names) and the files' bytes."""
    paths = tokenizer.save_pretrained(str(folder))
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    return [os.path.relpath(p, folder) for p in paths], files


@pytest.mark.parametrize("kind,lower", CASES)
@pytest.mark.parametrize("max_length", [None, 128])
def test_saved_files_are_transformers_bytes(built, kind, lower, max_length, tmp_path):
    ours, theirs = built(kind, lower)
    if max_length is not None:
        ours.model_max_length = theirs.model_max_length = max_length
    try:
        our_paths, our_files = saved(ours, tmp_path / "ours")
        their_paths, their_files = saved(theirs, tmp_path / "theirs")
    finally:
        ours.model_max_length = theirs.model_max_length = int(1e30)
    assert our_paths == their_paths == ["tokenizer_config.json", "tokenizer.json"]
    assert our_files == their_files


@pytest.mark.parametrize("kind,lower", [("default", True), ("tiny", False), ("no_mask", True)])
def test_transformers_loads_our_saved_folder(built, kind, lower, tmp_path):
    from transformers import AutoTokenizer
    ours, _ = built(kind, lower)
    ours.model_max_length = 128
    try:
        ours.save_pretrained(str(tmp_path))
    finally:
        ours.model_max_length = int(1e30)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(loaded).__name__ == "BertTokenizer" and loaded.model_max_length == 128
    assert loaded.do_lower_case == lower and loaded.split_special_tokens
    for special in (True, False):
        assert ours(CORPUS, add_special_tokens=special) == dict(
            loaded(CORPUS, add_special_tokens=special))
        assert (encodings(ours.backend_tokenizer, PAIRS, special)
                == encodings(loaded.backend_tokenizer, PAIRS, special))


def test_loading_and_saving_import_neither_transformers_nor_torch(vocabs, tmp_path):
    code = ("import sys\n"
            "from modeling.tokenization import load_tokenizer\n"
            "tokenizer = load_tokenizer(sys.argv[1], True)\n"
            "tokenizer(['the dog [SEP] runs'])\n"
            "tokenizer.save_pretrained(sys.argv[2])\n"
            "print(sorted(m for m in ('transformers', 'torch') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code, vocabs["default"], str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    assert sorted(os.listdir(tmp_path)) == ["tokenizer.json", "tokenizer_config.json"]
