"""BERT fine-tuning for text classification, with Google's run_classifier.py flags.

    run_classifier --task_name=mrpc --data_dir=$GLUE_DIR/MRPC --output_dir=/tmp/mrpc \
        --do_train --do_eval --do_predict --learning_rate=1e-4

All flags are defined here; the library (`processors/`, `modeling/`, `training/`) takes
plain arguments. Every check on the flags and on every row of the input files runs before
any work starts, and before torch and transformers are imported (hence the imports
inside functions): a user error is reported in a fraction of a second, not after
seconds of imports.

Ctrl-C and SIGTERM are handled from the first lines on, before the heavy imports
(`training.cli.install_interrupt_handler`).
"""

import contextlib
import sys

import training.cli as cli  # (light: it installs the Ctrl-C handler before the heavy imports)

INTERRUPTED = "run the same command again to go on (training resumes from its last checkpoint)"
if __name__ == "__main__" or sys.argv[0].endswith("run_classifier"):  # the program, not a test
    cli.install_interrupt_handler("run_classifier", INTERRUPTED)

# The other imports follow the handler (setup.cfg tells flake8: E402).
import json
import logging
import math
import os
from dataclasses import replace
from typing import NamedTuple

from absl import flags

from training.cli import settings
from modeling.disk import remove_temp_files
from modeling.errors import InputError, check
from modeling.files import ONNX_FILES
from modeling.heads import MULTI_LABEL
from modeling.locks import folder_lock
from modeling.toolchain import use_cache_dir
from modeling import COMPILE, PRECISIONS
from training import plot
from processors import describe_tasks, get_processor, load_processor_module
from processors.generic import TableOptions
from processors.registry import processor_class, tasks_with_options
from processors.windows import LONG_TEXT, WINDOW_POOLINGS, long_text_windows, windows_key
from modeling.model import check_trained_labels, resolve_source
from processors.splits import SplitExamples
from training import checks, model_checks
from training.search_space import parse_search_space

FLAGS = flags.FLAGS

# Google's flags: same names and defaults.
flags.DEFINE_string("data_dir", None, "Input data dir: the task's train/dev/test files.")
flags.DEFINE_string("bert_config_file", None, "BERT config JSON of the pretrained model.")
flags.DEFINE_string("task_name", None, "The task to train (a registered processor name); "
                    "--task_name=help lists them.")
flags.DEFINE_string("vocab_file", None, "The vocabulary file the BERT model was trained on.")
flags.DEFINE_string("output_dir", None, "Where the model, checkpoints and results go.")
flags.DEFINE_string("init_checkpoint", None, "A model directory, or a weights file used with "
                    "--bert_config_file and --vocab_file. Default: the embedded MiniLM-L6.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input (uncased models).")
flags.DEFINE_integer("max_seq_length", 128, "Maximum total tokens after WordPiece, "
                     "[CLS] and [SEP] included; longer inputs are truncated.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_eval", False, "Whether to evaluate on the dev set.")
flags.DEFINE_bool("do_predict", False, "Whether to predict on the test set.")
flags.DEFINE_integer("train_batch_size", 32, "Examples per optimizer step.")
INFERENCE_BATCH = ("Default: 8 (Google's) on the CPU; on a CUDA GPU 16384 // "
                   "--max_seq_length rows, 8 to 128.")
flags.DEFINE_integer("eval_batch_size", None, "Batch size for eval. " + INFERENCE_BATCH)
flags.DEFINE_integer("predict_batch_size", None, "Batch size for predict. " + INFERENCE_BATCH)
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate for AdamW.")
flags.DEFINE_float("num_train_epochs", 3.0, "Number of training epochs (may be fractional).")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of steps with linear warmup.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Steps between checkpoints.")

# PyTorch-era extras.
flags.DEFINE_integer("seed", 42, "Random seed: head init, batch order and dropout; "
                     "0 to 2**32 - 1 (numpy's range).")
flags.DEFINE_integer("gradient_accumulation_steps", 1,
                     "Split each train batch into this many chunks (same result, less memory).")
flags.DEFINE_float("weight_decay", 0.01, "Decoupled weight decay (not on biases, LayerNorm).")
flags.DEFINE_float("adam_epsilon", 1e-6, "Adam's epsilon.")
flags.DEFINE_float("max_grad_norm", 1.0, "Gradient clipping norm.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Keep at most this many checkpoints.")
flags.DEFINE_string("cache_dir", None, "Features cache dir. Default: <output_dir>/cache.")
flags.DEFINE_bool("overwrite_cache", False, "Rebuild cached features.")
flags.DEFINE_bool("overwrite_output_dir", False, "Start over: delete the model, checkpoints "
                  "and results in output_dir (refused where the run reads its model, data or "
                  "cache).")
flags.DEFINE_string("processor_module", None, "A module (dotted path or .py file) that "
                    "registers your own processors.")
flags.DEFINE_bool("no_cuda", False, "Do not use a GPU even when there is one.")
flags.DEFINE_enum("precision", "auto", PRECISIONS, "Numeric precision: auto is bf16 where the "
                  "hardware runs it fast (CUDA, avx512_bf16 CPUs), else fp32; fp16 is CUDA-only.")
flags.DEFINE_enum("compile", "auto", COMPILE, "torch.compile the training step and predict "
                  "(BERT models): on, off, or auto, which compiles only CPU runs long enough "
                  "to repay the compile time (see README).")
flags.DEFINE_string("class_weights", "none", "Weighted cross-entropy for imbalanced classes: "
                    "none, balanced (n / (k * count) from train), or one weight per label "
                    "in get_labels() order, comma-separated.")
flags.DEFINE_string("multi_label_threshold", "0.5", "Multi-label tasks predict each label "
                    "whose sigmoid is at least this; tune: one threshold per label, each "
                    "maximising that label's dev F1 (stored in config.json, used by "
                    "--do_predict).")
# Outputs to trust (issue 32).
flags.DEFINE_string("threshold", None, "Binary tasks with an F1 metric: predict the positive "
                    "label (the second) when its probability is at least this; tune: the "
                    "dev-F1-maximising one (stored in config.json). Default: argmax.")
flags.DEFINE_enum("calibration", "none", ["none", "temperature"], "temperature: after "
                  "training, fit one temperature (per label for multi-label) on dev by NLL "
                  "and fold it into the classifier's last layer (needs --do_train, --do_eval).")
flags.DEFINE_bool("report", True, "Each --do_eval writes <output_dir>/report.html.")

# Options of the `generic` and `multilabel_csv` processors (for your own files).
flags.DEFINE_enum("data_format", None, ["csv", "tsv", "jsonl"], "File format: "
                  "{train,dev,test}.<data_format> in --data_dir. Default: csv.")
flags.DEFINE_string("text_a_column", None, "Column (header name, JSON key, or 0-based number "
                    "with --nohas_header) of the text. Default: text.")
flags.DEFINE_string("text_b_column", None, "Column of the second text of a pair, if any.")
flags.DEFINE_string("label_column", None, "Column of the label. Default: label "
                    "(multilabel_csv: labels).")
flags.DEFINE_list("labels", None, "The label names, comma-separated; their order fixes the "
                  "label ids. Default: every label in the train file, sorted.")
flags.DEFINE_bool("has_header", None, "Whether CSV/TSV files start with a header row. "
                  "Default: true.")
flags.DEFINE_bool("tensorboard", False, "Write TensorBoard events to <output_dir>/tensorboard: "
                  "loss and learning rate every few steps, dev results every epoch.")

# Tuning.
flags.DEFINE_integer("early_stopping_patience", 0, "With --do_eval: stop training after this "
                     "many epochs without a better dev score (0: never); the final outputs "
                     "then come from the best epoch.")
flags.DEFINE_float("early_stopping_threshold", 0.0, "The gain in dev score that counts as "
                   "better for --early_stopping_patience.")
flags.DEFINE_integer("search_trials", 0, "Hyperparameter search (needs optuna): run this many "
                     "trials, each a run in <output_dir>/trial-<n>, and make the best one "
                     "output_dir's model.")
flags.DEFINE_string("search_space", None, "The flags --search_trials varies, comma-separated: "
                    "name=low:high[:log][:int], name=a|b|c, or a bare name (its default range). "
                    "Default: learning_rate,num_train_epochs,train_batch_size.")
flags.DEFINE_string("search_storage", None, "Database URL of the search's study; workers that "
                    "share it (and output_dir) split the trials. Default: "
                    "sqlite:///<output_dir>/search.db.")
flags.DEFINE_string("search_study", None, "The search's study name in --search_storage. "
                    "Default: one per --output_dir (its absolute path); set it when workers "
                    "on other machines see output_dir under another path.")

# Deployment.
flags.DEFINE_enum("export", None, ["onnx", "onnx_int8"], "After training (or, without "
                  "--do_train, of the model in --output_dir): write model.onnx (dynamic batch "
                  "and length); onnx_int8 adds model_int8.onnx, dynamically quantized.")
flags.DEFINE_enum("predict_backend", "torch", ["torch", "onnxruntime", "onnxruntime_int8"],
                  "What --do_predict runs: the PyTorch model, or the exported model.onnx "
                  "(model_int8.onnx) in onnxruntime; the same output files.")

# Long documents.
flags.DEFINE_enum("long_text", "truncate", LONG_TEXT, "Texts longer than --max_seq_length: "
                  "truncate them, or split text_a into overlapping windows (see README).")
flags.DEFINE_integer("doc_stride", None, "Windows: tokens between window starts. Default: "
                     "(max_seq_length - 2) // 2.")
flags.DEFINE_enum("window_pooling", None, WINDOW_POOLINGS, "Windows: a document's logits are "
                  "the mean (default) or the max of its windows'.")


SEED_MAX = 2**32 - 1  # numpy's legacy seeds; torch takes these too


def check_numbers(s) -> None:
    """Each number flag on its own: finite (an infinite rate passes `> 0` and makes every
    weight NaN), positive, in its range. An unset inference batch size (None) is resolved
    once the device is known (`inference_sizes`)."""
    for name, value in (("learning_rate", s.learning_rate),
                        ("num_train_epochs", s.num_train_epochs),
                        ("warmup_proportion", s.warmup_proportion),
                        ("weight_decay", s.weight_decay), ("adam_epsilon", s.adam_epsilon),
                        ("max_grad_norm", s.max_grad_norm)):
        check(math.isfinite(value), f"--{name}={value}: must be a finite number")
    check(0 <= s.seed <= SEED_MAX, f"--seed={s.seed}: must be in [0, {SEED_MAX}]")
    for name, value in (("train_batch_size", s.train_batch_size),
                        ("eval_batch_size", s.eval_batch_size),
                        ("predict_batch_size", s.predict_batch_size),
                        ("learning_rate", s.learning_rate),
                        ("num_train_epochs", s.num_train_epochs),
                        ("save_checkpoints_steps", s.save_checkpoints_steps),
                        ("gradient_accumulation_steps", s.gradient_accumulation_steps),
                        ("adam_epsilon", s.adam_epsilon), ("max_grad_norm", s.max_grad_norm)):
        check(value is None or value > 0, f"--{name}={value}: must be positive")
    for name, value, ok, rule in (
            ("warmup_proportion", s.warmup_proportion, 0 <= s.warmup_proportion < 1,
             "be in [0, 1)"),
            ("weight_decay", s.weight_decay, s.weight_decay >= 0, "be >= 0"),
            ("keep_checkpoint_max", s.keep_checkpoint_max, s.keep_checkpoint_max >= 1,
             "be at least 1"),
            ("early_stopping_patience", s.early_stopping_patience,
             s.early_stopping_patience >= 0, "be >= 0"),
            ("early_stopping_threshold", s.early_stopping_threshold,
             s.early_stopping_threshold >= 0, "be >= 0")):
        check(ok, f"--{name}={value}: must {rule}")


def threshold_number(value, default=0.5):
    """--multi_label_threshold or --threshold as a number (`default` for tune or unset)."""
    return default if value in (None, "tune") else float(value)


def decision_number(s, problem_type: str):
    """The threshold flag of this problem type as a number; None for tune or unset."""
    return threshold_number(s.multi_label_threshold if problem_type == MULTI_LABEL
                            else s.threshold, None)


def check_thresholds(s) -> None:
    """The threshold flags: a number in (0, 1) or tune; --calibration's needs."""
    for name, value in (("multi_label_threshold", s.multi_label_threshold),
                        ("threshold", s.threshold)):
        try:
            ok = value in (None, "tune") or 0 < float(value) < 1
        except ValueError:
            ok = False
        check(ok, f"--{name}={value}: must be a number in (0, 1) or tune")
        check(value != "tune" or (s.do_train and s.do_eval), f"--{name}=tune needs --do_train "
              "and --do_eval (thresholds are tuned on dev after training and saved with the "
              "model)")
    check(s.calibration == "none" or (s.do_train and s.do_eval),
          f"--calibration={s.calibration} needs --do_train and --do_eval (it fits on dev "
          "after training)")


def check_flag_values(s) -> None:
    """The flags one by one and against each other (before any work, and at the ends of a
    search's ranges)."""
    check(s.do_train or s.do_eval or s.do_predict or s.export,
          "at least one of --do_train, --do_eval, --do_predict or --export must be set")
    check_numbers(s)
    check_thresholds(s)
    checks.check_batch(s.train_batch_size, s.gradient_accumulation_steps)
    check(not s.early_stopping_patience or (s.do_train and s.do_eval),
          "--early_stopping_patience needs --do_train and --do_eval (it watches the dev score)")
    model_checks.check_long_text(s.long_text, s.max_seq_length, s.doc_stride, s.window_pooling)
    if s.tensorboard:
        plot.check_tensorboard()


def check_search_space(s, space, processor, source) -> None:
    """Every searched flag at the ends of its range, as a trial would run with it."""
    for param in space:
        for value in param.extremes():
            variant = replace(s, **{param.name: value})
            try:
                check_flag_values(variant)
                if param.name == "max_seq_length":  # (the model's checks read no other)
                    model_checks.check_model(source, variant.do_lower_case,
                                             variant.max_seq_length)
                if param.name == "class_weights":
                    checks.check_class_weights(variant.class_weights, processor)
            except InputError as e:
                raise InputError(f"--search_space: {param}: {e}") from None


class Checked(NamedTuple):
    """What `validate` found: the processor, the model's files, whether output_dir holds a
    trained model, {split: SplitExamples} of the splits the run uses (each checked and
    hashed), and the settings as the run uses them (--do_lower_case resolved)."""

    processor: object
    source: object
    trained: bool
    examples: dict
    settings: object


def validate(s) -> Checked:
    """Every check that needs no torch, the library's by keyword: the flags, paths, the
    model's files, every example. A --do_lower_case left unset follows the model."""
    processor = make_processor(s)
    check_flag_values(s)
    trained = checks.check_paths(s.data_dir, s.output_dir, s.do_train, s.overwrite_output_dir,
                                 s.search_trials, s.init_checkpoint)
    if s.do_train and s.overwrite_output_dir:
        checks.check_overwrite(s.output_dir, {
            "init_checkpoint": s.init_checkpoint, "bert_config_file": s.bert_config_file,
            "vocab_file": s.vocab_file, "data_dir": s.data_dir}, s.cache_dir)
    checks.check_deployment(s.export, s.predict_backend, s.do_train, s.do_predict,
                            s.output_dir, trained)
    if s.cache_dir:
        checks.check_output_dir(s.cache_dir, "cache_dir")
    checks.check_processor(processor)
    model_dir = s.output_dir if trained else s.init_checkpoint
    model_checks.check_model_files(model_dir)  # before it is read
    source = resolve_source(model_dir, s.bert_config_file, s.vocab_file)
    if trained:
        check_trained_labels(s.output_dir, processor.get_labels(), processor.problem_type)
    checks.check_class_weights(s.class_weights, processor)
    s = replace(s, do_lower_case=model_checks.resolve_casing(
        source, s.do_lower_case if cli.user_set(FLAGS, "do_lower_case") else None))
    model_checks.check_model(source, s.do_lower_case, s.max_seq_length)
    model_checks.check_windows_model(source, s.long_text, s.predict_backend)
    model_checks.check_compile_model(source, s.compile)
    checks.check_search(s.search_trials, s.search_space, s.search_storage, s.search_study,
                        s.do_train, s.do_eval, s.overwrite_output_dir)
    check_search_space(s, search_space(s), processor, source)
    examples = {split: SplitExamples(processor, s.data_dir, split, cache_dir=cache_folder(s),
                                     overwrite=s.overwrite_cache)
                for split, wanted in (("train", s.do_train), ("dev", s.do_eval),
                                      ("test", s.do_predict)) if wanted}
    model_checks.check_token_types(source, processor.task_name,
                                   {split: e.pairs() for split, e in examples.items()})
    if "train" in examples:
        checks.check_train_steps(examples["train"].count, s.train_batch_size,
                                 s.num_train_epochs)
    return Checked(processor, source, trained, examples, s)


def inference_sizes(s, device):
    """`s` with --eval_batch_size and --predict_batch_size resolved for `device`: where
    unset, Google's 8 on the CPU, rows that fill a CUDA GPU there."""
    from training.data import inference_batch_size
    size = inference_batch_size(device, s.max_seq_length)
    return replace(s, eval_batch_size=s.eval_batch_size or size,
                   predict_batch_size=s.predict_batch_size or size)


def do_train(run, s, on_dev_score=None) -> int:
    """Fine-tunes; with --do_eval, evaluates each epoch and keeps the best model (with early
    stopping, the final model too). Returns the final model's step.

    Under torchrun every rank trains and evaluates; only rank 0 writes files.
    `on_dev_score(epoch, score)` hears each epoch's dev score (a search prunes with it).
    """
    from training import distributed
    from training.early_stopping import best_epoch, should_stop
    from modeling.export import load_weights
    from training.runs import run_signature, write_run_config
    from training.selection import BEST_MODEL, EpochEnd
    from training.loop import train

    tensorboard = (plot.TensorBoardLog(os.path.join(s.output_dir, "tensorboard"))
                   if s.tensorboard and distributed.is_main() else None)
    from training import degenerate, trust
    processor = run.processor
    trust.forget_records(run.model.config)  # the old thresholds and temperature
    for line in degenerate.train_warnings(run.datasets["train"].labels, processor.problem_type,
                                          processor.get_labels()):
        logging.warning("%s", line)
    key = f"dev_{processor.metric}"
    args = train_args(s, run)
    signature = run_signature(processor, run.source, s.max_seq_length, s.do_lower_case,
                              run.examples["train"].digest,
                              args.resume_key | windows_key(windows(s)))

    def write_config() -> None:  # once the resume check passed: a refused run writes nothing
        if distributed.is_main():
            write_run_config(run, vars(s))

    def stop(stats: list[dict]) -> bool:
        return should_stop([r[key] for r in stats], s.early_stopping_patience,
                           s.early_stopping_threshold)

    stats = train(run.model, run.datasets["train"], args, run.device, signature,
                  EpochEnd(run, s.eval_batch_size, threshold_number(s.multi_label_threshold),
                           tensorboard, on_dev_score),
                  tensorboard.log_step if tensorboard else None,
                  stop if s.early_stopping_patience else None, write_config)
    if tensorboard:
        tensorboard.close()
    if distributed.is_main():
        logging.info("Learning curves: %s", plot.write_learning_curves(s.output_dir))
    if not s.early_stopping_patience:
        return stats[-1]["step"]
    best = stats[best_epoch([r[key] for r in stats])]
    logging.info("%s after epoch %d; the final model is epoch %d's (%s %.4f)",
                 "Stopped early" if stop(stats) else "Finished", stats[-1]["epoch"],
                 best["epoch"], key, best[key])
    distributed.barrier()  # rank 0 wrote best_model
    load_weights(run.model, os.path.join(s.output_dir, BEST_MODEL))
    return best["step"]


def train_args(s, run):
    """The training loop's arguments, by keyword, as Google's model_fn_builder(...) takes
    them: the flags, and what the run resolved (precision, loss, class weights, compile)."""
    from modeling.compiled import should_compile
    from modeling.losses import resolve_class_weights
    from training.loop import TrainArgs, count_train_steps

    processor, train_set = run.processor, run.datasets["train"]
    steps = count_train_steps(len(train_set), s.train_batch_size, s.num_train_epochs)[1]
    return TrainArgs(
        output_dir=s.output_dir, train_batch_size=s.train_batch_size,
        gradient_accumulation_steps=s.gradient_accumulation_steps,
        learning_rate=s.learning_rate, num_train_epochs=s.num_train_epochs,
        warmup_proportion=s.warmup_proportion, weight_decay=s.weight_decay,
        adam_epsilon=s.adam_epsilon, max_grad_norm=s.max_grad_norm,
        save_checkpoints_steps=s.save_checkpoints_steps,
        keep_checkpoint_max=s.keep_checkpoint_max, seed=s.seed, precision=run.precision,
        class_weights=resolve_class_weights(s.class_weights, processor.get_labels(),
                                            processor.problem_type, train_set.labels),
        problem_type=processor.problem_type,
        compile=should_compile(s.compile, run.model, run.device, run.precision, steps,
                               "training steps"))


def cache_folder(s) -> str:
    """--cache_dir, or the output_dir's cache folder."""
    return s.cache_dir or os.path.join(s.output_dir, "cache")


def windows(s):
    """--long_text=windows as a Windows (None: truncate), the defaults resolved."""
    return long_text_windows(s.long_text, s.max_seq_length, s.doc_stride, s.window_pooling)


def do_eval(run, s, global_step: int) -> None:
    """Dev results of the final model (calibrated, thresholds tuned, when asked), with ECE;
    eval_results.txt and, with --report, report.html."""
    import numpy as np
    from training import distributed
    from processors.windows import document_labels
    from training import trust
    from training.evaluation import predict_logits, write_eval_results
    dev, processor, config = run.datasets["dev"], run.processor, run.model.config
    logits = run.dev_logits.get(global_step)  # an epoch's end predicted these weights
    if logits is None:
        logits = predict_logits(run.model, dev, s.eval_batch_size, run.device, run.precision)
    labels = np.asarray(document_labels(dev))
    number = decision_number(s, processor.problem_type)
    results, logits, threshold = trust.finish_eval(
        run.model, logits, labels, processor.metric, processor.get_labels(),
        s.calibration == "temperature", "tune" in (s.multi_label_threshold, s.threshold), number)
    notes = trust.eval_warnings(processor.metric, logits, labels, processor.problem_type,
                                threshold, processor.get_labels(),
                                None if s.do_train else getattr(config, "finetuning_task", None),
                                processor.task_name, s.output_dir)
    if distributed.is_main():
        write_eval_results(s.output_dir, results, global_step)
        if s.report:
            trust.report(s.output_dir, _summary(run, s), results, processor.problem_type,
                         processor.get_labels(), logits, labels,
                         trust.dev_texts(run.examples["dev"]), threshold, notes,
                         getattr(dev, "doc_offsets", None))


def _summary(run, s) -> dict:
    """report.html's run summary: task, model, examples per split, key flags, device."""
    flags_shown = ("learning_rate", "num_train_epochs", "train_batch_size", "max_seq_length",
                   "class_weights", "calibration", "multi_label_threshold", "threshold",
                   "long_text")
    return {"task": run.processor.task_name, "model": run.source.config_file,
            "examples": ", ".join(f"{k} {v.count}" for k, v in run.examples.items()),
            "flags": " ".join(f"--{name}={getattr(s, name)}" for name in flags_shown),
            "device": str(run.device), "precision": run.precision}


def do_predict(run, s) -> None:
    from training import distributed
    from modeling.compiled import should_compile
    from training import trust
    from training.evaluation import predict_logits, write_predictions
    if s.predict_backend == "torch":
        test = run.datasets["test"]
        logits = predict_logits(run.model, test, s.predict_batch_size, run.device, run.precision,
                                should_compile(s.compile, run.model, run.device,
                                               run.precision, len(test), "predict rows"))
    else:
        from training.evaluation import onnx_logits
        logits = onnx_logits(os.path.join(s.output_dir, ONNX_FILES[s.predict_backend]),
                             run.datasets["test"], s.predict_batch_size)
    if distributed.is_main():
        problem_type = run.processor.problem_type
        write_predictions(s.output_dir, logits, run.processor.get_labels(), problem_type,
                          trust.decision_threshold(run.model.config, run.processor.get_labels(),
                                                   problem_type, decision_number(s, problem_type)),
                          run.processor.label_separator)


def _make_output_dir(out: str) -> None:
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise InputError(f"--output_dir={out}: cannot create: {e.strerror}") from None


def start_run(s, processor, source, trained: bool, examples: dict,
              stack: contextlib.ExitStack):
    """The device (and --precision check), tokenizer and model; then the output_dir, locked
    (into `stack`) before anything is written there."""
    with cli.heavy_imports():
        import torch
        from modeling.device import resolve_precision, select_device
        from modeling.model import (build_model, head_trained_for, init_untrained_pooler,
                                    load_config)
        from training.runs import Run, clear_run_outputs
        from modeling.tokenization import source_tokenizer
        from training import distributed
    rows = sum(split.count for split in examples.values())  # what rank 0 may build meanwhile
    device = distributed.init(select_device(s.no_cuda), rows)
    precision = resolve_precision(s.precision, device)
    labels = processor.get_labels()
    config = load_config(source.config_file, 1 if labels is None else len(labels), labels,
                         processor.problem_type)
    torch.manual_seed(s.seed)
    keep_head = trained or head_trained_for(source, labels, processor.problem_type)
    if not keep_head:
        _warn_new_head(s.init_checkpoint, source.config_file, processor.problem_type, labels)
    model = build_model(source, config, keep_head)
    pooler_identity = not keep_head and init_untrained_pooler(model)
    model = model.to(device)
    _make_output_dir(s.output_dir)
    if distributed.is_main():  # the barrier of local_main_first() waits for this
        stack.enter_context(folder_lock(s.output_dir, f"--output_dir={s.output_dir}"))
        if s.do_train and s.overwrite_output_dir:
            clear_run_outputs(s.output_dir)
        for folder in (s.output_dir, os.path.join(s.output_dir, "best_model")):
            remove_temp_files(folder)  # what a killed run was writing
    return Run(processor=processor, source=source, device=device, precision=precision,
               tokenizer=source_tokenizer(source, s.do_lower_case), model=model,
               output_dir=s.output_dir,
               cache_dir=cache_folder(s), examples=examples,
               pooler_identity=pooler_identity)


def _warn_new_head(checkpoint, config_file: str, problem_type: str, labels) -> None:
    """A fine-tuned checkpoint (its config records labels and a classifier) whose head is
    not reused: say so, naming its labels."""
    from modeling.model import fine_tuned_head
    from training.degenerate import new_head_warnings
    head = fine_tuned_head(config_file)
    if head is None:
        return
    for line in new_head_warnings(checkpoint or config_file, *head, problem_type, labels):
        logging.warning("%s", line)


def load_datasets(run, s) -> None:
    """The features of each split the run uses, from the cache or built (one build per node)."""
    from training import distributed
    from modeling.losses import label_distribution
    from processors.builders import feature_builder
    from processors.cache import load_features

    builder = feature_builder(run.source.family, run.tokenizer, run.source.tokenizer_files)
    with distributed.local_main_first():
        for split, examples in run.examples.items():
            run.datasets[split] = load_features(
                run.processor, s.data_dir, split, builder, run.source.vocab_file,
                s.do_lower_case, s.max_seq_length, run.cache_dir,
                s.overwrite_cache and distributed.is_local_main(), examples, windows(s),
                record=distributed.is_local_main())
            if split != "test":
                logging.info("%s label distribution: %s", split, label_distribution(
                    run.datasets[split].labels, run.processor.get_labels()))


def main(argv) -> None:
    check(len(argv) <= 1, f"unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
    s = settings(FLAGS, sys.modules[__name__])
    use_cache_dir()  # before torch._dynamo's import points it at /tmp
    if s.processor_module:
        load_processor_module(s.processor_module)
    if (s.task_name or "").lower() == "help":
        print(describe_tasks())
        return
    if s.search_trials:
        search(s)
    else:
        train_eval_predict(s)


def train_eval_predict(s, on_dev_score=None) -> None:
    """One run with settings `s` (a search passes each trial's copy): every check, then
    (output_dir locked) what the --do_* flags ask for."""
    processor, source, trained, examples, s = validate(s)
    check(s.threshold is None or (processor.metric in ("f1", "acc_and_f1") and len(
        processor.get_labels() or ()) == 2), f"--threshold={s.threshold}: only for binary "
          f"tasks with an F1 metric (--task_name={s.task_name} scores {processor.metric})")
    prefetch_digests(s, processor, source, examples)
    with contextlib.ExitStack() as stack:
        run = start_run(s, processor, source, trained, examples, stack)
        _run_modes(inference_sizes(s, run.device), run, on_dev_score)


def prefetch_digests(s, processor, source, examples: dict) -> None:
    """Starts hashing the big files the run checks later (each split's cached features; the
    model, whose digest a training run records) on a background thread, while torch
    imports (`prefetch_sha256`)."""
    from modeling.model import model_files
    from modeling.sha256 import prefetch_sha256
    from processors.cache_keys import entry_files, entry_path, layout_key, split_key
    files = []
    if not s.overwrite_cache:  # (the family's layout as `builders.feature_builder` picks it)
        layout = layout_key(None if source.family == "bert" else source.tokenizer_files)
        for split, split_examples in examples.items():
            files += entry_files(entry_path(cache_folder(s), *split_key(
                processor, split, split_examples.digest, layout, source.vocab_file,
                s.do_lower_case, s.max_seq_length, windows(s))))
    prefetch_sha256(files + (model_files(source) if s.do_train else []))


def make_processor(s):
    """The task's processor, its options from the flags (refused for a task that takes none)."""
    return get_processor(s.task_name or "", s.data_dir, processor_options(s))


def processor_options(s) -> TableOptions:
    """The processor flags as the options of the processors for users' files. A flag
    given to a task whose processor takes no options is refused, never ignored."""
    given = {"data_format": s.data_format, "text_a_column": s.text_a_column,
             "text_b_column": s.text_b_column, "label_column": s.label_column,
             "labels": s.labels, "has_header": s.has_header}
    name = (s.task_name or "").lower()
    if processor_class(name).options_type is None:
        for flag, value in given.items():
            if value is not None:
                users = tasks_with_options()
                shown = ",".join(value) if isinstance(value, (list, tuple)) else value
                raise InputError(f"--{flag}={shown}: not used by --task_name={name}"
                                 + (f" (only by {', '.join(users)})" if users else ""))
    return TableOptions(**given)


# The flags a search may vary: their type, and the range a bare name stands for (BERT
# fine-tuning's: the paper's epochs and batch sizes; rates up to 3e-4 for small models such
# as the embedded MiniLM). None: the user gives the range.
SEARCHABLE = {"learning_rate": (float, "1e-5:3e-4:log"), "num_train_epochs": (float, "2:4:int"),
              "train_batch_size": (int, "16|32"), "warmup_proportion": (float, "0:0.2"),
              "weight_decay": (float, "0:0.1"), "adam_epsilon": (float, None),
              "max_grad_norm": (float, None), "seed": (int, "1:10000:int"),
              "max_seq_length": (int, None), "class_weights": (str, None)}
DEFAULT_SPACE = "learning_rate,num_train_epochs,train_batch_size"
# What every trial runs with besides its searched flags: trials only train and evaluate
# (the best model predicts, once), and share the search's features cache.
TRIAL = dict(search_trials=0, search_space=None, search_storage=None, search_study=None,
             do_predict=False)


def search_space(s) -> tuple:
    """--search_space parsed (empty without --search_trials)."""
    if s.search_trials <= 0:
        return ()
    return parse_search_space(s.search_space or DEFAULT_SPACE, SEARCHABLE)


def search(s) -> dict:
    """--search_trials: each trial is train_eval_predict on a copy of `s` (the trial's flags,
    output_dir <output_dir>/trial-<n>), in this process; then the best model predicts.
    Returns the best trial's row (see training.search)."""
    from modeling.model import is_model_dir
    metric = validate(s)[0].metric  # every check first: a mistake costs no heavy import
    with cli.heavy_imports():
        from training import search as tuning  # (optuna, and torch)
    common = {**TRIAL, "cache_dir": cache_folder(s)}

    def run_trial(folder: str, params: dict, report) -> float:
        if not is_model_dir(folder):  # else it had finished when its worker died
            train_eval_predict(replace(s, **{**common, **params, "output_dir": folder}), report)
        with open(os.path.join(folder, "eval_results.json")) as results:
            return json.load(results)[f"eval_{metric}"]

    def predict(params: dict) -> None:  # with the best model, now output_dir's
        train_eval_predict(replace(s, **{**common, **params, "do_train": False,
                                         "do_eval": False, "do_predict": True}))

    return tuning.search(s.output_dir, s.search_storage, search_space(s), s.search_trials,
                         s.seed, f"dev_{metric}", run_trial, predict if s.do_predict else None,
                         s.search_study)


def _run_modes(s, run, on_dev_score) -> None:
    from training import distributed  # (imported once every check has passed)
    from modeling.export import save_model, saved_global_step
    from training import trust
    from training.runs import describe_run, write_run_config

    for line in describe_run(run, s.precision, {k: v.count for k, v in run.examples.items()}):
        logging.info("%s", line)
    load_datasets(run, s)
    if distributed.is_main() and not s.do_train:  # (training writes it once it may go on)
        write_run_config(run, vars(s))
    global_step = (do_train(run, s, on_dev_score) if s.do_train
                   else saved_global_step(run.source.config_file))
    if s.do_eval:
        do_eval(run, s, global_step)
    if s.do_predict and s.predict_backend == "torch":
        do_predict(run, s)
    if s.do_train and distributed.is_main():  # a saved model marks it finished
        trust.record_task(run.model, run.tokenizer, run.processor.task_name, s.max_seq_length)
        save_model(run.model, run.tokenizer, run.source.vocab_file, s.output_dir, global_step)
    if s.export:
        from modeling.onnx_export import export_onnx
        export_onnx(run.model, run.tokenizer, s.output_dir, s.export == "onnx_int8")
    if s.do_predict and s.predict_backend != "torch":  # the model just exported
        do_predict(run, s)
    distributed.shutdown()


def _main(argv) -> None:
    cli.call("run_classifier", main, argv, INTERRUPTED)


def run() -> None:
    """Console-script entry point."""
    cli.run("run_classifier", _main)


if __name__ == "__main__":
    run()
