"""The fast WordPiece tokenizer, built from a checkpoint's vocab.txt (BERT); other families
bring their own (`families.load_tokenizer`).

`WordPieceTokenizer` wraps the `tokenizers` (Rust) pipeline that transformers'
`BertTokenizer` builds, built the same way, so that ids and saved files are transformers'
own, without importing transformers (or torch): its import alone costs every command
more than the tokenizer does.
"""

import json
import os
from typing import Union

from .errors import InputError

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}  # transformers' order
UNLIMITED_LENGTH = int(1e30)  # transformers' model_max_length where none is set


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


def bert_backend(vocab: dict[str, int], do_lower_case: bool):
    """The `tokenizers.Tokenizer` of transformers' `BertTokenizer(vocab=..., do_lower_case=...,
    split_special_tokens=True)`: the same pipeline, special tokens added in the same order
    with the same flags (a token missing from the vocab gets the same new id)."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers import processors
    from tokenizers.models import WordPiece
    backend = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=do_lower_case)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    # A literal "[SEP]" in user text is text, as in Google's tokenizer, never a real
    # separator that would shift the segment ids.
    backend.encode_special_tokens = True
    backend.add_tokens([AddedToken(t, special=True) for t in SPECIAL_TOKENS.values()])
    cls, sep = (backend.token_to_id(t) for t in ("[CLS]", "[SEP]"))
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0", pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return backend


class WordPieceTokenizer:
    """What the project uses of transformers' `BertTokenizer`: the Rust backend, the
    special ids, ids -> tokens, a plain call, and `save_pretrained` writing the files
    transformers writes (so `AutoTokenizer.from_pretrained` loads a saved model as is)."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]

    def __init__(self, vocab: dict[str, int], do_lower_case: bool):
        self.do_lower_case = do_lower_case
        self.backend_tokenizer = bert_backend(vocab, do_lower_case)
        self.model_max_length = UNLIMITED_LENGTH  # training/trust.py sets it before a save
        ids = {name: self.backend_tokenizer.token_to_id(t) for name, t in SPECIAL_TOKENS.items()}
        self.unk_token_id, self.sep_token_id = ids["unk_token"], ids["sep_token"]
        self.pad_token_id, self.cls_token_id = ids["pad_token"], ids["cls_token"]
        self.mask_token_id = ids["mask_token"]

    def __call__(self, text: Union[str, list[str]], add_special_tokens: bool = True) -> dict:
        """Token ids, token types and attention mask of a text (lists) or of many (lists of
        lists), as transformers' tokenizer call without padding or truncation."""
        texts = [text] if isinstance(text, str) else list(text)
        encodings = self.backend_tokenizer.encode_batch(texts,
                                                        add_special_tokens=add_special_tokens)
        columns = {"input_ids": [e.ids for e in encodings],
                   "token_type_ids": [e.type_ids for e in encodings],
                   "attention_mask": [e.attention_mask for e in encodings]}
        return {k: v[0] if isinstance(text, str) else v for k, v in columns.items()}

    def convert_ids_to_tokens(self, ids) -> list[str]:
        """The vocab's token of each id (any int-like ids: a list, a numpy array)."""
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids]

    def tokenizer_config(self) -> dict:
        """tokenizer_config.json's values: those transformers' `BertTokenizer` saves."""
        return {"backend": "tokenizers", **SPECIAL_TOKENS,
                "do_lower_case": self.do_lower_case, "model_max_length": self.model_max_length,
                "split_special_tokens": True, "strip_accents": None,
                "tokenize_chinese_chars": True, "tokenizer_class": "BertTokenizer"}

    def save_pretrained(self, folder: str) -> tuple[str, str]:
        """Writes tokenizer_config.json and tokenizer.json (transformers' bytes) through
        `disk.write_file` (whole files where the caller writes into a temp folder, as
        `export.save_model` does); returns their paths, as transformers does."""
        from .disk import write_file
        os.makedirs(folder, exist_ok=True)
        config_file = os.path.join(folder, "tokenizer_config.json")
        tokenizer_file = os.path.join(folder, "tokenizer.json")
        config = json.dumps(self.tokenizer_config(), indent=2, sort_keys=True, ensure_ascii=False)
        write_file(config_file, (config + "\n").encode("utf-8"))
        write_file(tokenizer_file, self.backend_tokenizer.to_str(pretty=True).encode("utf-8"))
        return config_file, tokenizer_file


def load_tokenizer(vocab_file: str, do_lower_case: bool) -> WordPieceTokenizer:
    """A fast (Rust) BERT tokenizer; lower-casing also strips accents, as in Google's."""
    return WordPieceTokenizer(load_vocab(vocab_file), do_lower_case)


def source_tokenizer(source, do_lower_case: bool):
    """A model source's tokenizer: BERT's from vocab.txt, another family's its own."""
    if source.family != "bert":
        from .families import load_tokenizer as family_tokenizer
        return family_tokenizer(os.path.dirname(source.config_file))
    return load_tokenizer(source.vocab_file, do_lower_case)
