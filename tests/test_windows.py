"""--long_text=windows: the window layout, document offsets, pooling order, the cache, checks."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import run_classifier
from conftest import VOCAB, WORDS
from modeling.tokenization import load_tokenizer
from processors import InputError, InputExample
from processors import cache as cache_module
from processors.cache import FeatureSet, load_features
from processors.cache_keys import cache_key_parts
from processors.examples import chunks
from processors.builders import BertFeatures
from processors.features import FeatureArrays, feature_arrays
from processors.registry import get_processor
from processors.windows import Windows, document_labels, pool_windows, window_arrays, window_spans
from training import evaluation
from training.model_checks import check_long_text, check_windows_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLS, SEP = "[CLS]", "[SEP]"


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return load_tokenizer(os.path.join(tiny_bert, "vocab.txt"), True)


def numbered(n: int, first: int = 0) -> str:
    """`w<first> ... w<first+n-1>`: one vocab token per word, so token i is word i."""
    return " ".join(f"w{i}" for i in range(first, first + n))


def rows(arrays: FeatureArrays) -> list[tuple[list[str], list[int]]]:
    """Each window's tokens and segment ids."""
    return [([VOCAB[i] for i in row.input_ids], row.segment_ids.tolist())
            for row in arrays.rows()]


def words(first: int, last: int) -> list[str]:
    return [f"w{i}" for i in range(first, last)]


def test_single_text_windows_start_every_stride_and_the_last_ends_at_the_end(tokenizer):
    # max_seq_length 8: room for 6 tokens; 15 tokens, stride 4 -> starts 0, 4, 8 (8+6 < 15), 12
    arrays = window_arrays([InputExample("d0", numbered(15), None, "1")], ["0", "1"], 8,
                           tokenizer, 4)
    assert rows(arrays) == [([CLS, *words(0, 6), SEP], [0] * 8),
                            ([CLS, *words(4, 10), SEP], [0] * 8),
                            ([CLS, *words(8, 14), SEP], [0] * 8),
                            ([CLS, *words(12, 15), SEP], [0] * 5)]
    assert arrays.windows.tolist() == [4] and arrays.label_ids.tolist() == [1] * 4
    assert arrays.doc_lengths.tolist() == [17]


def test_pair_keeps_text_b_whole_in_every_window(tokenizer):
    # max_seq_length 10, text_b 3 tokens: room for 4 of text_a; 9 tokens, stride 3 -> 0, 3, 6
    example = InputExample("d0", numbered(9), numbered(3, 50), "0")
    arrays = window_arrays([example], ["0", "1"], 10, tokenizer, 3)
    b = [*words(50, 53), SEP]
    assert rows(arrays) == [([CLS, *words(0, 4), SEP, *b], [0] * 6 + [1] * 4),
                            ([CLS, *words(3, 7), SEP, *b], [0] * 6 + [1] * 4),
                            ([CLS, *words(6, 9), SEP, *b], [0] * 5 + [1] * 4)]
    assert arrays.doc_lengths.tolist() == [9 + 3 + 3]


def test_a_stride_past_a_rows_room_is_the_room_no_token_skipped(tokenizer):
    example = InputExample("d0", numbered(9), numbered(5, 50), "0")  # room 10 - 3 - 5 = 2
    arrays = window_arrays([example], ["0", "1"], 10, tokenizer, 6)
    assert [t[1:3] for t, _ in rows(arrays)] == [words(i, i + 2) for i in range(0, 9, 2)][:4] \
        + [["w8", SEP]]


def test_window_spans_exact_offsets_and_document_offsets():
    document, start, length, count = window_spans(np.array([5, 300, 126, 127, 1]),
                                                  np.array([126, 126, 126, 126, 1]), 64)
    assert document.tolist() == [0, 1, 1, 1, 1, 2, 3, 3, 4]
    assert start.tolist() == [0, 0, 64, 128, 192, 0, 0, 64, 0]
    assert length.tolist() == [5, 126, 126, 126, 108, 126, 126, 63, 1]
    assert count.tolist() == [1, 4, 1, 2, 1]
    assert (start + length)[[0, 4, 5, 7, 8]].tolist() == [5, 300, 126, 127, 1]  # last = end
    dataset = FeatureSet.from_arrays(FeatureArrays(np.zeros(9, np.int32), np.zeros(9, np.int8),
                                                   np.ones(9, np.int64), windows=count))
    assert dataset.doc_offsets.tolist() == [0, 1, 5, 6, 8, 9] and len(dataset) == 9


def test_a_document_that_fits_one_window_has_truncations_features(tokenizer):
    examples = [InputExample("a", "the dog runs .", None, "1"),
                InputExample("b", "a cat sleeps", "the bird sings", "0"),
                InputExample("c", numbered(30), None, "1")]  # 32 tokens with [CLS], [SEP]
    windowed = window_arrays(examples, ["0", "1"], 32, tokenizer, 5)
    truncated = feature_arrays(examples, ["0", "1"], 32, tokenizer)
    assert windowed.windows.tolist() == [1, 1, 1] and truncated.windows is None
    assert truncated.doc_lengths is None
    for name in ("input_ids", "segment_ids", "lengths", "label_ids"):
        array, window = getattr(truncated, name), getattr(windowed, name)
        assert window.dtype == array.dtype and window.tolist() == array.tolist(), name


def test_text_b_that_leaves_no_room_names_the_row(tokenizer):
    examples = [InputExample("train-0", "a b", "c", "0"),
                InputExample("train-1", "the dog", numbered(7), "0")]
    with pytest.raises(InputError, match=r"example train-1: text_b has 7 tokens, too long "
                                         r"for --max_seq_length=10 with --long_text=windows"):
        window_arrays(examples, ["0", "1"], 10, tokenizer, 2)


def test_pooling_keeps_documents_in_order():
    logits = np.array([[1, 0], [3, 4], [5, 2], [0, 9], [7, 7]], np.float32)
    offsets = np.array([0, 1, 3, 5])
    np.testing.assert_allclose(pool_windows(logits, offsets, "mean"),
                               [[1, 0], [4, 3], [3.5, 8]])
    np.testing.assert_allclose(pool_windows(logits, offsets, "max"), [[1, 0], [5, 4], [7, 9]])
    assert pool_windows(logits, None, "mean") is logits


def fake_logits(model, input_ids, attention_mask, token_type_ids):
    """A window's 'logits': its first text token, and its length (exactly known)."""
    return torch.stack([input_ids[:, 1].float(), attention_mask.sum(1).float()], 1)


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_predictions_are_one_row_per_document_in_input_order(tokenizer, monkeypatch, pooling):
    # Length-sorted batches of 2 shuffle the windows; the result must not depend on it.
    examples = [InputExample(str(i), numbered(n, i), None, str(i % 2))
                for i, n in enumerate([3, 20, 7, 14, 1, 9])]
    arrays = window_arrays(examples, ["0", "1"], 8, tokenizer, 4)
    dataset = FeatureSet.from_arrays(arrays, pooling)
    monkeypatch.setattr(evaluation, "classifier_logits", fake_logits)
    logits = evaluation.predict_logits(torch.nn.Linear(1, 1), dataset, 2, torch.device("cpu"),
                                       "fp32")
    expected = []
    for i, example in enumerate(examples):
        single = window_arrays([example], None, 8, tokenizer, 4)
        firsts = [tokenizer.backend_tokenizer.token_to_id(t[1]) for t, _ in rows(single)]
        windows = np.array([firsts, single.lengths.tolist()], np.float32).T
        expected.append(windows.mean(0) if pooling == "mean" else windows.max(0))
    np.testing.assert_allclose(logits, np.array(expected))
    assert document_labels(dataset).tolist() == [0, 1, 0, 1, 0, 1]


def write_generic(folder, n: int = 10) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "train.csv"), "w") as f:
        f.write("text,label\n" + "".join(f"{numbered(3 + 5 * i, i)},{'ab'[i % 2]}\n"
                                         for i in range(n)))
    return str(folder)


def test_cache_stores_document_offsets_across_chunks(tokenizer, tiny_bert, tmp_path,
                                                     monkeypatch):
    data = write_generic(tmp_path / "data")
    args = dict(data_dir=data, split="train", builder=BertFeatures(tokenizer),
                vocab_file=os.path.join(tiny_bert, "vocab.txt"), do_lower_case=True,
                max_seq_length=12, cache_dir=str(tmp_path / "cache"))
    monkeypatch.setattr(cache_module, "chunks", lambda examples: chunks(examples, 3))
    windows, processor = Windows(4, "max"), get_processor("generic", data)
    built = load_features(processor, windows=windows, **args)
    loaded = load_features(processor, windows=windows, **args)  # from the cache
    examples = list(processor.get_train_examples(data))
    expected = FeatureSet.from_arrays(window_arrays(examples, ["a", "b"], 12, tokenizer, 4))
    for features in (built, loaded):
        assert features.pooling == "max"
        assert features.doc_offsets.tolist() == expected.doc_offsets.tolist()
        assert features.doc_lengths.tolist() == expected.doc_lengths.tolist()
        assert features.offsets.tolist() == expected.offsets.tolist()
        assert features.labels.tolist() == expected.labels.tolist()
        assert torch.equal(features.input_ids, expected.input_ids)
    truncated = load_features(processor, **args)
    other_stride = load_features(processor, windows=Windows(3), **args)
    assert truncated.doc_offsets is None and len(truncated) == 10
    assert len(other_stride) > len(built) > len(truncated)
    entries = [n for n in os.listdir(args["cache_dir"]) if not n.startswith("examples_")]
    assert len(entries) == 3 * 2  # three entries, each with its lock (and one examples record)


def test_truncated_features_keep_their_cache_key(tiny_bert):
    vocab = os.path.join(tiny_bert, "vocab.txt")
    truncated = cache_key_parts("e" * 64, ["a"], vocab, True, 128)
    assert set(truncated) == {"examples_sha256", "label_list", "vocab_sha256", "do_lower_case",
                              "max_seq_length", "features_version"}
    assert cache_key_parts("e" * 64, ["a"], vocab, True, 128, Windows(64)) == {
        **truncated, "long_text": "windows", "doc_stride": 64}


@pytest.mark.parametrize("values, message", [
    (dict(doc_stride=8), "--doc_stride=8: needs --long_text=windows"),
    (dict(window_pooling="max"), "--window_pooling=max: needs --long_text=windows"),
    (dict(long_text="windows", doc_stride=0), "--doc_stride=0: must be in [1, 14]"),
    (dict(long_text="windows", doc_stride=15), "--doc_stride=15: must be in [1, 14]"),
])
def test_long_text_flag_checks(values, message):
    f = SimpleNamespace(**{**dict(long_text="truncate", doc_stride=None, window_pooling=None,
                                  max_seq_length=16), **values})
    with pytest.raises(InputError) as e:
        check_long_text(f.long_text, f.max_seq_length, f.doc_stride, f.window_pooling)
    assert str(e.value).startswith(message)


def test_window_settings_and_defaults():
    s = SimpleNamespace(long_text="windows", doc_stride=None, window_pooling=None,
                        max_seq_length=128)
    assert run_classifier.windows(s) == Windows(63, "mean")
    assert run_classifier.windows(SimpleNamespace(**{**vars(s), "window_pooling": "max",
                                                     "doc_stride": 10})) == Windows(10, "max")
    assert run_classifier.windows(SimpleNamespace(**{**vars(s), "long_text": "truncate"})) is None
    check_long_text(s.long_text, s.max_seq_length, s.doc_stride, s.window_pooling)


def test_windows_need_bert_and_the_pytorch_predict():
    bert = SimpleNamespace(family="bert", config_file="/m/config.json")
    check_windows_model(bert, "windows", "torch")
    check_windows_model(SimpleNamespace(family="roberta", config_file="/m/config.json"),
                        "truncate", "onnxruntime")
    with pytest.raises(InputError, match=r"^--predict_backend=onnxruntime: not with "
                                         r"--long_text=windows"):
        check_windows_model(bert, "windows", "onnxruntime")
    with pytest.raises(InputError, match=r"^--long_text=windows: BERT models only for now "
                                         r"\(/m has model_type electra\)$"):
        check_windows_model(SimpleNamespace(family="electra", config_file="/m/config.json"),
                            "windows", "torch")


def test_command_line_refuses_window_flags_without_windows(tmp_path):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "run_classifier.py"),
                             "--task_name=generic", f"--data_dir={tmp_path}",
                             f"--output_dir={tmp_path / 'out'}", "--do_train",
                             "--doc_stride=32"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and not os.path.exists(tmp_path / "out")
    assert result.stderr == "run_classifier: error: --doc_stride=32: needs --long_text=windows\n"


def test_words_are_single_tokens(tokenizer):
    """The tests above count on `w<i>` and WORDS being one token each."""
    ids = tokenizer(numbered(100) + " " + " ".join(WORDS), add_special_tokens=False)["input_ids"]
    assert len(ids) == 100 + len(WORDS)
