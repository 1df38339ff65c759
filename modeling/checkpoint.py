"""Training checkpoints: written to a temp folder and renamed, so each is whole or absent.

A checkpoint holds the model weights (safetensors) and the training state:
optimizer, scheduler, global step, RNG states, the per-epoch stats so far, and
the run's signature (task, labels, model, max_seq_length, ...). A resumed run
continues exactly where the checkpoint left off; one whose signature differs is
refused.
"""

import glob
import logging
import os
import re
import shutil
from typing import Optional

import torch
from safetensors.torch import load_file, save_file

from processors.base import InputError

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoints, oldest first."""
    paths = [p for p in glob.glob(os.path.join(output_dir, PREFIX + "*"))
             if re.fullmatch(PREFIX + r"\d+", os.path.basename(p))]
    return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1]))


def save_checkpoint(output_dir: str, model, state: dict, keep_max: int) -> str:
    """Writes checkpoint-<step> atomically, then deletes all but the newest `keep_max`."""
    final = os.path.join(output_dir, f"{PREFIX}{state['global_step']}")
    tmp = os.path.join(output_dir, f".{PREFIX}{state['global_step']}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(weights, os.path.join(tmp, "model.safetensors"))
    torch.save(state, os.path.join(tmp, "training_state.pt"))
    for name in os.listdir(tmp):
        with open(os.path.join(tmp, name), "rb") as f:
            os.fsync(f.fileno())
    _fsync_dir(tmp)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(output_dir)
    for old in list_checkpoints(output_dir)[:-keep_max] if keep_max > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_latest_checkpoint(output_dir: str, model, signature: dict) -> Optional[dict]:
    """Loads the newest checkpoint into `model`; returns its training state, or None."""
    paths = list_checkpoints(output_dir)
    if not paths:
        return None
    path = paths[-1]
    try:
        state = torch.load(os.path.join(path, "training_state.pt"), map_location="cpu",
                           weights_only=False)
        weights = load_file(os.path.join(path, "model.safetensors"))
    except Exception as e:  # a damaged file fails in many ways; name it and stop
        raise InputError(f"{path}: checkpoint is unreadable ({type(e).__name__}); delete it "
                         "to resume from an earlier one, or pass --overwrite_output_dir"
                         ) from None
    different = {k: (state["signature"].get(k), v) for k, v in signature.items()
                 if state["signature"].get(k) != v}
    if different:
        key, (old, new) = next(iter(different.items()))
        raise InputError(f"{path}: checkpoint is from a different run ({key}: {old!r} there, "
                         f"{new!r} now); pass --overwrite_output_dir to start over")
    model.load_state_dict(weights)
    logger.info("Resuming from %s (global step %d)", path, state["global_step"])
    return state


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
