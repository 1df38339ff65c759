"""The checks run_classifier.py makes before any work: paths, deployment, the processor,
the search, the model's files; each takes the values it checks as plain arguments.

run_classifier.py's `validate` calls them in order (the flag names, and the checks of
one flag's number, are the program's). They import no torch: a user error is reported
in a fraction of a second, with nothing written.
"""

import importlib.util
import math
import os
from typing import Optional

from modeling.errors import check
from modeling.files import ONNX_FILES
from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL, parse_class_weights
from modeling.model import is_model_dir
from processors.metrics import PROBLEM_TYPES

from . import plot
from .model_checks import check_onnx_file

MAX_STEPS = 2**63 - 1  # the step counter is a 64-bit integer on the device


def _processes() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; torch not imported yet


def check_batch(train_batch_size: int, gradient_accumulation_steps: int) -> None:
    """The train batch against its chunks and against torchrun's processes (it is global)."""
    check(gradient_accumulation_steps <= train_batch_size,
          f"--gradient_accumulation_steps={gradient_accumulation_steps}: must not "
          f"exceed --train_batch_size={train_batch_size}")
    processes = _processes()
    check(train_batch_size >= processes,
          f"--train_batch_size={train_batch_size}: smaller than the "
          f"{processes} processes torchrun started (it is the global batch)")


def check_output_dir(out: str, flag: str = "output_dir") -> None:
    """output_dir (or cache_dir) must be a writable directory, or one that can be created."""
    path = os.path.abspath(out)
    if os.path.exists(path):
        check(os.path.isdir(path), f"--{flag}={out}: not a directory")
        check(os.access(path, os.W_OK | os.X_OK), f"--{flag}={out}: not writable")
        return
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    check(os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK),
          f"--{flag}={out}: cannot create it: {parent} is not a writable directory")


def _finished_message(out: str) -> str:
    """Why --do_train stops in a directory that holds a model: what the model is."""
    if os.path.isfile(os.path.join(out, "search_results.txt")):
        return (f"--output_dir={out}: a search there already finished (search_results.txt); "
                "add --search_trials to go on with it, choose another --output_dir, or drop "
                "--do_train to use its model")
    if os.path.isfile(os.path.join(out, plot.STATS_FILE)):
        return (f"--output_dir={out}: training there already finished; pass "
                "--overwrite_output_dir to train again, or drop --do_train to use that model")
    return (f"--output_dir={out}: holds a model that no run trained there (config.json and "
            "weights, no training_stats.json); to fine-tune it, pass it as --init_checkpoint "
            "and choose another --output_dir")


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _cleared(relative: str) -> bool:
    """Whether --overwrite_output_dir deletes this path inside output_dir (its folders)."""
    top = relative.split(os.sep)[0]
    return top in ("best_model", "tensorboard") or top.startswith("checkpoint-")


def check_overwrite(output_dir: str, inputs: dict, cache_dir: Optional[str]) -> None:
    """--overwrite_output_dir deletes an earlier run's outputs before anything is read: never
    where this run reads its model, data or cache (the cache folder inside output_dir is kept).
    `inputs`: {flag name: path or None} of what the run reads besides the cache."""
    out = os.path.realpath(output_dir)
    cache = cache_dir and os.path.realpath(cache_dir)
    kept = cache and cache != out and _within(cache, out) and not _cleared(
        os.path.relpath(cache, out))
    for name, value in [*inputs.items(), ("cache_dir", None if kept else cache_dir)]:
        path = value and os.path.realpath(value)
        if not path:
            continue
        check(not _within(path, out), f"--output_dir={output_dir}: holds --{name}={value}, "
              "which --overwrite_output_dir would delete; choose another --output_dir")
        check(not _within(out, path), f"--output_dir={output_dir}: is inside --{name}="
              f"{value}, which this run reads; choose an --output_dir outside it")


def check_paths(data_dir: Optional[str], output_dir: Optional[str], do_train: bool,
                overwrite_output_dir: bool, search_trials: int,
                init_checkpoint: Optional[str]) -> bool:
    """Checks data_dir and output_dir; returns whether output_dir holds a trained model."""
    check(bool(data_dir), "--data_dir is required")
    check(bool(output_dir), "--output_dir is required")
    check(os.path.isdir(data_dir), f"--data_dir={data_dir}: not a directory")
    check(os.access(data_dir, os.R_OK | os.X_OK), f"--data_dir={data_dir}: permission "
          "denied (the folder's files cannot be read)")
    out = output_dir
    check_output_dir(out)
    searched = os.path.isfile(os.path.join(out, "search_results.txt"))
    trained = is_model_dir(out) and not (  # (a search goes on in its own output_dir)
        do_train and (overwrite_output_dir or (search_trials and searched)))
    check(not (trained and do_train), _finished_message(out))
    check(trained or do_train or init_checkpoint is not None,
          f"--output_dir={out}: holds no trained model to evaluate or predict with; "
          "add --do_train or pass --init_checkpoint")
    return trained


def check_deployment(export: Optional[str], predict_backend: str, do_train: bool,
                     do_predict: bool, output_dir: str, trained: bool) -> None:
    """--export and --predict_backend: the packages, and a model to export or run."""
    backend = predict_backend
    if not (export or backend != "torch"):
        return
    flag = f"--export={export}" if export else f"--predict_backend={backend}"
    check(all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
          f"{flag}: needs onnx, onnxscript and onnxruntime: pip install "
          "'bert-run-classifier[onnx]'")
    check(_processes() == 1, f"{flag}: not under torchrun")
    check(not export or do_train or trained, f"--export={export}: needs --do_train or a "
          f"trained model in --output_dir={output_dir}")
    if backend == "torch":
        return
    check(do_predict, f"--predict_backend={backend}: needs --do_predict")
    made = export == "onnx_int8" or export == "onnx" and backend == "onnxruntime"
    path = os.path.join(output_dir, ONNX_FILES[backend])
    onnx = "onnx_int8" if backend.endswith("int8") else "onnx"
    check(made or trained and os.path.isfile(path), f"--predict_backend={backend}: no {path}; "
          f"add --export={onnx}")
    if not made:
        check_onnx_file(path, f"--predict_backend={backend}", onnx)


def check_processor(processor) -> None:
    """What a processor declares, checked before any work: a metric scikit-learn cannot
    compute would otherwise fail after a whole epoch of training."""
    task, problem_type, metric = (f"--task_name={processor.task_name}", processor.problem_type,
                                  processor.metric)
    check(problem_type in (SINGLE_LABEL, MULTI_LABEL, REGRESSION), f"{task}: unknown "
          f"problem_type {problem_type!r}; expected {SINGLE_LABEL}, {MULTI_LABEL} or {REGRESSION}")
    check(metric in PROBLEM_TYPES,
          f"{task}: unknown metric {metric!r}; expected one of {', '.join(PROBLEM_TYPES)}")
    check(PROBLEM_TYPES[metric] == problem_type,
          f"{task}: metric {metric!r} scores {PROBLEM_TYPES[metric]}, not {problem_type}")
    labels = processor.get_labels()
    if problem_type == REGRESSION:
        check(labels is None, f"{task}: get_labels() returned {labels!r}; a regression task "
              "has none (return None)")
        return
    least = 1 if problem_type == MULTI_LABEL else 2
    check(isinstance(labels, (list, tuple)) and len(labels) >= least and len(set(labels)) == len(
        labels) and all(isinstance(name, str) and name for name in labels),
        f"{task}: get_labels() returned {labels!r}; expected at least {least} distinct, "
        "non-empty label names")
    check(metric not in ("f1", "acc_and_f1") or len(labels) == 2, f"{task}: metric {metric!r} "
          f"needs exactly 2 labels; get_labels() returned {len(labels)}")


def check_train_steps(num_examples: int, train_batch_size: int, num_train_epochs: float
                      ) -> None:
    """The step count must fit the step counter (--num_train_epochs=1e30 would not)."""
    steps = math.ceil(num_examples / train_batch_size) * num_train_epochs
    check(steps <= MAX_STEPS, f"--num_train_epochs={num_train_epochs}: {steps:.3g} "
          f"optimizer steps ({num_examples} examples, --train_batch_size="
          f"{train_batch_size}); at most {MAX_STEPS} fit")


def check_class_weights(class_weights: str, processor) -> None:
    parse_class_weights(class_weights, processor.get_labels(), processor.problem_type)


def check_search(search_trials: int, search_space: Optional[str], search_storage: Optional[str],
                 search_study: Optional[str], do_train: bool, do_eval: bool,
                 overwrite_output_dir: bool) -> None:
    """--search_*: what a search needs (the program checks each searched flag's range)."""
    check(search_trials >= 0, f"--search_trials={search_trials}: must be >= 0")
    if not search_trials:
        check(search_space is None and search_storage is None and search_study is None,
              "--search_space, --search_storage and --search_study need --search_trials")
        return
    check(do_train and do_eval, "--search_trials needs --do_train and --do_eval (trials "
          "are compared on the dev score)")
    check(not overwrite_output_dir, "--overwrite_output_dir: not with --search_trials (a "
          "search goes on where it stopped; to start over, use another --output_dir)")
    check(_processes() == 1, "--search_trials: not under torchrun "
          "(start one search worker per machine instead)")
    check(importlib.util.find_spec("optuna") is not None,
          "--search_trials needs optuna: pip install 'bert-run-classifier[search]'")
