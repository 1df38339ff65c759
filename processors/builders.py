"""One interface for making features, chosen once from the model's family.

A `FeatureBuilder` turns a chunk of examples into `FeatureArrays` and says what
its layout adds to the features cache key. BERT (Google's checkpoints and HF
BERT folders) takes `BertFeatures`: Google's `[CLS] a [SEP] (b [SEP])` layout
from the WordPiece tokenizer, and windows for long texts. Every other family
takes `TokenizerFeatures`: the tokenizer's own pair layout and token types, and
a key that hashes the tokenizer's files. `feature_builder` picks one.
"""

import functools
from typing import Optional, Protocol, Sequence

from .base import InputExample
from .cache_keys import layout_key
from .features import FeatureArrays, feature_arrays
from .hf_features import tokenizer_feature_arrays
from .windows import Windows, window_arrays


class FeatureBuilder(Protocol):
    """Examples -> feature arrays in one model family's layout."""

    tokenizer: object  # what the rows' ids come from (logged as tokens)

    def build(self, examples: Sequence[InputExample], label_list: Optional[Sequence[str]],
              max_seq_length: int, windows: Optional[Windows] = None) -> FeatureArrays:
        """The chunk's rows; `windows`: long texts become windows instead of truncated."""

    def key(self) -> dict:
        """What the layout adds to the features cache key (nothing for BERT's)."""


class BertFeatures:
    """Google's layout from a WordPiece tokenizer (`features.feature_arrays`), or windows."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def build(self, examples, label_list, max_seq_length: int,
              windows: Optional[Windows] = None) -> FeatureArrays:
        if windows:
            return window_arrays(examples, label_list, max_seq_length, self.tokenizer,
                                 windows.doc_stride)
        return feature_arrays(examples, label_list, max_seq_length, self.tokenizer)

    def key(self) -> dict:
        return layout_key(None)


class TokenizerFeatures:
    """Another family's own layout (`hf_features`); `files`: its tokenizer files, whose
    bytes enter the cache key (the vocab alone does not fix a tokenizer's output)."""

    def __init__(self, tokenizer, files: Sequence[str] = ()):
        self.tokenizer, self.files = tokenizer, tuple(files)

    def build(self, examples, label_list, max_seq_length: int,
              windows: Optional[Windows] = None) -> FeatureArrays:
        if windows:  # (the checks refuse --long_text=windows for these families first)
            raise ValueError("windows are cut in BERT's layout only")
        return tokenizer_feature_arrays(examples, label_list, max_seq_length, self.tokenizer)

    def key(self) -> dict:
        return dict(self._key)

    @functools.cached_property
    def _key(self) -> dict:
        """The files' sha256, once per builder (a run asks for each split's cache key)."""
        return layout_key(self.files)


def feature_builder(family: str, tokenizer, tokenizer_files: Sequence[str] = ()
                    ) -> FeatureBuilder:
    """The builder of a model family (config.json's model_type; "bert" for Google's
    checkpoints): BERT's own layout, or the family's tokenizer's."""
    if family == "bert":
        return BertFeatures(tokenizer)
    return TokenizerFeatures(tokenizer, tokenizer_files)
