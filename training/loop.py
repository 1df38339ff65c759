"""The training loop: length-grouped batches, mixed precision, checkpoints, resume.

Everything a step depends on (weights, optimizer, scheduler, RNG, the epoch's
batch order) is in the checkpoint or derived from (seed, epoch), so a run that
is killed and restarted ends with the same weights as one that never stopped.
"""

import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from tqdm import tqdm

from modeling.compiled import training_forward
from modeling.device import autocast, keep_freed_memory
from modeling.errors import TrainingDiverged
from modeling.losses import training_loss

from . import distributed
from .checkpoint import (PREFIX, list_checkpoints, load_latest_checkpoint, rng_state,
                         save_checkpoint, set_rng_state)
from .data import iterate, train_batches
from .optimization import create_optimizer

logger = logging.getLogger(__name__)

LOG_EVERY = 10  # steps between progress-bar updates (each one syncs with the device)


@dataclass(frozen=True)
class TrainArgs:
    output_dir: str
    train_batch_size: int
    gradient_accumulation_steps: int
    learning_rate: float
    num_train_epochs: float
    warmup_proportion: float
    weight_decay: float
    adam_epsilon: float
    max_grad_norm: float
    save_checkpoints_steps: int
    keep_checkpoint_max: int
    seed: int
    precision: str
    class_weights: Optional[tuple[float, ...]] = None  # per label, for cross-entropy
    problem_type: Optional[str] = None  # transformers' name; None is single-label
    compile: bool = False  # compile the forward and backward (compiled.py)
    cuda_path: bool = False  # take a CUDA run's branches on any device (the tests' switch)

    @property
    def resume_key(self) -> dict:
        """What a resumed run must share with its checkpoint (its signature adds these):
        they fix the batch order, the rate at each step, the loss, the optimizer's steps,
        the clipping and the precision."""
        return {"train_batch_size": self.train_batch_size,
                "num_train_epochs": self.num_train_epochs, "learning_rate": self.learning_rate,
                "warmup_proportion": self.warmup_proportion, "seed": self.seed,
                "class_weights": self.class_weights and list(self.class_weights),
                "weight_decay": self.weight_decay, "adam_epsilon": self.adam_epsilon,
                "max_grad_norm": self.max_grad_norm, "precision": self.precision}


def count_train_steps(num_examples: int, batch_size: int, epochs: float) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps); a partial last batch is a step."""
    steps_per_epoch = math.ceil(num_examples / batch_size)
    return steps_per_epoch, max(1, math.ceil(steps_per_epoch * epochs))


def _train_step(model, batch: dict, args: TrainArgs, device, optimizer, scheduler, scaler,
                scale: float = 1.0):
    """One optimizer step over `batch`, split into gradient-accumulation chunks; returns
    (loss, gradient norm before clipping, or None with fp16's grad scaler), on the device.

    `model(**inputs)` returns logits (see `distributed.wrap`); `scale` weights this
    rank's share of a global batch (1 for a single process).
    """
    size = batch["input_ids"].shape[0]
    chunk = math.ceil(size / args.gradient_accumulation_steps)
    total = torch.zeros((), device=device)
    for start in range(0, size, chunk):
        part = {k: v[start:start + chunk] for k, v in batch.items()}
        labels = part.pop("labels")
        with distributed.sync_gradients(model, start + chunk >= size):
            with autocast(device, args.precision):
                logits = model(**part)
            loss = training_loss(logits, labels, args.problem_type, args.class_weights) * (
                labels.shape[0] / size * scale)
            (scaler.scale(loss) if scaler else loss).backward()
        total += loss.detach()
    norm = None  # fp16: the grad scaler skips a step with non-finite gradients itself
    if scaler:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
    else:
        norm = optimizer.clip_and_step(args.max_grad_norm)  # skips a non-finite step
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return total, norm


class _Loop:
    """The state of one training run, and the steps that advance it."""

    def __init__(self, model, train_set, args: TrainArgs, device, signature: dict):
        self.model, self.train_set, self.args, self.device = model, train_set, args, device
        self.signature = signature
        self.steps_per_epoch, self.num_steps = count_train_steps(
            len(train_set), args.train_batch_size, args.num_train_epochs)
        self.optimizer, self.scheduler = create_optimizer(
            model, args.learning_rate, args.weight_decay, args.adam_epsilon, self.num_steps,
            int(self.num_steps * args.warmup_proportion))
        self.scaler = torch.amp.GradScaler(device.type) if args.precision == "fp16" else None
        self.step, self.loss_sum, self.loss_count, self.stats = 0, 0.0, 0, []
        self.pending, self.pending_count = torch.zeros((), device=device), 0
        # The first step whose loss, and whose gradient norm, was not finite (0: none yet).
        self.first_bad = torch.zeros(2, dtype=torch.long, device=device)
        state = load_latest_checkpoint(args.output_dir, model, signature)
        self.resumed_at = state["global_step"] if state else None
        if state:
            if state["optimizer"] is not None:  # None: the run had finished
                self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler and state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
            set_rng_state(state["rng"])
            self.step, self.stats = state["global_step"], state["stats"]
            self.loss_sum, self.loss_count = state["loss_sum"], state["loss_count"]
        self.forward = distributed.wrap(
            model, training_forward(args.compile, args.precision, args.cuda_path))

    def flush(self) -> float:
        """Adds the pending device-side losses to the epoch's (one host sync); raises
        TrainingDiverged if a loss or gradient norm since the last flush was not finite."""
        if self.pending_count:
            loss = distributed.all_mean(self.pending).item()
            first_bad = self.first_bad.tolist()
            if not math.isfinite(loss) or any(first_bad):
                raise TrainingDiverged(self._diverged(*first_bad))
            self.loss_sum += loss
            self.loss_count += self.pending_count
            self.pending.zero_()
            self.pending_count = 0
        return self.loss_sum / max(1, self.loss_count)

    def checkpoint(self, last: bool = False) -> None:
        """Saves the run; the last one (`last`: stopped early) skips the optimizer's moments
        (2x the weights' size), which nothing reads once the run has finished."""
        self.flush()
        done = last or self.step == self.num_steps
        state = {"global_step": self.step,
                 "optimizer": None if done else self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "rng": rng_state(self.device),
                 "scaler": self.scaler.state_dict() if self.scaler else None,
                 "loss_sum": self.loss_sum, "loss_count": self.loss_count,
                 "stats": self.stats, "signature": self.signature}
        if distributed.is_main():
            save_checkpoint(self.args.output_dir, self.model, state, self.args.keep_checkpoint_max)

    def epoch_batches(self) -> list[list[int]]:
        """The rest of the current epoch's batches, after those already trained on."""
        epoch = self.step // self.steps_per_epoch
        batches = train_batches(self.train_set.lengths(), self.args.train_batch_size,
                                self.args.seed, epoch)
        return batches[self.step - epoch * self.steps_per_epoch:][:self.num_steps - self.step]

    def train_on(self, batch: dict, scale: float = 1.0) -> None:
        loss, norm = _train_step(self.forward, batch, self.args, self.device, self.optimizer,
                                 self.scheduler, self.scaler, scale)
        self.pending += loss
        self.pending_count += 1
        self.step += 1
        values = torch.stack([loss, torch.zeros_like(loss) if norm is None else norm.to(loss)])
        self.first_bad = torch.where((self.first_bad == 0) & ~torch.isfinite(values),
                                     self.step, self.first_bad)  # on the device: no sync

    def _diverged(self, loss_step: int, norm_step: int) -> str:
        """The one-line report of a non-finite loss or gradient norm. A checkpoint is called
        good only if a step after it succeeded: one that diverges at once may be damaged."""
        step = min(s for s in (loss_step, norm_step, self.step) if s)
        what = "gradient norm" if norm_step == step != loss_step else "loss"
        head = f"training diverged: the {what} was not finite at step {step}"
        rate = f"--learning_rate={self.args.learning_rate}"
        if self.resumed_at is not None and step == self.resumed_at + 1:
            resumed = os.path.join(self.args.output_dir, f"{PREFIX}{self.resumed_at}")
            return (f"{head}, the first after resuming from {resumed} (which may be damaged); "
                    f"pass --overwrite_output_dir to start over, or a lower {rate}. No model "
                    "was saved")
        cause = (f"lower {rate}" if step > 1 else
                 "the first batch's loss overflows: check --class_weights and the model")
        kept = list_checkpoints(self.args.output_dir)
        return (f"{head}; {cause}. "
                + (f"Kept the last good checkpoint, {kept[-1]}; no model was saved" if kept else
                   "No checkpoint or model was saved"))


def _epochs(loop: _Loop, bar, end_of_epoch, on_log, should_stop) -> None:
    """Trains from `loop.step` to the end (or a stop): epoch ends, checkpoints, progress."""
    args, start, stop = loop.args, time.perf_counter(), False
    while loop.step < loop.num_steps and not (should_stop and should_stop(loop.stats)):
        shares, scales = distributed.shard_batches(loop.epoch_batches())
        for batch, scale in zip(iterate(loop.train_set, shares, loop.device), scales):
            loop.train_on(batch, scale)
            bar.update(1)
            if loop.step % LOG_EVERY == 0:
                loss, lr = loop.flush(), loop.scheduler.get_last_lr()[0]
                bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}")
                if on_log:
                    on_log(loop.step, loss, lr)
            if loop.step % loop.steps_per_epoch == 0 or loop.step == loop.num_steps:
                row = {"epoch": math.ceil(loop.step / loop.steps_per_epoch), "step": loop.step,
                       "train_loss": loop.flush(), "time_s": round(time.perf_counter() - start, 2)}
                loop.stats.append(end_of_epoch(row, list(loop.stats)) if end_of_epoch else row)
                loop.model.train()
                loop.loss_sum, loop.loss_count, start = 0.0, 0, time.perf_counter()
                stop = bool(should_stop and should_stop(loop.stats))
            if loop.step % args.save_checkpoints_steps == 0 or loop.step == loop.num_steps or stop:
                loop.checkpoint(last=stop)
            if stop:
                return


@contextlib.contextmanager
def sparse_word_embeddings(model, device: torch.device, cuda_path: bool = False):
    """Sparse word-embedding gradients while training in one CPU process (see
    optimization.BertAdamW), unless taking CUDA's branches. A GPU zero-fills the dense one
    in microseconds, and DDP all-reduces dense gradients."""
    embeddings = model.get_input_embeddings()
    before = embeddings.sparse
    embeddings.sparse = device.type == "cpu" and not cuda_path and distributed.world_size() == 1
    try:
        yield
    finally:
        embeddings.sparse = before


def train(model, train_set, args: TrainArgs, device: torch.device, signature: dict,
          end_of_epoch: Optional[Callable[[dict, list[dict]], dict]] = None,
          on_log: Optional[Callable[[int, float, float], None]] = None,
          should_stop: Optional[Callable[[list[dict]], bool]] = None,
          on_start: Optional[Callable[[], None]] = None) -> list[dict]:
    """Trains `model` on `train_set` (resuming from a checkpoint); returns per-epoch stats.

    `on_start()` runs once the checkpoint to resume from (if any) has passed its checks:
    a run refused there has written nothing.
    `end_of_epoch(row, history)` may add dev results to each epoch's stats row;
    `history` holds the earlier epochs' rows, those before a resume included.
    `on_log(step, loss, learning_rate)` gets what the progress bar shows.
    `should_stop(stats)`, asked after each epoch (and on resuming), ends training early;
    the epoch it stops at is checkpointed as the last.
    """
    keep_freed_memory()
    loop = _Loop(model, train_set, args, device, signature)
    if on_start:
        on_start()
    logger.info("***** Running training *****\n  Num examples = %d\n  Batch size = %d\n"
                "  Num steps = %d (%d per epoch)", len(train_set), args.train_batch_size,
                loop.num_steps, loop.steps_per_epoch)
    if loop.step:
        logger.info("Resumed at step %d of %d", loop.step, loop.num_steps)
    model.train()
    with tqdm(total=loop.num_steps, initial=loop.step, desc="train", unit="step",
              dynamic_ncols=True, disable=not distributed.is_main()) as bar, \
            sparse_word_embeddings(model, device, args.cuda_path):
        _epochs(loop, bar, end_of_epoch, on_log, should_stop)  # the bar closes even on an error
    return loop.stats
