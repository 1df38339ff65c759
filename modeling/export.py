"""Saving a fine-tuned model so that transformers (and this project) load it as is."""

import os
import shutil

from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

MODEL_FILES_LAST = "config.json"  # written last: its presence marks a complete model
WEIGHTS_FILE = "model.safetensors"


def save_model(model: BertForSequenceClassification, tokenizer, vocab_file: str,
               out_dir: str) -> None:
    """save_pretrained + tokenizer files + vocab.txt, each file moved in by rename.

    The files are written to a temp folder first, so a crash never leaves a
    half-written model where a later run (or `transformers.pipeline`) reads it.
    A failed write (a full disk) raises an OSError naming `out_dir`.
    """
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, ".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.copyfile(vocab_file, os.path.join(tmp, "vocab.txt"))
        for name in os.listdir(tmp):
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(getattr(e, "errno", None), getattr(e, "strerror", None) or str(e),
                      out_dir) from None
    for name in sorted(os.listdir(tmp), key=lambda name: name == MODEL_FILES_LAST):
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    os.rmdir(tmp)


def load_weights(model: BertForSequenceClassification, model_dir: str) -> None:
    """Loads the weights `save_model` wrote to `model_dir` into `model` (same architecture)."""
    model.load_state_dict(load_file(os.path.join(model_dir, WEIGHTS_FILE)))
