"""What one invocation carries around, and the small records it writes."""

import glob
import hashlib
import os
import shutil
from dataclasses import dataclass, field
from importlib import metadata

import torch

from modeling.device import choose_precision, describe_device
from modeling.disk import atomic_write_text, finite_json
from modeling.sha256 import sha256_file
from modeling.export import saved_global_step
from modeling.heads import MULTI_LABEL, REGRESSION
from modeling.model import ModelSource, default_model_dir, model_files
from processors.base import DataProcessor

from . import distributed
from .checkpoint import PREFIX

# What a run writes into output_dir (and learning_curves.png, which earlier versions drew),
# cleared by --overwrite_output_dir.
RUN_OUTPUTS = ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
               "vocab.txt", "training_stats.json", "eval_results.txt", "eval_results.json",
               "test_results.tsv", "predictions.tsv", "run_config.json", "learning_curves.svg",
               "learning_curves.png", "model.onnx", "model_int8.onnx", "integrity.json",
               "search_results.txt", "report.html")


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
    examples: dict = field(default_factory=dict)  # split -> SplitExamples
    datasets: dict = field(default_factory=dict)  # split -> FeatureSet
    pooler_identity: bool = False  # an untrained pooler started as the identity
    dev_logits: dict = field(default_factory=dict)  # step -> the dev logits there


def run_signature(processor: DataProcessor, source: ModelSource, max_seq_length: int,
                  do_lower_case: bool, train_examples_sha256: str, training: dict) -> dict:
    """What a checkpoint must share with the run that resumes it: the task, the model's
    bytes, the features, the training examples (their digest, as the processor produced them), and
    `training` (the flags that fix the batch order, the learning rate at each step and
    the loss)."""
    labels = processor.get_labels()
    return {"task_name": processor.task_name, "label_list": labels and list(labels),
            "model_sha256": model_digest(source), "max_seq_length": max_seq_length,
            "do_lower_case": do_lower_case, "processor_settings": processor.settings(),
            "train_examples_sha256": train_examples_sha256, **training}


def model_digest(source: ModelSource) -> str:
    """sha256 over the model's config, tokenizer and weights files: a model replaced in place
    (same path, another size) is another model. A TF checkpoint is its prefix's files."""
    digests = [sha256_file(path) for path in model_files(source)]
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
    versions = {"torch": torch.__version__, "transformers": metadata.version("transformers"),
                "world_size": distributed.world_size()}
    resolved = {"model_config": run.source.config_file, "vocab_file": run.source.vocab_file,
                "weights_file": run.source.weights_file, "device": str(run.device),
                "precision": run.precision, "labels": run.processor.get_labels(),
                "problem_type": run.processor.problem_type, "metric": run.processor.metric,
                "cache_dir": run.cache_dir, **versions}
    atomic_write_text(os.path.join(run.output_dir, "run_config.json"),
                      finite_json({"flags": flag_values, "resolved": resolved}, True))


def describe_run(run: Run, requested_precision: str, num_examples: dict) -> list[str]:
    """A run's first log lines: device and precision (and why), model, task, examples per
    split (`num_examples`), output dir; and whether the pooler started as the identity."""
    precision, why = choose_precision(requested_precision, run.device)
    processes = distributed.world_size()
    device = describe_device(run.device) + (f", {processes} processes" if processes > 1 else "")
    return [f"Device: {device} | precision: {precision} ({why})",
            f"Model: {_describe_model(run.source, run.model.config)}",
            f"Task: {run.processor.task_name} ({_describe_labels(run.processor)}) | " +
            ", ".join(f"{split} {n}" for split, n in num_examples.items()) + " examples",
            f"Output: {os.path.abspath(run.output_dir)}"] + (
        ["Pooler: untrained in the checkpoint (zero bias), starts as the identity"]
        if run.pooler_identity else [])


def _describe_model(source: ModelSource, config) -> str:
    """The model's folder (or files), size, and the step it was fine-tuned to."""
    files = (source.config_file, source.vocab_file, source.weights_file)
    folder = os.path.dirname(os.path.abspath(source.weights_file))
    where = folder if all(os.path.dirname(os.path.abspath(f)) == folder for f in files) \
        else ", ".join(files)
    if folder == os.path.abspath(default_model_dir()):
        where = f"the embedded all-MiniLM-L6-v2 at {where}"
    step = saved_global_step(source.config_file)
    return (f"{where} ({config.num_hidden_layers} layers, hidden {config.hidden_size}" +
            (f"; fine-tuned, global step {step})" if step else ")"))


def _describe_labels(processor: DataProcessor) -> str:
    if processor.problem_type == REGRESSION:
        return "regression"
    labels = len(processor.get_labels())
    return f"{labels} labels" + (", multi-label" if processor.problem_type == MULTI_LABEL else "")


def format_table(rows: list[dict]) -> str:
    """A fixed-width text table of dict rows (the per-epoch stats)."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[f"{row[k]:.4f}" if isinstance(row.get(k), float) else str(row.get(k, ""))
              for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
