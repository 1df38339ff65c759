"""What one invocation carries around, and the small records it writes."""

import glob
import hashlib
import os
import shutil
from dataclasses import dataclass, field

import torch
import transformers

from core import atomic_write_text, finite_json, sha256_file
from processors.base import DataProcessor

from . import distributed
from .checkpoint import PREFIX
from .model import ModelSource

RUN_OUTPUTS = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
               "vocab.txt", "training_stats.json", "eval_results.txt", "eval_results.json",
               "test_results.tsv", "predictions.tsv", "run_config.json", "learning_curves.png")


@dataclass
class Run:
    """The resolved pieces of one invocation: task, model, device, where files go."""

    processor: DataProcessor
    source: ModelSource
    device: torch.device
    precision: str
    tokenizer: object
    model: torch.nn.Module
    output_dir: str
    cache_dir: str
    datasets: dict = field(default_factory=dict)  # split -> FeatureSet


def run_signature(processor: DataProcessor, source: ModelSource, max_seq_length: int,
                  do_lower_case: bool, train_file: str, training: dict) -> dict:
    """What a checkpoint must share with the run that resumes it: the task, the model's
    bytes, the features, the training data's bytes, and `training` (the flags that fix the
    batch order, the learning rate at each step and the loss)."""
    labels = processor.get_labels()
    return {"task_name": processor.task_name, "label_list": labels and list(labels),
            "model_sha256": model_digest(source), "max_seq_length": max_seq_length,
            "do_lower_case": do_lower_case, "processor_settings": processor.settings(),
            "train_data_sha256": sha256_file(train_file), **training}


def model_digest(source: ModelSource) -> str:
    """sha256 over the model's config, vocab and weights files: a model replaced in place
    (same path, another size) is another model. A TF checkpoint is its prefix's files."""
    weights = [source.weights_file] if os.path.isfile(source.weights_file) else sorted(
        glob.glob(glob.escape(source.weights_file) + ".*"))
    digests = [sha256_file(path) for path in [source.config_file, source.vocab_file, *weights]]
    return hashlib.sha256(" ".join(digests).encode()).hexdigest()


def clear_run_outputs(output_dir: str) -> None:
    """--overwrite_output_dir: removes what an earlier run wrote (not the cache)."""
    for path in glob.glob(os.path.join(output_dir, PREFIX + "*")) + [
            os.path.join(output_dir, "best_model"), os.path.join(output_dir, "tensorboard")]:
        shutil.rmtree(path, ignore_errors=True)
    for name in RUN_OUTPUTS:
        path = os.path.join(output_dir, name)
        if os.path.isfile(path):
            os.remove(path)


def write_run_config(run: Run, flag_values: dict) -> None:
    """run_config.json: the flags as given, what they resolved to, the library versions."""
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "world_size": distributed.world_size()}
    resolved = {"model_config": run.source.config_file, "vocab_file": run.source.vocab_file,
                "weights_file": run.source.weights_file, "device": str(run.device),
                "precision": run.precision, "labels": run.processor.get_labels(),
                "problem_type": run.processor.problem_type, "metric": run.processor.metric,
                "cache_dir": run.cache_dir, **versions}
    atomic_write_text(os.path.join(run.output_dir, "run_config.json"),
                      finite_json({"flags": flag_values, "resolved": resolved}, True))


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of dict rows (the per-epoch stats)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[f"{row[k]:.4f}" if isinstance(row.get(k), float) else str(row.get(k, ""))
              for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
