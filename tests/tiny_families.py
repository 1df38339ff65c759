"""Tiny random encoders of each tested family, written offline: config, random weights and a
tokenizer trained with the `tokenizers` library on the project's sample data.

WordPiece for BERT, DistilBERT and ELECTRA; byte-level BPE for RoBERTa and ModernBERT;
Unigram (SentencePiece-style, Metaspace) for XLM-RoBERTa and DeBERTa-v2. Each tokenizer
gets its family's pair layout (post-processor) and is saved through the family's
transformers tokenizer class, so `AutoTokenizer` loads it as it loads the real one.
"""

import csv
import os

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "sentence_similarity", "train.csv")
SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
MAX_POSITIONS = 128
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def sample_texts() -> list[str]:
    with open(SAMPLE, newline="", encoding="utf-8") as f:
        return [text for row in csv.reader(f) for text in row[1:]]


def _wordpiece(lower: bool) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lower)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(sample_texts(), trainers.WordPieceTrainer(
        vocab_size=400, special_tokens=BERT_SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    return tok


def _byte_bpe(specials: list[str], template_cls: str, template_sep: str, roberta: bool
              ) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(sample_texts(), trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    cls, sep = tok.token_to_id(template_cls), tok.token_to_id(template_sep)
    tok.post_processor = (processors.RobertaProcessing((template_sep, sep), (template_cls, cls))
                          if roberta else processors.BertProcessing((template_sep, sep),
                                                                    (template_cls, cls)))
    return tok


def _unigram(specials: list[str], cls: str, sep: str, roberta: bool) -> Tokenizer:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("  ", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(sample_texts(), trainers.UnigramTrainer(
        vocab_size=400, special_tokens=specials, unk_token=specials[specials.index(
            "<unk>" if roberta else "[UNK]")]))
    single = f"{cls}:0 $A:0 {sep}:0"
    pair = (f"{cls}:0 $A:0 {sep}:0 {sep}:0 $B:0 {sep}:0" if roberta
            else f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, tok.token_to_id(t)) for t in (cls, sep)])
    return tok


def _roberta_tokens() -> dict:
    return dict(bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
                unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def _bert_tokens() -> dict:
    return dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
                mask_token="[MASK]")


def _family(name: str, lower: bool):
    """(tokenizers.Tokenizer, transformers tokenizer class, its special tokens, config)."""
    t = transformers
    if name in ("bert", "distilbert", "electra"):
        tok = _wordpiece(lower)
        config = {"bert": lambda: t.BertConfig(**SIZES, max_position_embeddings=MAX_POSITIONS),
                  "distilbert": lambda: t.DistilBertConfig(
                      dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                      max_position_embeddings=MAX_POSITIONS),
                  "electra": lambda: t.ElectraConfig(**SIZES, embedding_size=16,
                                                     max_position_embeddings=MAX_POSITIONS)}
        cls = {"bert": t.BertTokenizer, "distilbert": t.DistilBertTokenizer,
               "electra": t.ElectraTokenizer}[name]
        return tok, cls, {**_bert_tokens(), "do_lower_case": lower}, config[name]()
    if name == "roberta":
        return (_byte_bpe(ROBERTA_SPECIALS, "<s>", "</s>", True), t.RobertaTokenizer,
                _roberta_tokens(), t.RobertaConfig(**SIZES, pad_token_id=1, bos_token_id=0,
                                                   eos_token_id=2, type_vocab_size=1,
                                                   max_position_embeddings=MAX_POSITIONS + 2))
    if name == "modernbert":
        return (_byte_bpe(BERT_SPECIALS, "[CLS]", "[SEP]", False), t.PreTrainedTokenizerFast,
                _bert_tokens(), t.ModernBertConfig(
                    **SIZES, max_position_embeddings=MAX_POSITIONS, pad_token_id=0,
                    cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3,
                    local_attention=16, global_attn_every_n_layers=2))
    if name == "xlm-roberta":
        return (_unigram(ROBERTA_SPECIALS, "<s>", "</s>", True), t.XLMRobertaTokenizer,
                _roberta_tokens(), t.XLMRobertaConfig(
                    **SIZES, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
                    max_position_embeddings=MAX_POSITIONS + 2))
    if name == "deberta-v2":
        return (_unigram(BERT_SPECIALS, "[CLS]", "[SEP]", False), t.DebertaV2Tokenizer,
                _bert_tokens(), t.DebertaV2Config(
                    **SIZES, max_position_embeddings=MAX_POSITIONS, relative_attention=True,
                    position_buckets=16, pos_att_type=["p2c", "c2p"], type_vocab_size=0))
    raise ValueError(name)


FAMILIES = ("bert", "roberta", "distilbert", "electra", "deberta-v2", "xlm-roberta",
            "modernbert")


def write_tiny_family(name: str, path: str, seed: int = 0, lower: bool = False) -> str:
    """Writes a random 2-layer, hidden-32 model dir of family `name`; returns its path.

    BERT's dir also gets vocab.txt (today's BERT path reads it).
    """
    os.makedirs(path, exist_ok=True)
    tok, tokenizer_class, specials, config = _family(name, lower)
    config.vocab_size = tok.get_vocab_size()
    torch.manual_seed(seed)
    transformers.AutoModel.from_config(config).save_pretrained(path)
    tokenizer = tokenizer_class(tokenizer_object=tok, model_max_length=MAX_POSITIONS, **specials)
    tokenizer.save_pretrained(path)
    if name == "bert":
        vocab = sorted(tok.get_vocab().items(), key=lambda item: item[1])
        with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token, _ in vocab))
    return str(path)
