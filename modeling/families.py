"""Encoders other than BERT: any Hugging Face model directory whose config maps to a
transformers sequence-classification class (RoBERTa, DeBERTa-v2, ELECTRA, DistilBERT,
XLM-RoBERTa, ModernBERT, ...).

The model comes through transformers' Auto classes, the tokenizer from the directory's
own files (AutoTokenizer, offline), and the pair layout and token types from that
tokenizer. BERT keeps its own path (`model.py`: Google's features and flags, TF
checkpoints, the fast forward). The flag checks here read the tokenizer with the
`tokenizers` library (no torch import) when the directory has a tokenizer.json.

A folder's own Python code never runs: every transformers call passes
`trust_remote_code=False`, and a folder that asks for its code (`auto_map`, or a
model_type transformers does not know) is refused before any is read (`check_own_code`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
from typing import TYPE_CHECKING, Optional

from .sha256 import sha256_file
from .errors import InputError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "added_tokens.json", "vocab.json", "merges.txt", "vocab.txt", "spm.model",
                   "sentencepiece.bpe.model", "tokenizer.model")
POSITION_OFFSET = ("roberta", "xlm-roberta", "camembert", "mpnet")  # positions from pad_id + 1
CASE_PROBE = "The Quick Brown Fox"


def read_json(path: str, missing_ok: bool = True) -> dict:
    """A model folder's JSON file (config, tokenizer config) as a dict; {} where it is absent
    and `missing_ok`. A damaged one is one line naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        if missing_ok:
            return {}
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError) as e:
        what = e.strerror if isinstance(e, OSError) and e.strerror else e
        raise InputError(f"{path}: not a valid JSON file (damaged or cut short?): {what}"
                         .splitlines()[0]) from None
    return values


@functools.lru_cache
def known_model_types() -> frozenset:
    """The model_types transformers has classes for. Its generated table is read where there
    is one (no torch import); older versions' table comes with the config classes."""
    try:
        from transformers.models.auto.auto_mappings import CONFIG_MAPPING_NAMES
    except ImportError:  # pragma: no cover (transformers without the generated table)
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    return frozenset(CONFIG_MAPPING_NAMES)


def check_own_code(values: dict, path: str) -> None:
    """Refuses a config (or tokenizer config) that asks transformers to run the model
    folder's own Python: `auto_map`, or a model_type transformers does not know (it would
    look for the folder's code). That code is never run here (trust_remote_code stays off),
    and asking would prompt mid-run."""
    if "auto_map" in values:
        raise InputError(f"{path}: has auto_map, which asks to run the model folder's own "
                         "Python code; this program never runs it (trust_remote_code stays "
                         "off): use a model of a family transformers has built in")
    family = values.get("model_type", "bert")
    if family != "bert" and family not in known_model_types():
        raise InputError(f"{path}: model_type {family!r} is not one transformers knows (a "
                         "model that needs its own code is not run here)")


def second_text_type(model_dir: str) -> int:
    """The token type a pair's second text reaches the model with: what the pair template
    of tokenizer.json gives it (read with `tokenizers`, no torch), 0 where the tokenizer
    passes no token types (its model_input_names) or there is no tokenizer.json."""
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(path):
        return 0
    from tokenizers import Tokenizer
    try:
        second = max(Tokenizer.from_file(path).encode("a", "b").type_ids)
    except Exception as e:  # a foreign or broken file fails in many ways
        raise InputError(f"{path}: cannot load the tokenizer: {type(e).__name__}: {e}"
                         .splitlines()[0]) from None
    if not second:
        return 0
    values = read_json(os.path.join(model_dir, "tokenizer_config.json"))
    names = values.get("model_input_names")
    if names is None:  # the tokenizer class's own (imported only here: a rare case)
        import transformers
        cls = values.get("tokenizer_class")
        names = getattr(getattr(transformers, str(cls), None), "model_input_names", ())
    return second if "token_type_ids" in names else 0


def tokenizer_files(model_dir: str) -> tuple[str, ...]:
    return tuple(os.path.join(model_dir, name) for name in TOKENIZER_FILES
                 if os.path.isfile(os.path.join(model_dir, name)))


def files_digest(paths) -> str:
    """One sha256 over the files' sha256s, in order."""
    return hashlib.sha256(" ".join(sha256_file(p) for p in paths).encode()).hexdigest()


def lowercases(model_dir: str) -> bool:
    """Whether the directory's tokenizer lower-cases: an upper-case text gets the ids of its
    lower-case form."""
    path = os.path.join(model_dir, "tokenizer.json")
    try:
        if os.path.isfile(path):
            from tokenizers import Tokenizer
            encode = Tokenizer.from_file(path).encode
            return encode(CASE_PROBE).ids == encode(CASE_PROBE.lower()).ids
        tokenizer = load_tokenizer(model_dir)
    except Exception as e:  # a foreign or broken file fails in many ways
        raise InputError(f"{model_dir}: cannot load its tokenizer: {type(e).__name__}: {e}"
                         .splitlines()[0]) from None
    return tokenizer(CASE_PROBE)["input_ids"] == tokenizer(CASE_PROBE.lower())["input_ids"]


def max_length(config: dict, model_dir: str) -> int:
    """The longest input the model takes: its positions (less RoBERTa's offset), or the
    tokenizer's model_max_length where that is smaller."""
    limit = config["max_position_embeddings"]
    if config.get("model_type") in POSITION_OFFSET:
        limit -= config.get("pad_token_id", 1) + 1
    try:
        with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
            tokenizer_max = json.load(f).get("model_max_length")
    except (OSError, ValueError, AttributeError):
        tokenizer_max = None
    return min(limit, tokenizer_max) if isinstance(tokenizer_max, int) else limit


def check_casing(model_dir: str, do_lower_case: bool) -> None:
    lower = lowercases(model_dir)
    if lower != do_lower_case:
        raise InputError(f"--do_lower_case={do_lower_case}: the tokenizer of {model_dir} "
                         f"{'lower-cases' if lower else 'keeps case'}; pass "
                         f"--{'' if lower else 'no'}do_lower_case")


def load_tokenizer(model_dir: str):
    """The directory's own tokenizer (fast, Rust), offline."""
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        model_dir, local_files_only=True, trust_remote_code=False)
    if not tokenizer.is_fast:
        raise InputError(f"{model_dir}: its tokenizer ({type(tokenizer).__name__}) has no fast "
                         "version; features are built with the fast (Rust) tokenizer")
    return tokenizer


def load_config(model_dir: str, num_labels: int, labels: Optional[list[str]],
                problem_type: str):
    """The directory's config (AutoConfig), set up for a task's labels."""
    import transformers
    config = transformers.AutoConfig.from_pretrained(model_dir, local_files_only=True,
                                                     trust_remote_code=False)
    return set_task(config, num_labels, labels, problem_type)


def set_task(config, num_labels: int, labels: Optional[list[str]], problem_type: str):
    """`config` (any family's) set up for a task's labels and problem type."""
    config.num_labels = num_labels
    config.problem_type = problem_type
    if labels is not None:
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
    return config


def build_model(model_dir: str, config, keep_head: bool):
    """AutoModelForSequenceClassification from the directory; a missing encoder weight (any
    weight, with `keep_head`) is an error, as for BERT."""
    import transformers
    transformers.utils.logging.disable_progress_bar()  # (a run logs lines, not bars)
    classes = transformers.models.auto.modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING
    if type(config) not in classes:
        raise InputError(f"{model_dir}: transformers has no sequence-classification model for "
                         f"model_type {config.model_type!r}")
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # its load report: checked below instead
    try:
        model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            model_dir, config=config, local_files_only=True, output_loading_info=True,
            dtype="float32", trust_remote_code=False)
    finally:
        transformers.logging.set_verbosity(verbosity)
    prefix = model.base_model_prefix + "."
    missing = sorted(k for k in info["missing_keys"] if keep_head or k.startswith(prefix))
    bad = info.get("mismatched_keys") or []
    if missing or bad:
        what, keys = ("missing", missing) if missing else ("wrong-shape", [str(k) for k in bad])
        raise InputError(f"{model_dir}: {len(keys)} {what} encoder weights, e.g. {keys[0]}")
    _check_finite(model_dir, model)
    return model


def load_encoder(model_dir: str, pooler: bool):
    """The directory's base model (AutoModel), for extract_features; `pooler`: the caller
    reads its pooler, which must be there with trained weights."""
    import transformers
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model, info = transformers.AutoModel.from_pretrained(
            model_dir, local_files_only=True, output_loading_info=True, dtype="float32",
            trust_remote_code=False)
    finally:
        transformers.logging.set_verbosity(verbosity)
    missing = sorted(info["missing_keys"])
    has_pooler = getattr(model, "pooler", None) is not None and not any(
        k.startswith("pooler.") for k in missing)
    if pooler and not has_pooler:
        raise InputError(f"--pooling=pooler: the {model.config.model_type} model in {model_dir} "
                         "has no trained pooler; use --pooling=cls or --pooling=mean")
    missing = [k for k in missing if not k.startswith("pooler.")]
    if missing:
        raise InputError(f"{model_dir}: {len(missing)} missing encoder weights, e.g. "
                         f"{missing[0]}")
    _check_finite(model_dir, model)
    return model


def _check_finite(model_dir: str, model: torch.nn.Module) -> None:
    import torch
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"{model_dir}: {name} holds NaN or Inf values")


@functools.lru_cache
def takes_token_types(cls) -> bool:
    return "token_type_ids" in inspect.signature(cls.forward).parameters


def logits(model, input_ids, attention_mask, token_type_ids):
    """The model's own forward; token types go in where the model takes them (they are
    zeros where the tokenizer makes none, as the model's default)."""
    types = {"token_type_ids": token_type_ids} if takes_token_types(type(model)) else {}
    return model(input_ids=input_ids, attention_mask=attention_mask, **types).logits
