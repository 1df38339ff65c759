"""Training checkpoints: each written to a temp folder and renamed, so it is whole or absent.

A checkpoint holds the model weights (safetensors) and the training state:
optimizer, scheduler, global step, RNG states, the per-epoch stats so far, and
the run's signature (task, labels, model, max_seq_length, ...). A resumed run
continues exactly where the checkpoint left off; one whose signature differs is
refused.

Nothing on disk runs code: the state is read with `torch.load(weights_only=True)`
(tensors, numbers, strings, lists and dicts only; a pickled object is refused), and
only after the checkpoint's integrity record (the sha256 of both files, written last)
matched. A checkpoint that fails either is unreadable: moved aside, with a warning,
and the one before it used.
"""

import glob
import io
import logging
import os
import re
import shutil
from typing import Optional

import torch
import torch.distributed as dist
from safetensors.torch import load_file

from modeling.bert import weights_bytes
from modeling.disk import atomic_folder, check_integrity, write_file, write_integrity
from modeling.errors import InputError

logger = logging.getLogger(__name__)

PREFIX = "checkpoint-"
WEIGHTS, STATE = "model.safetensors", "training_state.pt"
UNREADABLE = ".unreadable"  # suffix of a damaged checkpoint moved aside
FORMAT = "format"  # the state's key for FORMAT_VERSION: checkpoints with integrity records
FORMAT_VERSION = 2


def list_checkpoints(output_dir: str) -> list[str]:
    """Complete checkpoints, oldest first."""
    paths = [p for p in glob.glob(os.path.join(output_dir, PREFIX + "*"))
             if re.fullmatch(PREFIX + r"\d+", os.path.basename(p))]
    return sorted(paths, key=lambda p: int(p.rsplit("-", 1)[1]))


def _plain(value):
    """`value` with numpy scalars and arrays as Python numbers and tensors, which
    `torch.load(weights_only=True)` reads (numpy computations give numpy floats)."""
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if type(value).__module__ == "numpy":
        return torch.from_numpy(value) if hasattr(value, "shape") and value.shape else \
            value.item()
    return value


def save_checkpoint(output_dir: str, model, state: dict, keep_max: int) -> str:
    """Writes checkpoint-<step> atomically (its integrity record last); only then deletes
    all but the newest `keep_max`. A failed write raises an OSError naming the checkpoint."""
    final = os.path.join(output_dir, f"{PREFIX}{state['global_step']}")
    with atomic_folder(final) as tmp:
        buffer = io.BytesIO()  # (torch.save reports a failed file write as a RuntimeError)
        torch.save(_plain({**state, FORMAT: FORMAT_VERSION}), buffer)
        for name, data in ((WEIGHTS, weights_bytes(model)), (STATE, buffer.getbuffer())):
            write_file(os.path.join(tmp, name), data)  # (the same weights: a link)
        write_integrity(tmp, [WEIGHTS, STATE])
    for old in list_checkpoints(output_dir)[:-keep_max] if keep_max > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _read(path: str) -> tuple[dict, dict]:
    """(training state, weights) of one checkpoint, its files checked against its integrity
    record first; raises whatever a damaged file raises, never runs code from it."""
    recorded = check_integrity(path, required=False)
    state = torch.load(os.path.join(path, STATE), map_location="cpu", weights_only=True)
    if not (isinstance(state, dict) and isinstance(state.get("global_step"), int)
            and isinstance(state.get("signature"), dict)):
        raise ValueError(f"{STATE} is not a training state")
    if not recorded:
        if state.get(FORMAT):  # this version always writes one: it was removed
            check_integrity(path, required=True)
        logger.warning("Checkpoint %s has no integrity record (an older version wrote it); "
                       "its files are not checked", path)
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


def _every_rank(state: torch.Tensor, device: torch.device) -> torch.Tensor:
    """[world size, n]: each rank's `state` (a collective under torchrun: every rank calls
    it), so that rank 0's checkpoint holds them all."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return state.unsqueeze(0)
    local = state.to(device)
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    return torch.stack(gathered).cpu()


def rng_state(device: torch.device = torch.device("cpu")) -> dict:
    """The RNG states of every rank (one row each), each restored on its own rank by
    `set_rng_state`: a resumed rank draws dropout where it left off. `device`: where the
    process group's collectives run (the rank's GPU under NCCL)."""
    state = {"torch_per_rank": _every_rank(torch.get_rng_state(), device)}
    if torch.cuda.is_available():
        state["cuda_per_rank"] = _every_rank(torch.cuda.get_rng_state(), device)
    return state


def _own_row(rows: torch.Tensor) -> torch.Tensor:
    rank = dist.get_rank() if dist.is_initialized() else 0
    if rows.shape[0] != (dist.get_world_size() if dist.is_initialized() else 1):
        logger.warning("The checkpoint holds the RNG states of %d processes, this run has "
                       "%d: dropout is not drawn as an uninterrupted run would",
                       rows.shape[0], dist.get_world_size() if dist.is_initialized() else 1)
    # A copy: torch.set_rng_state given a view into the stack crashes the process.
    return rows[min(rank, rows.shape[0] - 1)].clone()


def set_rng_state(state: dict) -> None:
    """Restores this rank's row of `rng_state()` (or an older checkpoint's one state)."""
    if "torch_per_rank" in state:
        torch.set_rng_state(_own_row(state["torch_per_rank"]))
        if "cuda_per_rank" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(_own_row(state["cuda_per_rank"]))
        return
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
