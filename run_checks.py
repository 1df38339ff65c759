"""The checks run_classifier.py makes before any work: flags, paths, the model's files, rows.

They read the flag values as attributes of `f` (run_classifier passes its FLAGS;
only it imports `flags`), and import no torch: a user error is reported in a
fraction of a second, with nothing written.
"""

import importlib.util
import os

from modeling import plot
from modeling.model import check_trained_labels, is_model_dir, read_config, resolve_source
from modeling.search_space import parse_search_space
from modeling.tokenization import load_vocab
from processors import InputError, get_processor

PROCESSOR_FLAGS = ("data_format", "text_a_column", "text_b_column", "label_column", "labels",
                   "has_header")
POSITIVE = ("train_batch_size", "eval_batch_size", "predict_batch_size", "learning_rate",
            "num_train_epochs", "save_checkpoints_steps", "gradient_accumulation_steps",
            "adam_epsilon", "max_grad_norm")
SPLIT_MODES = (("train", "do_train"), ("dev", "do_eval"), ("test", "do_predict"))


def check(ok: bool, message: str) -> None:
    """Raises InputError(message) unless ok."""
    if not ok:
        raise InputError(message)


def check_numbers(f) -> None:
    """The flags one by one and against each other."""
    check(f.do_train or f.do_eval or f.do_predict,
          "at least one of --do_train, --do_eval or --do_predict must be set")
    for name in POSITIVE:
        check(getattr(f, name) > 0, f"--{name}={getattr(f, name)}: must be positive")
    check(f.max_seq_length >= 3, f"--max_seq_length={f.max_seq_length}: must be at "
          "least 3 ([CLS], one token, [SEP])")
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
    if f.tensorboard:
        plot.check_tensorboard()


def check_output_dir(out: str) -> None:
    """output_dir must be a writable directory, or one that can be created."""
    path = os.path.abspath(out)
    if os.path.exists(path):
        check(os.path.isdir(path), f"--output_dir={out}: not a directory")
        check(os.access(path, os.W_OK | os.X_OK), f"--output_dir={out}: not writable")
        return
    parent = os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    check(os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK),
          f"--output_dir={out}: cannot create it: {parent} is not a writable directory")


def check_paths(f, processor) -> bool:
    """Checks data_dir and output_dir; returns whether output_dir holds a trained model."""
    for name in ("data_dir", "output_dir"):
        check(bool(getattr(f, name)), f"--{name} is required")
    check(os.path.isdir(f.data_dir), f"--data_dir={f.data_dir}: not a directory")
    for split, mode in SPLIT_MODES:
        path = processor.get_file_path(f.data_dir, split)
        check(not getattr(f, mode) or os.path.isfile(path),
              f"--data_dir={f.data_dir}: --{mode} needs {path}, which does not exist")
    out = f.output_dir
    check_output_dir(out)
    trained = is_model_dir(out) and not (  # (a search's is its best trial's: it goes on)
        f.do_train and (f.overwrite_output_dir or f.search_trials))
    check(not (trained and f.do_train),
          f"--output_dir={out}: training there already finished; pass "
          "--overwrite_output_dir to train again, or drop --do_train to use that model")
    check(trained or f.do_train or f.init_checkpoint is not None,
          f"--output_dir={out}: holds no trained model to evaluate or predict with; "
          "add --do_train or pass --init_checkpoint")
    return trained


def check_model(f, source) -> None:
    """The model's files against the flags: casing, max_seq_length, vocab size."""
    check(source.do_lower_case is None or source.do_lower_case == f.do_lower_case,
          f"--do_lower_case={f.do_lower_case}: the checkpoint's tokenizer has "
          f"do_lower_case={source.do_lower_case}; pass --{'' if source.do_lower_case else 'no'}"
          "do_lower_case")
    config = read_config(source.config_file)
    limit = config["max_position_embeddings"]
    check(f.max_seq_length <= limit, f"--max_seq_length={f.max_seq_length}: must be at "
          f"most the model's max_position_embeddings ({limit})")
    vocab_size = len(load_vocab(source.vocab_file))
    check(vocab_size <= config["vocab_size"], f"{source.vocab_file}: {vocab_size} tokens, more "
          f"than the config's vocab_size {config['vocab_size']} ({source.config_file})")


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
        check(f.search_space is None and f.search_storage is None,
              "--search_space and --search_storage need --search_trials")
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
                check_model(variant, source)
                check_class_weights(variant, processor)
            except InputError as e:
                raise InputError(f"--search_space: {param}: {e}") from None


def validate(f):
    """The checks that need no torch: flags, paths, the model's files, every input row.

    Returns (processor, model source, whether output_dir holds a trained model).
    """
    processor = get_processor(f.task_name or "", f.data_dir,
                              **{name: getattr(f, name) for name in PROCESSOR_FLAGS})
    check_numbers(f)
    trained = check_paths(f, processor)
    source = resolve_source(f.output_dir if trained else f.init_checkpoint,
                            f.bert_config_file, f.vocab_file)
    if trained:
        check_trained_labels(f.output_dir, processor.get_labels(), processor.problem_type)
    check_class_weights(f, processor)
    check_model(f, source)
    check_search(f, processor, source)
    # Every row is checked now; a cache miss reads the file again, so that the cached
    # features come from the very bytes their key hashes.
    for split, mode in SPLIT_MODES:
        if getattr(f, mode):
            processor.get_examples(f.data_dir, split)
    return processor, source, trained
