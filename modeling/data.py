"""Batching: length-grouped random batches for training, length-sorted for inference.

Rows of similar length share a batch, so each batch pads only to its own
longest row. Training stays random: the order is shuffled, rows are sorted by
length only within large shuffled "megabatches", and the batch order is
shuffled again. The batches of an epoch depend only on (seed, epoch), which is
what lets a resumed run skip exactly the batches it already trained on.
"""

from typing import Iterator, Sequence

import numpy as np
import torch

from processors.features import collate

MEGABATCH_BATCHES = 50


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


def iterate(dataset, batches: Sequence[list[int]], device: torch.device) -> Iterator[dict]:
    """Yields padded batches on `device`; pinned, non-blocking copies on CUDA.

    A plain loop rather than a DataLoader: collating is cheap, and a DataLoader
    draws from the global RNG at each new iterator, which would shift the
    dropout masks of a resumed run.
    """
    pin = device.type == "cuda"
    for indices in batches:
        batch = collate([dataset[i] for i in indices])
        yield {k: (v.pin_memory() if pin else v).to(device, non_blocking=True)
               for k, v in batch.items()}
