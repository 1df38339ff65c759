"""Shared fixtures: a tiny random BERT on disk, small task data, GLUE_DIR access."""

import os
import random
import signal
import sys
import tempfile
import time

import pytest
import torch
from transformers import BertConfig, BertModel

# Inductor's caches (--compile) for the tests and their subprocesses: not the user's own.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
    tempfile.gettempdir(), f"bert-classifier-tests-inductor-{os.getuid()}")

WORDS = ("the a an this that dog cat bird man woman child car house tree river city "
         "runs walks sees likes eats sleeps reads writes big small red green old new happy "
         "sad quickly slowly very not and or but in on under over with without is was are "
         "were has had will can should would could near far up down yes no good bad").split()

# Deliberately a few non-ASCII and punctuation tokens, for tokenizer edge cases.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(".,!?'\"-") + WORDS + [
    "##s", "##ed", "##ing", "##ly", "##er", "caf", "##e", "##é"] + [f"w{i}" for i in range(100)]


def write_tiny_bert(path, seed: int = 0, do_lower_case: bool = True, type_vocab_size: int = 2
                    ) -> str:
    """Writes a random 2-layer, hidden-32 BERT model dir with vocab.txt; returns its path."""
    os.makedirs(path, exist_ok=True)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        type_vocab_size=type_vocab_size)
    BertModel(config).save_pretrained(path)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        f.write('{"do_lower_case": %s}\n' % ("true" if do_lower_case else "false"))
    return str(path)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> str:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def _trained_vocab(kind: str, specials: list[str], unk: str):
    """A WordPiece {token: id} or a Unigram [(piece, score)] vocab, trained offline with the
    `tokenizers` library on the project's sample sentences."""
    import json
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tiny_families import sample_texts
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token=unk)
    tok.train_from_iterator(sample_texts(), trainer)
    if kind == "wordpiece":
        return tok.get_vocab()
    return [(piece, score) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]


MORE_ENCODERS = ("big_bird", "mpnet", "albert")  # beyond tiny_families' FAMILIES


def write_tiny_encoder(name: str, path, seed: int = 0) -> str:
    """Writes a random 2-layer, hidden-32 BigBird, MPNet or ALBERT model dir (cased tokenizer
    of the family's own transformers class, its vocab trained offline); returns its path."""
    import transformers as t
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64)
    if name == "big_bird":  # SentencePiece Unigram; block-sparse attention, tiny blocks
        tokenizer = t.BigBirdTokenizer(vocab=_trained_vocab(
            "unigram", ["<pad>", "<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>"))
        config = t.BigBirdConfig(**sizes, max_position_embeddings=128, block_size=4,
                                 num_random_blocks=2, pad_token_id=0, bos_token_id=1,
                                 eos_token_id=2, sep_token_id=tokenizer.sep_token_id)
    elif name == "mpnet":  # WordPiece; positions start after the pad id, as RoBERTa's
        tokenizer = t.MPNetTokenizer(vocab=_trained_vocab(
            "wordpiece", ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], "[UNK]"),
            do_lower_case=False)
        config = t.MPNetConfig(**sizes, max_position_embeddings=130, pad_token_id=1,
                               bos_token_id=0, eos_token_id=2)
    elif name == "albert":  # SentencePiece Unigram; factorized embeddings, shared layers
        tokenizer = t.AlbertTokenizer(vocab=_trained_vocab(
            "unigram", ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"], "<unk>"),
            do_lower_case=False)
        config = t.AlbertConfig(**sizes, embedding_size=16, max_position_embeddings=128,
                                pad_token_id=0, bos_token_id=2, eos_token_id=3)
    else:
        raise ValueError(name)
    os.makedirs(path, exist_ok=True)
    config.vocab_size = len(tokenizer)
    torch.manual_seed(seed)
    t.AutoModel.from_config(config).save_pretrained(path)
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(path)
    return str(path)


def make_sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_similarity_data(data_dir, n_train: int = 64, n_dev: int = 24, n_test: int = 20,
                          seed: int = 0) -> str:
    """sentence_similarity files: label 1 when text_b repeats text_a, else 0 (learnable)."""
    rng = random.Random(seed)
    os.makedirs(data_dir, exist_ok=True)

    def pair():
        a = make_sentence(rng, rng.randint(3, 12))
        same = rng.random() < 0.5
        return ("1" if same else "0"), a, a if same else make_sentence(rng, rng.randint(3, 12))

    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        with open(os.path.join(data_dir, f"{split}.csv"), "w") as f:
            for _ in range(n):
                label, a, b = pair()
                f.write(f'"{a}","{b}"\n' if split == "test" else f'{label},"{a}","{b}"\n')
    return str(data_dir)


@pytest.fixture
def similarity_dir(tmp_path) -> str:
    return write_similarity_data(tmp_path / "data")


def glue_dir(task_dir: str) -> str:
    """A GLUE task dir from $GLUE_DIR; skips outside CI when absent, fails in CI."""
    root = os.environ.get("GLUE_DIR")
    path = os.path.join(root, task_dir) if root else None
    if path and os.path.isdir(path):
        return path
    if os.environ.get("CI"):
        pytest.fail(f"GLUE_DIR must point at the GLUE data in CI (missing {task_dir})")
    pytest.skip("GLUE_DIR not set (real-data test)")


def write_keyword_data(data_dir, n_train: int = 128, n_dev: int = 48, n_test: int = 20,
                       seed: int = 0) -> str:
    """`generic` CSV files (`text,label`): pos when the text holds "good", neg when "bad"; the
    tiny BERT learns it in two epochs at a learning rate of 1e-2, and not at 1e-4."""
    rng = random.Random(seed)
    os.makedirs(data_dir, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        with open(os.path.join(data_dir, f"{split}.csv"), "w") as f:
            f.write("text,label\n")
            for _ in range(n):
                pos = rng.random() < 0.5
                words = [rng.choice(WORDS[:18]) for _ in range(rng.randint(3, 8))]
                words.insert(rng.randrange(len(words) + 1), "good" if pos else "bad")
                f.write(f"{' '.join(words)},{'pos' if pos else 'neg'}\n")
    return str(data_dir)


@pytest.fixture
def registry():
    """Restores the registry (and drops the user modules) after a test."""
    from processors import PROCESSORS
    saved = dict(PROCESSORS)
    yield PROCESSORS
    PROCESSORS.clear()
    PROCESSORS.update(saved)
    for name in [n for n in sys.modules if n.startswith(("user_processors_", "tmp_procs_"))]:
        del sys.modules[name]


@pytest.fixture
def feature_builds(monkeypatch) -> list:
    """The arguments of every features build (a chunk's `feature_arrays` call, BERT's
    builder) from now on."""
    from processors import builders
    builds, real = [], builders.feature_arrays

    def counting(*args):
        builds.append(args)
        return real(*args)

    monkeypatch.setattr(builders, "feature_arrays", counting)
    return builds


def kill_after_checkpoint(proc, folder: str, seconds: float = 120) -> int:
    """SIGKILLs a running command as soon as `folder` holds a checkpoint; its exit code."""
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        if os.path.isdir(folder) and any(n.startswith("checkpoint-") for n in os.listdir(folder)):
            break
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    return proc.wait()
