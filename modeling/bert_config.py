"""BERT's config without importing transformers: config.json's values as attributes, set up
for a task, written as transformers' `BertConfig.save_pretrained` writes them.

Why: `import transformers` (its lazy-import tables) is a large part of every command's
start, and a run of the project's own BERT (`bert.py`) needs only the values. Reading
keeps what transformers' BertConfig keeps (its fields' defaults, label ids as ints,
`torch_dtype` as `dtype`, generation settings and loader bookkeeping dropped); writing
keeps what its `to_json_string` keeps (BERT's fields always, a base setting where it
differs from its default, every other key), so a saved model reads the same either way
(tested byte for byte against the installed transformers, tests/test_bert_config.py).
`bert.to_transformers` makes transformers' own config where its code needs one.
"""

import copy
import functools
import json
import math
import os
from importlib import metadata

from .disk import write_file

CONFIG_FILE = "config.json"

# transformers' BertConfig fields and their defaults: always written.
BERT_FIELDS = {
    "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
    "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
    "layer_norm_eps": 1e-12, "pad_token_id": 0, "use_cache": True, "classifier_dropout": None,
    "is_decoder": False, "add_cross_attention": False, "bos_token_id": None,
    "eos_token_id": None, "tie_word_embeddings": True}
# Settings of every transformers config: written only where they differ from these.
BASE_DEFAULTS = {
    "architectures": None, "output_hidden_states": False, "return_dict": True, "dtype": None,
    "chunk_size_feed_forward": 0, "is_encoder_decoder": False, "problem_type": None,
    "output_attentions": False}
# Generation settings transformers drops when it reads a config (`use_cache` aside: a field).
GENERATION_KEYS = frozenset({
    "assistant_confidence_threshold", "assistant_lookbehind", "bad_words_ids",
    "begin_suppress_tokens", "diversity_penalty", "do_sample", "early_stopping",
    "encoder_no_repeat_ngram_size", "encoder_repetition_penalty", "epsilon_cutoff",
    "eta_cutoff", "exponential_decay_length_penalty", "forced_bos_token_id",
    "forced_eos_token_id", "length_penalty", "max_length", "min_length",
    "no_repeat_ngram_size", "num_assistant_tokens", "num_assistant_tokens_schedule",
    "num_beam_groups", "num_beams", "num_return_sequences", "output_scores",
    "remove_invalid_values", "repetition_penalty", "return_dict_in_generate",
    "suppress_tokens", "target_lookbehind", "temperature", "top_k", "top_p", "typical_p"})
# Loader bookkeeping, never kept (`transformers_version` is the installed one when written).
DROPPED = frozenset({
    "model_type", "transformers_version", "_name_or_path", "name_or_path", "_commit_hash",
    "attn_implementation", "_attn_implementation", "_attn_implementation_internal",
    "experts_implementation", "_experts_implementation", "_experts_implementation_internal"})


@functools.cache
def _transformers_version() -> str:
    """What config.json records as its writer (read once: package metadata is files)."""
    return metadata.version("transformers")


def _default_labels(count: int) -> dict:
    return {i: f"LABEL_{i}" for i in range(count)}


def _special_floats(value):
    """NaN and the infinities as transformers writes them (plain JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": "NaN" if math.isnan(value) else
                "Infinity" if value > 0 else "-Infinity"}
    if isinstance(value, dict):
        return {k: _special_floats(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_special_floats(v) for v in value]
    return value


class BertConfig:
    """A BERT config's values as attributes (`BertConfig(**config_json_values)`)."""

    model_type = "bert"

    def __init__(self, **values):
        values = {k: v for k, v in values.items()
                  if k not in DROPPED and k not in GENERATION_KEYS}
        torch_dtype = values.pop("torch_dtype", None)
        id2label, num_labels = values.pop("id2label", None), values.pop("num_labels", None)
        label2id = values.pop("label2id", None)
        self.__dict__.update(copy.deepcopy({**BERT_FIELDS, **BASE_DEFAULTS, **values}))
        if self.dtype is None and torch_dtype is not None:
            self.dtype = torch_dtype
        if id2label is None:
            self.id2label = _default_labels(2 if num_labels is None else num_labels)
            self.label2id = {v: k for k, v in self.id2label.items()}
        else:  # (a label2id it lacks stays None, as in transformers)
            self.id2label = {int(k): v for k, v in id2label.items()}
            self.label2id = None
        if label2id is not None:
            self.label2id = dict(label2id)

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, count: int) -> None:
        """As transformers' setter: a new count gets LABEL_i names (the task's come next)."""
        if len(self.id2label) != count:
            self.id2label = _default_labels(count)
            self.label2id = {v: k for k, v in self.id2label.items()}

    def to_dict(self) -> dict:
        """Every value, with the model type and the installed transformers' version."""
        return {**copy.deepcopy(self.__dict__), "model_type": self.model_type,
                "transformers_version": _transformers_version()}

    def to_json_string(self) -> str:
        """What transformers' `to_json_string()` gives for the same values."""
        values = {}
        for key, value in self.to_dict().items():
            if key in BASE_DEFAULTS and value == BASE_DEFAULTS[key]:
                continue
            if key == "id2label" and value == _default_labels(2) or key == "label2id" and (
                    value == {v: k for k, v in _default_labels(2).items()}):
                continue
            values[key] = value
        return json.dumps(_special_floats(values), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, folder: str) -> None:
        """config.json into `folder` (made if missing, as transformers does)."""
        os.makedirs(folder, exist_ok=True)
        write_file(os.path.join(folder, CONFIG_FILE), self.to_json_string().encode("utf-8"))

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"
