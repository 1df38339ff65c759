"""The checks run_classifier.py makes before any work: flags, paths, the model's files, rows.

They read the flag values as attributes of `f` (run_classifier passes its FLAGS;
only it imports `flags`), and import no torch: a user error is reported in a
fraction of a second, with nothing written.
"""

import importlib.util
import math
import os

from modeling.errors import check
from modeling.files import ONNX_FILES
from modeling.heads import MULTI_LABEL, REGRESSION, SINGLE_LABEL
from modeling.model import check_trained_labels, is_model_dir, resolve_source
from processors import InputError, get_processor
from processors.examples import SplitExamples
from processors.metrics import PROBLEM_TYPES

from . import plot
from .model_checks import (check_compile_model, check_long_text, check_model, check_model_files,
                           check_onnx_file, check_token_types, check_windows_model)
from .search_space import parse_search_space

PROCESSOR_FLAGS = ("data_format", "text_a_column", "text_b_column", "label_column", "labels",
                   "has_header")
POSITIVE = ("train_batch_size", "eval_batch_size", "predict_batch_size", "learning_rate",
            "num_train_epochs", "save_checkpoints_steps", "gradient_accumulation_steps",
            "adam_epsilon", "max_grad_norm")
SPLIT_MODES = (("train", "do_train"), ("dev", "do_eval"), ("test", "do_predict"))
FINITE = ("learning_rate", "num_train_epochs", "warmup_proportion", "weight_decay",
          "adam_epsilon", "max_grad_norm", "multi_label_threshold")
SEED_MAX = 2**32 - 1  # numpy's legacy seeds; torch takes these too
MAX_STEPS = 2**63 - 1  # the step counter is a 64-bit integer on the device


def check_finite(f) -> None:
    """Numbers torch and numpy would take but train nothing with, or refuse with a traceback:
    an infinite rate passes `> 0` and makes every weight NaN."""
    for name in FINITE:
        value = getattr(f, name)
        check(math.isfinite(value), f"--{name}={value}: must be a finite number")
    check(0 <= f.seed <= SEED_MAX, f"--seed={f.seed}: must be in [0, {SEED_MAX}]")


def check_numbers(f) -> None:
    """The flags one by one and against each other."""
    check(f.do_train or f.do_eval or f.do_predict or f.export,
          "at least one of --do_train, --do_eval, --do_predict or --export must be set")
    check_finite(f)
    for name in POSITIVE:
        check(getattr(f, name) > 0, f"--{name}={getattr(f, name)}: must be positive")
    check(0 <= f.warmup_proportion < 1,
          f"--warmup_proportion={f.warmup_proportion}: must be in [0, 1)")
    check(f.weight_decay >= 0, f"--weight_decay={f.weight_decay}: must be >= 0")
    check(f.keep_checkpoint_max >= 1,
          f"--keep_checkpoint_max={f.keep_checkpoint_max}: must be at least 1")
    check(0 < f.multi_label_threshold < 1,
          f"--multi_label_threshold={f.multi_label_threshold}: must be in (0, 1)")
    check(f.gradient_accumulation_steps <= f.train_batch_size,
          f"--gradient_accumulation_steps={f.gradient_accumulation_steps}: must not "
          f"exceed --train_batch_size={f.train_batch_size}")
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # torchrun's; torch not imported yet
    check(f.train_batch_size >= processes,
          f"--train_batch_size={f.train_batch_size}: smaller than the "
          f"{processes} processes torchrun started (it is the global batch)")
    check(f.early_stopping_patience >= 0,
          f"--early_stopping_patience={f.early_stopping_patience}: must be >= 0")
    check(f.early_stopping_threshold >= 0,
          f"--early_stopping_threshold={f.early_stopping_threshold}: must be >= 0")
    check(not f.early_stopping_patience or (f.do_train and f.do_eval),
          "--early_stopping_patience needs --do_train and --do_eval (it watches the dev score)")
    check_long_text(f)
    if f.tensorboard:
        plot.check_tensorboard()


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


def check_overwrite(f) -> None:
    """--overwrite_output_dir deletes an earlier run's outputs before anything is read: never
    where this run reads its model, data or cache (the cache folder inside output_dir is kept)."""
    if not (f.do_train and f.overwrite_output_dir):
        return
    out = os.path.realpath(f.output_dir)
    for name in ("init_checkpoint", "bert_config_file", "vocab_file", "data_dir", "cache_dir"):
        value = getattr(f, name)
        path = value and os.path.realpath(value)
        if not path or (name == "cache_dir" and path != out and _within(path, out)
                        and not _cleared(os.path.relpath(path, out))):
            continue
        check(not _within(path, out), f"--output_dir={f.output_dir}: holds --{name}={value}, "
              "which --overwrite_output_dir would delete; choose another --output_dir")
        check(not _within(out, path), f"--output_dir={f.output_dir}: is inside --{name}="
              f"{value}, which this run reads; choose an --output_dir outside it")


def check_paths(f) -> bool:
    """Checks data_dir and output_dir; returns whether output_dir holds a trained model."""
    for name in ("data_dir", "output_dir"):
        check(bool(getattr(f, name)), f"--{name} is required")
    check(os.path.isdir(f.data_dir), f"--data_dir={f.data_dir}: not a directory")
    check(os.access(f.data_dir, os.R_OK | os.X_OK), f"--data_dir={f.data_dir}: permission "
          "denied (the folder's files cannot be read)")
    out = f.output_dir
    check_output_dir(out)
    searched = os.path.isfile(os.path.join(out, "search_results.txt"))
    trained = is_model_dir(out) and not (  # (a search goes on in its own output_dir)
        f.do_train and (f.overwrite_output_dir or (f.search_trials and searched)))
    check(not (trained and f.do_train), _finished_message(out))
    check(trained or f.do_train or f.init_checkpoint is not None,
          f"--output_dir={out}: holds no trained model to evaluate or predict with; "
          "add --do_train or pass --init_checkpoint")
    return trained


def check_deployment(f, trained: bool) -> None:
    """--export and --predict_backend: the packages, and a model to export or run."""
    backend = f.predict_backend
    if not (f.export or backend != "torch"):
        return
    flag = f"--export={f.export}" if f.export else f"--predict_backend={backend}"
    check(all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "onnxscript")),
          f"{flag}: needs onnx, onnxscript and onnxruntime: pip install "
          "'bert-run-classifier[onnx]'")
    check(int(os.environ.get("WORLD_SIZE", "1")) == 1, f"{flag}: not under torchrun")
    check(not f.export or f.do_train or trained, f"--export={f.export}: needs --do_train or a "
          f"trained model in --output_dir={f.output_dir}")
    if backend == "torch":
        return
    check(f.do_predict, f"--predict_backend={backend}: needs --do_predict")
    made = f.export == "onnx_int8" or f.export == "onnx" and backend == "onnxruntime"
    path = os.path.join(f.output_dir, ONNX_FILES[backend])
    export = "onnx_int8" if backend.endswith("int8") else "onnx"
    check(made or trained and os.path.isfile(path), f"--predict_backend={backend}: no {path}; "
          f"add --export={export}")
    if not made:
        check_onnx_file(path, f"--predict_backend={backend}", export)


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


def check_train_steps(f, num_examples: int) -> None:
    """The step count must fit the step counter (--num_train_epochs=1e30 would not)."""
    steps = math.ceil(num_examples / f.train_batch_size) * f.num_train_epochs
    check(steps <= MAX_STEPS, f"--num_train_epochs={f.num_train_epochs}: {steps:.3g} "
          f"optimizer steps ({num_examples} examples, --train_batch_size="
          f"{f.train_batch_size}); at most {MAX_STEPS} fit")


class _With:
    """`f` with one flag's value replaced."""

    def __init__(self, f, name: str, value):
        self._f, self._name, self._value = f, name, value

    def __getattr__(self, name: str):
        return self._value if name == self._name else getattr(self._f, name)


def check_class_weights(f, processor) -> None:
    if f.class_weights != "none":  # (imports torch, as a weighted run will anyway)
        from modeling.losses import parse_class_weights
        parse_class_weights(f.class_weights, processor.get_labels(), processor.problem_type)


def check_search(f, processor, source) -> None:
    """--search_*: what a search needs, and every searched flag at the ends of its range."""
    check(f.search_trials >= 0, f"--search_trials={f.search_trials}: must be >= 0")
    if not f.search_trials:
        check(f.search_space is None and f.search_storage is None and f.search_study is None,
              "--search_space, --search_storage and --search_study need --search_trials")
        return
    check(f.do_train and f.do_eval, "--search_trials needs --do_train and --do_eval (trials "
          "are compared on the dev score)")
    check(not f.overwrite_output_dir, "--overwrite_output_dir: not with --search_trials (a "
          "search goes on where it stopped; to start over, use another --output_dir)")
    check(int(os.environ.get("WORLD_SIZE", "1")) == 1, "--search_trials: not under torchrun "
          "(start one search worker per machine instead)")
    check(importlib.util.find_spec("optuna") is not None,
          "--search_trials needs optuna: pip install 'bert-run-classifier[search]'")
    for param in parse_search_space(f.search_space):
        for value in param.extremes():
            try:
                variant = _With(f, param.name, value)
                check_numbers(variant)
                check_model(source, variant.do_lower_case, variant.max_seq_length)
                check_class_weights(variant, processor)
            except InputError as e:
                raise InputError(f"--search_space: {param}: {e}") from None


def validate(f):
    """The checks that need no torch: flags, paths, the model's files, every example.

    Returns (processor, model source, whether output_dir holds a trained model,
    {split: SplitExamples} of the splits the run uses, each checked and hashed).
    """
    processor = get_processor(f.task_name or "", f.data_dir,
                              **{name: getattr(f, name) for name in PROCESSOR_FLAGS})
    check_numbers(f)
    trained = check_paths(f)
    check_overwrite(f)
    check_deployment(f, trained)
    if f.cache_dir:
        check_output_dir(f.cache_dir, "cache_dir")
    check_processor(processor)
    check_model_files(f.output_dir if trained else f.init_checkpoint)  # before it is read
    source = resolve_source(f.output_dir if trained else f.init_checkpoint,
                            f.bert_config_file, f.vocab_file)
    if trained:
        check_trained_labels(f.output_dir, processor.get_labels(), processor.problem_type)
    check_class_weights(f, processor)
    check_model(source, f.do_lower_case, f.max_seq_length)
    check_windows_model(f, source)
    check_compile_model(f, source)
    check_search(f, processor, source)
    examples = {split: SplitExamples(processor, f.data_dir, split)
                for split, mode in SPLIT_MODES if getattr(f, mode)}
    check_token_types(source, processor.task_name, examples)
    if "train" in examples:
        check_train_steps(f, examples["train"].count)
    return processor, source, trained, examples
