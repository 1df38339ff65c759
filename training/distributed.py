"""Multi-GPU and multi-node runs under torchrun: DistributedDataParallel, NCCL or gloo.

`torchrun --nproc_per_node=N run_classifier.py ...` sets RANK, WORLD_SIZE and
LOCAL_RANK; `init` then joins the process group (NCCL on GPUs, gloo on the
CPU). Without torchrun every function here is a no-op for one process.

Each rank trains on its share of every global batch (rows rank, rank+N, ...),
so the global batch is still --train_batch_size and the batch order still
depends only on (seed, epoch). A rank's loss is weighted by its share of the
global batch, so DDP's gradient average equals the single-process gradient.

The process group's timeout (`process_group_timeout`) covers the longest wait a rank
has: the others wait in a barrier while each node's rank 0 builds the features
(`local_main_first`). torch's default, 10 minutes for NCCL, is about 10M rows' build
on a 2-core machine (1M rows built in 46.7 s, README's Large training files); the
timeout here is at least 2 hours, and 1 s per 5,000 rows to build beyond that.
"""

import contextlib
import datetime
import logging
import os
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

MIN_TIMEOUT = datetime.timedelta(hours=2)
ROWS_PER_TIMEOUT_SECOND = 5000  # a quarter of the 2-core build rate (21,000 rows/s)


def process_group_timeout(rows: Optional[int] = None) -> datetime.timedelta:
    """How long a collective may wait: MIN_TIMEOUT, or longer for `rows` rows of features
    that rank 0 builds while the others wait (unknown: MIN_TIMEOUT)."""
    scaled = datetime.timedelta(seconds=(rows or 0) / ROWS_PER_TIMEOUT_SECOND)
    return max(MIN_TIMEOUT, scaled)


def init(device: torch.device, rows: Optional[int] = None) -> torch.device:
    """Joins torchrun's process group; returns this rank's device (cuda:LOCAL_RANK).
    `rows`: the rows of features the run may build (see `process_group_timeout`)."""
    if "RANK" not in os.environ or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=process_group_timeout(rows))
    if not is_main():
        logging.getLogger().setLevel(logging.WARNING)
    return device


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    """True on the one process that writes files (rank 0)."""
    return rank() == 0


def is_local_main() -> bool:
    """True on each node's first process (LOCAL_RANK 0)."""
    return int(os.environ.get("LOCAL_RANK", 0)) == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextlib.contextmanager
def local_main_first():
    """Runs the block on each node's local rank 0 first, then on the other ranks."""
    first = is_local_main()
    if not first:
        barrier()
    yield
    if first:
        barrier()


class _Forward(torch.nn.Module):
    """`fn(model, **inputs)` as a module's forward: DDP syncs gradients only through forward."""

    def __init__(self, model: torch.nn.Module, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, **inputs):
        return self.fn(self.model, **inputs)


def wrap(model: torch.nn.Module, fn) -> torch.nn.Module:
    """`fn(model, **inputs)` as a module, inside DDP under torchrun with more than one
    process (one has nothing to all-reduce, and its CPU word embeddings take sparse
    gradients, which DDP refuses: `training.sparse_word_embeddings`)."""
    module = _Forward(model, fn)
    if world_size() == 1:
        return module
    device = next(model.parameters()).device
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None,
        broadcast_buffers=False)


def sync_gradients(model: torch.nn.Module, sync: bool):
    """DDP's no_sync for all but the last gradient-accumulation chunk of a step."""
    if sync or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def shard_batches(batches: list[list[int]]) -> tuple[list[list[int]], list[float]]:
    """This rank's rows of each global batch, and the loss scale of each share.

    DDP averages gradients over ranks, so a share of n of a batch's B rows is
    scaled by n * world / B. A rank left without rows (a last batch smaller
    than the world) runs the batch's first row at scale 0, to join the all-reduce.
    """
    world, me = world_size(), rank()
    if world == 1:
        return batches, [1.0] * len(batches)
    shares, scales = [], []
    for batch in batches:
        share = batch[me::world]
        shares.append(share or batch[:1])
        scales.append(len(share) * world / len(batch))
    return shares, scales


def all_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (itself for one process)."""
    if not dist.is_initialized():
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / world_size()


def my_share(items: list) -> list:
    """Round-robin share of a list (inference batches) for this rank."""
    return items[rank()::world_size()]


def gather_rows(values: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates every rank's (rows, row indices); each row comes from exactly one rank."""
    if not dist.is_initialized():
        return values, order
    parts = [None] * world_size()
    dist.all_gather_object(parts, (values, order))
    parts = [p for p in parts if len(p[1])]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
