"""Batching: length-grouped random batches for training, length-sorted for inference.

Rows of similar length share a batch, so each batch pads only to its own
longest row. Training stays random: the order is shuffled, rows are sorted by
length only within large shuffled "megabatches", and the batch order is
shuffled again. The batches of an epoch depend only on (seed, epoch), which is
what lets a resumed run skip exactly the batches it already trained on.
"""

from typing import Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


MEGABATCH_BATCHES = 50
LENGTH_BUCKET = 16  # CUDA batches pad to a multiple of this many tokens
# Inference batch sizes: Google's 8 on the CPU; on CUDA, enough rows to fill the GPU
# (CUDA_INFERENCE_TOKENS tokens of max_seq_length), 8 to 128 rows.
CPU_INFERENCE_BATCH = 8
CUDA_INFERENCE_TOKENS = 16384


def inference_batch_size(device: torch.device, max_seq_length: int) -> int:
    """The eval/predict batch size when the user sets none: 8 (Google's) on the CPU; on
    CUDA 128 rows of up to 128 tokens, fewer for longer rows (32 of 512)."""
    if device.type != "cuda":
        return CPU_INFERENCE_BATCH
    return max(CPU_INFERENCE_BATCH, min(128, CUDA_INFERENCE_TOKENS // max_seq_length))


def train_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int
                  ) -> list[list[int]]:
    """All of one epoch's batches (lists of row indices), fixed by seed and epoch."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    step = batch_size * MEGABATCH_BATCHES
    for start in range(0, len(order), step):
        mega = order[start:start + step]
        mega = mega[np.argsort(-lengths[mega], kind="stable")]
        batches += [mega[i:i + batch_size].tolist() for i in range(0, len(mega), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def inference_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches of rows sorted by length (longest first); callers restore the order."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]


def bucketed(batch: dict, bucket: int, longest: int) -> dict:
    """The batch padded (ids 0, mask 0) to a multiple of `bucket` tokens, at most `longest`
    (the dataset's longest row, so never past the model's positions)."""
    length = batch["input_ids"].shape[1]
    width = min(-(-length // bucket) * bucket, max(longest, length))
    if width == length:
        return batch
    return {k: F.pad(v, (0, width - length)) if k != "labels" else v for k, v in batch.items()}


def iterate(dataset, batches: Sequence[list[int]], device: torch.device,
            bucket: Optional[int] = None) -> Iterator[dict]:
    """Yields padded batches on `device`; pinned, non-blocking copies on CUDA, the next
    batch's copy issued before the current one is yielded (so it overlaps the step).

    On CUDA, lengths pad to a multiple of `bucket` (default LENGTH_BUCKET; 1 on the
    CPU): a compiled step replays one CUDA graph per shape, and few lengths keep the
    recordings few. Padded tokens are masked: the logits are those of the unpadded rows.
    A plain loop rather than a DataLoader: collating is cheap, and a DataLoader
    draws from the global RNG at each new iterator, which would shift the
    dropout masks of a resumed run.
    """
    pin = device.type == "cuda"
    bucket = bucket or (LENGTH_BUCKET if device.type == "cuda" else 1)
    longest = int(np.max(dataset.lengths(), initial=0)) if bucket > 1 else 0

    def prepared(indices: list[int]) -> dict:
        batch = dataset.batch(indices)
        if bucket > 1:
            batch = bucketed(batch, bucket, longest)
        return {k: (v.pin_memory() if pin else v).to(device, non_blocking=True)
                for k, v in batch.items()}

    pending = None
    for indices in batches:
        ready, pending = pending, prepared(indices)
        if ready is not None:
            yield ready
    if pending is not None:
        yield pending
