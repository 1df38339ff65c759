"""BERT fine-tuning for text classification, with Google's run_classifier.py flags.

    run_classifier --task_name=mrpc --data_dir=$GLUE_DIR/MRPC --output_dir=/tmp/mrpc \
        --do_train --do_eval --do_predict --learning_rate=1e-4

All flags are defined here; the library (`processors/`, `modeling/`) takes plain
arguments. Every check on the flags and on every row of the input files runs before
any work starts, and before torch and transformers are imported (hence the imports
inside functions): a user error is reported in a fraction of a second, not after
seconds of imports.

Ctrl-C and SIGTERM are handled from the first lines on, before the heavy imports
(`cli.install_interrupt_handler`).
"""

import contextlib
import sys

import training.cli as cli  # (light: it installs the Ctrl-C handler before the heavy imports)

INTERRUPTED = "run the same command again to go on (training resumes from its last checkpoint)"
if __name__ == "__main__" or sys.argv[0].endswith("run_classifier"):  # the program, not a test
    cli.install_interrupt_handler("run_classifier", INTERRUPTED)

# The other imports follow the handler (setup.cfg tells flake8: E402).
import logging
import os

from absl import flags

import run_search
from training.cli import settings
from modeling.disk import folder_lock, remove_temp_files
from modeling.errors import InputError
from modeling.files import ONNX_FILES
from modeling.toolchain import use_cache_dir
from modeling import COMPILE, PRECISIONS
from training import plot
from processors import describe_tasks, load_processor_module
from processors.windows import LONG_TEXT, WINDOW_POOLINGS, Windows, windows_key
from training.checks import check, validate

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
flags.DEFINE_integer("eval_batch_size", 8, "Batch size for eval.")
flags.DEFINE_integer("predict_batch_size", 8, "Batch size for predict.")
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
flags.DEFINE_float("multi_label_threshold", 0.5, "Multi-label tasks predict each label whose "
                   "sigmoid is at least this.")

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


def do_train(run, s, on_dev_score=None) -> int:
    """Fine-tunes; with --do_eval, evaluates each epoch and keeps the best model (with early
    stopping, the final model too). Returns the final model's step.

    Under torchrun every rank trains and evaluates; only rank 0 writes files.
    `on_dev_score(epoch, score)` hears each epoch's dev score (a search prunes with it).
    """
    from training import distributed
    from modeling.compiled import should_compile
    from training.early_stopping import best_epoch, should_stop
    from modeling.export import load_weights
    from modeling.losses import resolve_class_weights
    from training.runs import run_signature, write_run_config
    from training.selection import BEST_MODEL, EpochEnd
    from training.loop import TrainArgs, count_train_steps, train

    tensorboard = (plot.TensorBoardLog(os.path.join(s.output_dir, "tensorboard"))
                   if s.tensorboard and distributed.is_main() else None)
    processor = run.processor
    key = f"dev_{processor.metric}"
    steps = count_train_steps(len(run.datasets["train"]), s.train_batch_size,
                              s.num_train_epochs)[1]
    args = TrainArgs.from_settings(s, precision=run.precision, problem_type=processor.problem_type,
                                   class_weights=resolve_class_weights(
                                       s.class_weights, processor.get_labels(),
                                       processor.problem_type, run.datasets["train"].labels),
                                   compile=should_compile(
                                       s.compile, run.model, run.device, run.precision, steps,
                                       "training steps"))
    signature = run_signature(processor, run.source, s.max_seq_length, s.do_lower_case,
                              run.examples["train"].digest,
                              {name: getattr(s, name) for name in TRAINING_FLAGS}
                              | {"precision": run.precision}
                              | windows_key(Windows.from_settings(s)))

    def write_config() -> None:  # once the resume check passed: a refused run writes nothing
        if distributed.is_main():
            write_run_config(run, vars(s))

    def stop(stats: list[dict]) -> bool:
        return should_stop([r[key] for r in stats], s.early_stopping_patience,
                           s.early_stopping_threshold)

    stats = train(run.model, run.datasets["train"], args, run.device, signature,
                  EpochEnd(run, s.eval_batch_size, s.multi_label_threshold, tensorboard,
                           on_dev_score), tensorboard.log_step if tensorboard else None,
                  stop if s.early_stopping_patience else None, write_config)
    if tensorboard:
        tensorboard.close()
    if distributed.is_main() and plot.has_matplotlib():
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


def do_eval(run, s, global_step: int) -> None:
    from training import distributed
    from training.evaluation import evaluate, write_eval_results
    results = run.dev_results.get(global_step)  # an epoch's end evaluated these weights
    if results is None:
        results = evaluate(run.model, run.datasets["dev"], run.processor.metric,
                           s.eval_batch_size, run.device, run.precision, s.multi_label_threshold)
    if distributed.is_main():
        write_eval_results(s.output_dir, results, global_step)


def do_predict(run, s) -> None:
    from training import distributed
    from modeling.compiled import should_compile
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
        write_predictions(s.output_dir, logits, run.processor.get_labels(),
                          run.processor.problem_type, s.multi_label_threshold,
                          run.processor.label_separator)


# A resumed run must have these as its checkpoint has them: they fix the batch order, the
# rate at each step, the loss, the optimizer's steps and the clipping (the precision, as
# resolved, too).
TRAINING_FLAGS = ("train_batch_size", "num_train_epochs", "learning_rate", "warmup_proportion",
                  "seed", "class_weights", "weight_decay", "adam_epsilon", "max_grad_norm")


def _make_output_dir(out: str) -> None:
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise InputError(f"--output_dir={out}: cannot create: {e.strerror}") from None


def start_run(s, processor, source, trained: bool, examples: dict,
              stack: contextlib.ExitStack):
    """The device (and --precision check), tokenizer and model; then the output_dir, locked
    (into `stack`) before anything is written there."""
    import torch
    import transformers

    from modeling.device import resolve_precision, select_device
    from modeling.model import build_model, head_trained_for, init_untrained_pooler, load_config
    from training.runs import Run, clear_run_outputs
    from modeling.tokenization import source_tokenizer

    transformers.utils.logging.disable_progress_bar()
    from training import distributed
    device = distributed.init(select_device(s.no_cuda))
    precision = resolve_precision(s.precision, device)
    labels = processor.get_labels()
    config = load_config(source.config_file, 1 if labels is None else len(labels), labels,
                         processor.problem_type)
    torch.manual_seed(s.seed)
    keep_head = trained or head_trained_for(source, labels, processor.problem_type)
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
               cache_dir=s.cache_dir or os.path.join(s.output_dir, "cache"), examples=examples,
               pooler_identity=pooler_identity)


def load_datasets(run, s) -> None:
    """The features of each split the run uses, from the cache or built (one build per node)."""
    from training import distributed
    from modeling.losses import label_distribution
    from processors.cache import load_features

    with distributed.local_main_first():
        for split, examples in run.examples.items():
            run.datasets[split] = load_features(
                run.processor, s.data_dir, split, run.tokenizer, run.source.vocab_file,
                s.do_lower_case, s.max_seq_length, run.cache_dir,
                s.overwrite_cache and distributed.is_local_main(), examples,
                run.source.tokenizer_files, Windows.from_settings(s))
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
        run_search.search(FLAGS, train_eval_predict)
    else:
        train_eval_predict()


def train_eval_predict(on_dev_score=None) -> None:
    """One run, with the flags as set now (a search sets each trial's): every check, then
    (output_dir locked) what the --do_* flags ask for."""
    s = settings(FLAGS, sys.modules[__name__])
    processor, source, trained, examples = validate(s)
    with contextlib.ExitStack() as stack:
        _run_modes(s, start_run(s, processor, source, trained, examples, stack), on_dev_score)


def _run_modes(s, run, on_dev_score) -> None:
    from modeling import distributed  # (imported once every check has passed)
    from modeling.export import save_model, saved_global_step
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
