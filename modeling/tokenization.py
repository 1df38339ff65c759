"""The fast WordPiece tokenizer, built from a checkpoint's vocab.txt (BERT); other families
bring their own (`families.load_tokenizer`)."""

import os
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from transformers import BertTokenizer


def load_vocab(vocab_file: str) -> dict[str, int]:
    """Reads vocab.txt (one token per line, id = line index), as Google's load_vocab."""
    try:
        with open(vocab_file, encoding="utf-8") as f:
            tokens = [line.rstrip("\r\n").strip() for line in f]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--vocab_file={vocab_file}: cannot read: {e}") from None
    while tokens and not tokens[-1]:
        tokens.pop()
    if not tokens:
        raise InputError(f"--vocab_file={vocab_file}: empty vocab")
    vocab = {}
    for i, token in enumerate(tokens):
        vocab.setdefault(token, i)
    missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
    if missing:
        raise InputError(f"--vocab_file={vocab_file}: missing special tokens {' '.join(missing)}")
    return vocab


def load_tokenizer(vocab_file: str, do_lower_case: bool) -> "BertTokenizer":
    """A fast (Rust) BERT tokenizer; lower-casing also strips accents, as in Google's.

    `split_special_tokens`: a literal "[SEP]" in user text is text, as in Google's
    tokenizer, never a real separator that would shift the segment ids.
    """
    from transformers import BertTokenizer  # here: load_vocab serves the quick flag checks
    return BertTokenizer(vocab=load_vocab(vocab_file), do_lower_case=do_lower_case,
                         split_special_tokens=True)


def source_tokenizer(source, do_lower_case: bool):
    """A model source's tokenizer: BERT's from vocab.txt, another family's its own."""
    if source.family != "bert":
        from .families import load_tokenizer as family_tokenizer
        return family_tokenizer(os.path.dirname(source.config_file))
    return load_tokenizer(source.vocab_file, do_lower_case)
