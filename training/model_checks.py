"""The checks of a model's files and of long-text flags against it (before any work).

Shared by run_classifier.py and extract_features.py, which pass the flag values by
keyword. Like training/checks.py they import no torch, so a user error is reported in a
fraction of a second.
"""

import os
from typing import Optional

from modeling import families
from modeling.disk import check_integrity
from modeling.errors import check
from modeling.model import read_config
from modeling.tokenization import load_vocab
from modeling.toolchain import cpp_compiler

MODEL_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "max_position_embeddings")


def check_long_text(long_text: str, max_seq_length: int, doc_stride, window_pooling=None
                    ) -> None:
    """--doc_stride and --window_pooling belong to --long_text=windows; a stride past a
    window's room would skip tokens. (extract_features has no --window_pooling.)"""
    if long_text != "windows":
        check(doc_stride is None, f"--doc_stride={doc_stride}: needs --long_text=windows")
        check(window_pooling is None,
              f"--window_pooling={window_pooling}: needs --long_text=windows")
        return
    room = max_seq_length - 2
    check(doc_stride is None or 1 <= doc_stride <= room, f"--doc_stride={doc_stride}: "
          f"must be in [1, {room}] (a window holds at most --max_seq_length - 2 tokens)")


def check_windows_model(source, long_text: str, predict_backend: str = "torch") -> None:
    """Windows are cut in BERT's [CLS] A [SEP] B [SEP] layout and pooled by the PyTorch
    predict path: other families and the onnxruntime backends are refused."""
    if long_text != "windows":
        return
    check(source.family == "bert", f"--long_text=windows: BERT models only for now "
          f"({os.path.dirname(source.config_file)} has model_type {source.family})")
    check(predict_backend == "torch", f"--predict_backend={predict_backend}: not with "
          "--long_text=windows (pooling windows into documents runs in the PyTorch predict)")


def check_compile_model(source, compile: str) -> None:
    """--compile=on compiles BERT's own forward (modeling/forward.py), with a C++ compiler."""
    if compile != "on":
        return
    check(source.family == "bert", f"--compile=on: BERT models only "
          f"({os.path.dirname(source.config_file)} has model_type {source.family}); use "
          "--compile=off")
    check(cpp_compiler() is not None, "--compile=on: torch.compile needs a C++ compiler "
          f"({os.environ.get('CXX') or 'g++'}) and none was found: install one (e.g. apt "
          "install g++) or use --compile=off")


def resolve_casing(source, do_lower_case: Optional[bool]) -> bool:
    """--do_lower_case as the run uses it: the user's value where they set one (check_model
    refuses a mismatch), else the model's own casing, so that a flag left at its default
    never contradicts the model. A BERT checkpoint that records none (Google's vocab.txt
    and config) keeps Google's default, True."""
    if do_lower_case is not None:
        return do_lower_case
    if source.family != "bert":
        return families.lowercases(os.path.dirname(source.config_file))
    return True if source.do_lower_case is None else source.do_lower_case


def check_model_files(model_dir) -> None:
    """A model folder this project saved (a trained output_dir, best_model/) carries an
    integrity record: each file it names must match, else disk.DamagedFile names the file
    (a bit flip would change results unnoticed). A folder without one (a hub download) is
    taken as it is."""
    if model_dir and os.path.isdir(model_dir):
        check_integrity(model_dir, required=False)


def check_config(config: dict, path: str) -> None:
    """The model's sizes, as transformers would refuse them (with a traceback)."""
    for key in MODEL_SIZES:
        value = config.get(key, 1)
        check(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
              f"{path}: {key} is {value!r}; expected a positive integer")
    hidden, heads = config.get("hidden_size", 768), config.get("num_attention_heads", 12)
    check(hidden % heads == 0, f"{path}: num_attention_heads ({heads}) does not divide "
          f"hidden_size ({hidden})")


def check_model(source, do_lower_case: bool, max_seq_length: int) -> None:
    """The model's files against the flags: casing, max_seq_length, vocab size, sizes.

    Shared by run_classifier.py and extract_features.py.
    """
    if source.family != "bert":
        return check_family_model(source, do_lower_case, max_seq_length)
    check(source.do_lower_case is None or source.do_lower_case == do_lower_case,
          f"--do_lower_case={do_lower_case}: the checkpoint's tokenizer has "
          f"do_lower_case={source.do_lower_case}; pass --{'' if source.do_lower_case else 'no'}"
          "do_lower_case")
    config = read_config(source.config_file)
    check_config(config, source.config_file)
    limit = config["max_position_embeddings"]
    check(max_seq_length >= 3, f"--max_seq_length={max_seq_length}: must be at least 3 "
          "([CLS], one token, [SEP])")
    check(max_seq_length <= limit, f"--max_seq_length={max_seq_length}: must be at most the "
          f"model's max_position_embeddings ({limit})")
    vocab_size = len(load_vocab(source.vocab_file))
    check(vocab_size <= config["vocab_size"], f"{source.vocab_file}: {vocab_size} tokens, more "
          f"than the config's vocab_size {config['vocab_size']} ({source.config_file})")


def check_family_model(source, do_lower_case: bool, max_seq_length: int) -> None:
    """Another family's files against the flags: what its tokenizer does with case, and the
    longest input it takes."""
    model_dir = os.path.dirname(source.config_file)
    families.check_casing(model_dir, do_lower_case)
    config = read_config(source.config_file)
    check_config(config, source.config_file)
    limit = families.max_length(config, model_dir)
    check(max_seq_length >= 6, f"--max_seq_length={max_seq_length}: must be at least 6 (a "
          "pair's special tokens and a token of each text)")
    check(max_seq_length <= limit, f"--max_seq_length={max_seq_length}: must be at most "
          f"{limit}, the longest input of {model_dir}")


def check_token_types(source, task: str, examples: dict) -> None:
    """A pair's second text gets token type 1 (BERT's segment B; another family's as its
    tokenizer gives it): a model with fewer token types would fail at its first step (an
    IndexError), so such a model is refused on a task with pairs, before any work.
    `examples` ({split: examples}) are walked only for such a model."""
    config = read_config(source.config_file)
    types = config.get("type_vocab_size")
    if not isinstance(types, int) or isinstance(types, bool) or types >= 2 or (
            types < 1 and source.family != "bert"):  # (DeBERTa's 0: no token types)
        return
    check(types >= 1, f"{source.config_file}: type_vocab_size is {types}; BERT needs at least "
          "1 (2 for sentence pairs)")
    second = 1 if source.family == "bert" else families.second_text_type(
        os.path.dirname(source.config_file))
    if second < types:
        return
    pair = next((e for split in examples.values() for e in split if e.text_b is not None), None)
    check(pair is None, f"{source.config_file}: type_vocab_size is {types}, but --task_name="
          f"{task} has sentence pairs (e.g. guid {pair and pair.guid}), whose second text gets "
          f"token type {second}; use a model with type_vocab_size {second + 1} or more")


def check_onnx_file(path: str, flag: str, export: str) -> None:
    """An exported model that onnx cannot parse (cut short, overwritten) is one line naming
    it, before any work; onnxruntime's own error comes mid-run, as a traceback."""
    import onnx  # (protobuf; no torch)
    try:
        onnx.load(path, load_external_data=False)
        return
    except Exception as e:  # a damaged file fails in many ways
        reason = f"{type(e).__name__}: {e}".splitlines()[0]
    check(False, f"{path}: not a valid ONNX model (damaged or cut short?): {reason}; {flag} "
          f"needs it whole: export it again (--export={export})")
