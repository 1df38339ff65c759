"""Google's processor contract: the how-to's processor, registration, example checks, and a
cache keyed by the examples a processor produced."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from modeling.tokenization import load_tokenizer
from processors import (PROCESSORS, DataProcessor, InputError, InputExample,
                        SentenceSimilarityProcessor, get_processor, load_processor_module,
                        split_examples, tokenization)
from processors.builders import BertFeatures
from processors.cache import load_features

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOWTO = os.path.join(ROOT, "tests", "google_howto_processor.py")


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, os.path.join(ROOT, "run_classifier.py"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def with_dummy_test_labels(data_dir):
    """The how-to's test.csv: train's layout, a dummy label in front."""
    path = os.path.join(data_dir, "test.csv")
    with open(path) as f:
        rows = f.read().splitlines()
    with open(path, "w") as f:
        f.write("".join(f"0,{row}\n" for row in rows))


def test_readme_shows_the_howto_processor_verbatim():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    block = re.search(r"```python\n(# selfsim_processor\.py.*?)```", readme, re.S).group(1)
    with open(HOWTO) as f:
        assert block == f.read()


def test_howto_processor_trains_evaluates_and_predicts_through_the_cli(
        tiny_bert, similarity_dir, tmp_path):
    with_dummy_test_labels(similarity_dir)
    out = tmp_path / "out"
    result = cli(f"--processor_module={HOWTO}", "--task_name=selfsim",
                 f"--data_dir={similarity_dir}", f"--output_dir={out}",
                 f"--init_checkpoint={tiny_bert}", "--do_train", "--do_eval", "--do_predict",
                 "--num_train_epochs=1", "--train_batch_size=16", "--precision=fp32")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (out / "model.safetensors").is_file() and (out / "eval_results.txt").is_file()
    assert len((out / "predictions.tsv").read_text().splitlines()) == 21
    entries = [n for n in os.listdir(out / "cache") if not n.endswith(".lock")]
    assert sorted(n.rsplit("_", 1)[0] for n in entries) == [
        "selfsim_dev", "selfsim_test", "selfsim_train"]


def test_dictionary_registration_sets_the_task_name(registry):
    load_processor_module(HOWTO)
    processor = get_processor("SelfSim")
    assert type(processor).__name__ == "SelfProcessor" and processor.task_name == "selfsim"
    PROCESSORS["pairs"] = SentenceSimilarityProcessor
    assert get_processor("pairs").task_name == "pairs"
    assert get_processor("sentence_similarity").task_name == "sentence_similarity"


class OwnFiles(DataProcessor):
    """Google's style: `_read_tsv` on files of its own names, a header skipped by hand."""

    def get_train_examples(self, data_dir):
        return self._create(self._read_tsv(os.path.join(data_dir, "my_train.txt")), "train")

    def get_dev_examples(self, data_dir):
        return self._create(self._read_tsv(os.path.join(data_dir, "my_dev.txt")), "dev")

    def get_labels(self):
        return ["neg", "pos"]

    def _create(self, lines, set_type):
        return [InputExample(f"{set_type}-{i}", tokenization.convert_to_unicode(line[1]),
                             None, line[0]) for i, line in enumerate(lines) if i > 0]


def test_google_style_processor_with_read_tsv(tmp_path, tiny_bert):
    (tmp_path / "my_train.txt").write_bytes(
        "\ufefflabel\ttext\r\npos\tthe dog runs\r\nneg\ta cat\r\n".encode())
    examples = list(split_examples(OwnFiles(), str(tmp_path), "train"))
    assert examples == [InputExample("train-1", "the dog runs", None, "pos"),
                        InputExample("train-2", "a cat", None, "neg")]
    (tmp_path / "my_dev.txt").write_text("label\ttext\nmaybe\tthe dog\n")
    with pytest.raises(InputError, match=r"^OwnFiles.get_dev_examples: example 1 \(guid "
                                         r"'dev-1'\): unknown label 'maybe'; expected one of "
                                         r"neg, pos$"):
        list(split_examples(OwnFiles(), str(tmp_path), "dev"))
    (tmp_path / "my_dev.txt").write_text("label\ttext\n\npos\tthe dog\n")
    with pytest.raises(InputError, match=r"my_dev\.txt:2: blank line$"):
        list(split_examples(OwnFiles(), str(tmp_path), "dev"))


@pytest.mark.parametrize("examples, message", [
    ([("a", None, "pos")], r"example 1 \(guid None\): expected an InputExample, got tuple"),
    ([InputExample("x", "  ", None, "pos")], r"example 1 \(guid 'x'\): empty text"),
    ([InputExample("x", "a", 3, "pos")], r"example 1 \(guid 'x'\): text_b is int, not text"),
    ([InputExample("x", "a", None, None)], r"example 1 \(guid 'x'\): no label"),
    ([], r"no examples"),
    (None, r"returned NoneType, not a list of InputExamples"),
])
def test_every_example_is_checked_however_it_was_made(examples, message):
    class Made(DataProcessor):
        def get_train_examples(self, data_dir):
            return examples

        def get_labels(self):
            return ["neg", "pos"]

    with pytest.raises(InputError, match=r"^Made.get_train_examples: " + message):
        list(split_examples(Made(), "d", "train"))


def test_test_labels_are_ignored():
    class Dummy(DataProcessor):
        def get_test_examples(self, data_dir):
            return [InputExample("t", "a", None, "dummy")]

        def get_labels(self):
            return ["neg", "pos"]

    assert list(split_examples(Dummy(), "d", "test")) == [InputExample("t", "a")]


def test_a_class_with_nothing_to_read_is_one_line(registry, tmp_path):
    class Nothing(DataProcessor):
        def get_labels(self):
            return ["a", "b"]

    PROCESSORS["nothing"] = Nothing
    with pytest.raises(InputError, match=r"^Nothing \(--task_name=nothing\) implements neither "
                                         r"get_dev_examples\(data_dir\) nor parse_row"):
        list(split_examples(get_processor("nothing"), str(tmp_path), "dev"))

    class NoLabels(DataProcessor):
        pass

    PROCESSORS["nolabels"] = NoLabels
    with pytest.raises(InputError, match=r"^--task_name=nolabels: NoLabels does not implement "
                                         r"get_labels$"):
        get_processor("nolabels")


BROKEN = '''
from processors import PROCESSORS, DataProcessor, InputExample


class Broken(DataProcessor):
    def get_train_examples(self, data_dir):
        return [InputExample("train-0", "the dog", None, "a")]

    def get_dev_examples(self, data_dir):
        lines = [["a"]]
        return [InputExample("dev-0", line[1], None, line[0]) for line in lines]

    def get_labels(self):
        return ["a", "b"]


PROCESSORS["broken"] = Broken
'''


def test_an_exception_in_the_users_code_is_one_line_naming_its_line(
        tiny_bert, similarity_dir, tmp_path):
    module = tmp_path / "broken.py"
    module.write_text(BROKEN)
    out = tmp_path / "out"
    result = cli(f"--processor_module={module}", "--task_name=broken",
                 f"--data_dir={similarity_dir}", f"--output_dir={out}",
                 f"--init_checkpoint={tiny_bert}", "--do_train", "--do_eval")
    assert result.returncode == 2
    assert result.stderr == (f"run_classifier: error: Broken.get_dev_examples: IndexError: list "
                             f"index out of range (at {module}:11)\n")
    assert not out.exists()


@pytest.fixture
def env(tiny_bert, tmp_path, feature_builds):
    builds = feature_builds
    vocab = os.path.join(tiny_bert, "vocab.txt")
    args = dict(split="train", builder=BertFeatures(load_tokenizer(vocab, True)), vocab_file=vocab,
                do_lower_case=True, max_seq_length=32, cache_dir=str(tmp_path / "cache"))
    return builds, args


def test_a_changed_parse_row_rebuilds_the_cache(env, similarity_dir):
    builds, args = env

    class Flipped(SentenceSimilarityProcessor):
        def parse_row(self, row, split):
            return row[1], row[2], "1" if row[0] == "0" else "0"

    plain = load_features(SentenceSimilarityProcessor(), similarity_dir, **args)
    flipped = load_features(Flipped(), similarity_dir, **args)
    assert len(builds) == 2
    assert (flipped.labels == 1 - plain.labels).all()


def test_rows_appended_to_a_file_only_an_override_reads_rebuild_the_cache(env, tmp_path):
    builds, args = env

    class Override(SentenceSimilarityProcessor):
        def get_train_examples(self, data_dir):
            return self._create(self._read_csv(os.path.join(data_dir, "pairs.csv")))

        def _create(self, lines):
            return [InputExample(f"train-{i}", a, b, label) for i, (label, a, b) in
                    enumerate(lines)]

    data = tmp_path / "data"
    data.mkdir()
    (data / "pairs.csv").write_text('1,"the dog","the dog"\n')
    assert len(load_features(Override(), str(data), **args)) == 1
    with open(data / "pairs.csv", "a") as f:
        f.write('0,"a cat","the dog"\n')
    assert len(load_features(Override(), str(data), **args)) == 2
    assert len(builds) == 2


def test_three_column_test_csv_predicts_as_two_column(tiny_bert, similarity_dir, tmp_path):
    args = [f"--data_dir={similarity_dir}", f"--init_checkpoint={tiny_bert}",
            "--task_name=sentence_similarity", "--do_predict", "--precision=fp32"]
    two = cli(*args, f"--output_dir={tmp_path / 'two'}")
    labelled = tmp_path / "labelled"
    shutil.copytree(similarity_dir, labelled)
    with_dummy_test_labels(str(labelled))
    args[0] = f"--data_dir={labelled}"
    three = cli(*args, f"--output_dir={tmp_path / 'three'}")
    assert two.returncode == three.returncode == 0, two.stderr[-1000:] + three.stderr[-1000:]
    for name in ("test_results.tsv", "predictions.tsv"):
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "three" / name).read_bytes()


def test_a_long_streamed_split_is_read_again_instead_of_kept(similarity_dir, monkeypatch):
    from processors import splits as examples_module
    reads = []
    real = SentenceSimilarityProcessor.iter_examples

    def counting(self, data_dir, split):
        reads.append(split)
        return real(self, data_dir, split)

    monkeypatch.setattr(SentenceSimilarityProcessor, "iter_examples", counting)
    processor = SentenceSimilarityProcessor()
    kept = examples_module.SplitExamples(processor, similarity_dir, "train")
    streamed = examples_module.SplitExamples(processor, similarity_dir, "train", keep=10)
    assert reads == ["train", "train"]
    assert list(kept) == list(streamed) and len(list(kept)) == kept.count == 64
    assert reads == ["train", "train", "train"]  # only the long one was read again
    assert kept.digest == streamed.digest


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_list_processors_digest_and_first_pair_are_those_of_its_examples(split):
    """The checks hand their columns to the digest and the pair search (a Chunk): the same
    digest as hashing the examples themselves, chunk by chunk, mixed chunks included."""
    from processors.digest import CHUNK, ExamplesDigest
    from processors.splits import SplitExamples
    made = [InputExample(f"g{i}", f"text {i}", f"second {i}" if i == CHUNK + 7 else None,
                         "pos" if i % 3 else "neg") for i in range(2 * CHUNK + 5)]

    class Own(InputExample):
        pass

    made[5] = Own("own", "text", None, "pos")  # (its chunk is checked one by one)

    class Listed(DataProcessor):
        def get_train_examples(self, data_dir):
            return made

        def get_test_examples(self, data_dir):
            return made

        def get_labels(self):
            return ["neg", "pos"]

    expected = ExamplesDigest()
    expected.update([e if split == "train" else InputExample(e.guid, e.text_a, e.text_b)
                     for e in made])
    examples = SplitExamples(Listed(), "d", split)
    assert (examples.digest, examples.count) == (expected.hexdigest(), len(made))
    assert examples.first_pair == InputExample(f"g{CHUNK + 7}", f"text {CHUNK + 7}",
                                               f"second {CHUNK + 7}",
                                               None if split == "test" else "pos")
