"""Training checkpoints: written to a temp folder and renamed, so each is whole or absent.

A checkpoint holds the model weights (safetensors) and the training state:
optimizer, scheduler, global step, RNG states, the per-epoch stats so far, and
the run's signature (task, labels, model, max_seq_length, ...). A resumed run
continues exactly where the checkpoint left off; one whose signature differs is
refused. An unreadable newest checkpoint is moved aside and the one before it used.
"""

import glob
import logging
import os
import re
import shutil
from typing import Callable, Optional

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors

from core import InputError

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
WEIGHTS, STATE = "model.safetensors", "training_state.pt"
UNREADABLE = ".unreadable"  # suffix of a damaged checkpoint moved aside


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _RecordingFile:
    """A file whose write errors are kept: torch.save reports them as a bare RuntimeError."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def _write_file(path: str, write: Callable) -> None:
    """Runs `write(file)` on a new file and fsyncs it; write errors stay OSErrors."""
    with open(path, "wb") as f:
        recording = _RecordingFile(f)
        try:
            write(recording)
        except RuntimeError:
            if recording.error is not None:
                raise recording.error from None
            raise
        f.flush()
        os.fsync(f.fileno())


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoints, oldest first."""
    paths = [p for p in glob.glob(os.path.join(output_dir, PREFIX + "*"))
             if re.fullmatch(PREFIX + r"\d+", os.path.basename(p))]
    return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1]))


def save_checkpoint(output_dir: str, model, state: dict, keep_max: int) -> str:
    """Writes checkpoint-<step> atomically; only then deletes all but the newest `keep_max`."""
    final = os.path.join(output_dir, f"{PREFIX}{state['global_step']}")
    tmp = os.path.join(output_dir, f".{PREFIX}{state['global_step']}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        _write_file(os.path.join(tmp, WEIGHTS), lambda f: f.write(save_tensors(weights)))
        _write_file(os.path.join(tmp, STATE), lambda f: torch.save(state, f))
        _fsync_dir(tmp)
        if os.path.exists(final):
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(output_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror, final) from None
        raise
    for old in list_checkpoints(output_dir)[:-keep_max] if keep_max > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _read(path: str) -> tuple[dict, dict]:
    """(training state, weights) of one checkpoint; raises whatever a damaged file raises."""
    state = torch.load(os.path.join(path, STATE), map_location="cpu", weights_only=False)
    return state, load_file(os.path.join(path, WEIGHTS))


def _newest_readable(paths: list[str]) -> tuple[str, dict, dict, list[str]]:
    """(path, state, weights, unreadable newer paths) of the newest checkpoint that loads."""
    bad = []
    for path in reversed(paths):
        try:
            return (path, *_read(path), bad)
        except Exception as e:  # a damaged file fails in many ways; name it
            logger.warning("Checkpoint %s is unreadable (%s: %s)", path, type(e).__name__,
                           str(e).splitlines()[0] if str(e) else "")
            bad.append(path)
    raise InputError(f"{bad[0]}: checkpoint is unreadable and no earlier one is readable; "
                     "pass --overwrite_output_dir to start over")


def load_latest_checkpoint(output_dir: str, model, signature: dict) -> Optional[dict]:
    """Loads the newest readable checkpoint into `model`; returns its training state, or None.

    Unreadable newer checkpoints are renamed `checkpoint-N.unreadable` (so they are
    neither resumed from nor counted by `keep_checkpoint_max`), with a warning.
    """
    paths = list_checkpoints(output_dir)
    if not paths:
        return None
    path, state, weights, bad = _newest_readable(paths)
    different = {k: (state["signature"].get(k), v) for k, v in signature.items()
                 if state["signature"].get(k) != v}
    if different:
        key, (old, new) = next(iter(different.items()))
        raise InputError(f"{path}: checkpoint is from a different run ({key}: {old!r} there, "
                         f"{new!r} now); pass --overwrite_output_dir to start over")
    for damaged in bad:
        shutil.rmtree(damaged + UNREADABLE, ignore_errors=True)
        os.rename(damaged, damaged + UNREADABLE)
        logger.warning("Moved the unreadable %s to %s; resuming from %s instead", damaged,
                       damaged + UNREADABLE, path)
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
