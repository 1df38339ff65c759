"""Saving a fine-tuned model so that transformers (and this project) load it as is."""

import os
import shutil

from safetensors import SafetensorError
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

from core import FILE_MODE

from .model import read_config

MODEL_FILES_LAST = "config.json"  # written last: its presence marks a complete model
GLOBAL_STEP = "global_step"  # config.json's key for the step the weights were saved at
WEIGHTS_FILE = "model.safetensors"


def save_model(model: BertForSequenceClassification, tokenizer, vocab_file: str,
               out_dir: str, global_step: int) -> None:
    """save_pretrained + tokenizer files + vocab.txt, each file moved in by rename.

    The files are written to a temp folder first, so a crash never leaves a
    half-written model where a later run (or `transformers.pipeline`) reads it.
    Each gets the umask's mode (safetensors writes weights 0600). config.json
    records `global_step`, which a later eval-only run reports as Google's does.
    A failed write (a full disk) raises an OSError naming `out_dir`.
    """
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, ".model.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    setattr(model.config, GLOBAL_STEP, global_step)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if model.config.model_type == "bert":  # other families' tokenizers save their own
            shutil.copyfile(vocab_file, os.path.join(tmp, "vocab.txt"))
        for name in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name), FILE_MODE)
            with open(os.path.join(tmp, name), "rb") as f:
                os.fsync(f.fileno())
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as its own error
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(getattr(e, "errno", None), getattr(e, "strerror", None) or str(e),
                      out_dir) from None
    for name in sorted(os.listdir(tmp), key=lambda name: name == MODEL_FILES_LAST):
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    os.rmdir(tmp)


def saved_global_step(config_file: str) -> int:
    """The step a model saved by `save_model` was trained to; 0 for any other model."""
    step = read_config(config_file).get(GLOBAL_STEP)
    return step if isinstance(step, int) and step >= 0 else 0


def load_weights(model: BertForSequenceClassification, model_dir: str) -> None:
    """Loads the weights `save_model` wrote to `model_dir` into `model` (same architecture)."""
    model.load_state_dict(load_file(os.path.join(model_dir, WEIGHTS_FILE)))
