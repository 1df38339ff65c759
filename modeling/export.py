"""Saving a fine-tuned model so that transformers (and this project) load it as is."""

import os
import shutil

from safetensors import SafetensorError
from safetensors.torch import load_file

from .bert import WEIGHTS_FILE
from .disk import FILE_MODE, INTEGRITY, check_integrity, move_into, temp_folder, write_integrity
from .model import read_config

MODEL_FILES_LAST = "config.json"  # moved in last but the record: it marks a complete model
GLOBAL_STEP = "global_step"  # config.json's key for the step the weights were saved at


def _write_model(model, tokenizer, vocab_file: str, folder: str) -> list[str]:
    """The model's files (what save_pretrained writes) + tokenizer files + vocab.txt into
    `folder`; returns their names, config.json last. Each gets the umask's mode
    (safetensors writes weights 0600)."""
    try:
        model.save_pretrained(folder)  # (bert.BertClassifier's writes the same files)
        tokenizer.save_pretrained(folder)
    except SafetensorError as e:  # safetensors reports a full disk as its own error
        raise OSError(None, str(e), folder) from None
    if model.config.model_type == "bert":  # other families' tokenizers save their own
        shutil.copyfile(vocab_file, os.path.join(folder, "vocab.txt"))
    names = sorted(os.listdir(folder), key=lambda name: name == MODEL_FILES_LAST)
    for name in names:
        os.chmod(os.path.join(folder, name), FILE_MODE)
    return names


def save_model(model, tokenizer, vocab_file: str, out_dir: str, global_step: int) -> None:
    """Writes the model's files (`_write_model`) and their integrity record into `out_dir`.

    They are written to a temp folder first and moved in by rename, config.json and
    then the record last, so a crash never leaves a half-written file where a later
    run (or `transformers.pipeline`) reads it, and a mix of old and new files fails
    the record's check. config.json records `global_step`, which a later eval-only
    run reports as Google's does. A failed write (a full disk) raises an OSError
    naming `out_dir`.
    """
    os.makedirs(out_dir, exist_ok=True)
    setattr(model.config, GLOBAL_STEP, global_step)
    with temp_folder(os.path.join(out_dir, "model")) as tmp:
        try:
            names = _write_model(model, tokenizer, vocab_file, tmp)
            write_integrity(tmp, names)
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), out_dir) from None
        move_into(tmp, names + [INTEGRITY], out_dir)


def saved_global_step(config_file: str) -> int:
    """The step a model saved by `save_model` was trained to; 0 for any other model."""
    step = read_config(config_file).get(GLOBAL_STEP)
    return step if isinstance(step, int) and step >= 0 else 0


def load_weights(model, model_dir: str) -> None:
    """Loads the weights `save_model` wrote to `model_dir` into `model` (same architecture),
    checked against the folder's integrity record first (disk.DamagedFile names a file
    that differs)."""
    check_integrity(model_dir, required=False)
    model.load_state_dict(load_file(os.path.join(model_dir, WEIGHTS_FILE)))
