"""BERT features for downstream models, with Google's extract_features.py flags.

    extract_features --input_file=sentences.txt --output_file=features.jsonl \
        --output_vectors=vectors.npy --pooling=mean

Reads one text, or `text_a ||| text_b`, per line of --input_file (or a registered
task's --split), and writes Google's JSON lines (every token's hidden states in
--layers) and/or one vector per input (.npy with a .guids.txt sidecar, or
.safetensors). A separate program from run_classifier.py, as in Google's BERT:
the two define some of the same flags, so they are not imported into one process.
"""

import logging
import os
import sys

import transformers
from absl import flags

import training.cli as cli
from modeling.errors import InputError
from modeling import PRECISIONS
from modeling.device import resolve_precision, select_device
from modeling.extraction import (POOLINGS, VECTOR_SUFFIXES, ExtractArgs, extract_to_files,
                                 guids_path, load_encoder, parse_layers, read_input_file)
from modeling.model import load_config, resolve_source
from modeling.tokenization import source_tokenizer
from processors import get_processor, load_processor_module, split_examples
from processors.base import SPLITS
from processors.windows import LONG_TEXT, Windows, windows_key
from training.model_checks import (check_long_text, check_model, check_model_files,
                                   check_windows_model)

FLAGS = flags.FLAGS

# Google's flags: same names and defaults.
flags.DEFINE_string("input_file", None, "One text, or `text_a ||| text_b`, per line.")
flags.DEFINE_string("output_file", None, "Google's JSON lines: each token's hidden states in "
                    "--layers.")
flags.DEFINE_string("layers", "-1,-2,-3,-4", "Encoder layers for --output_file; -1 is the last.")
flags.DEFINE_string("bert_config_file", None, "BERT config JSON of the pretrained model.")
flags.DEFINE_integer("max_seq_length", 128, "Maximum total tokens after WordPiece, [CLS] and "
                     "[SEP] included; longer inputs are truncated.")
flags.DEFINE_string("init_checkpoint", None, "A model directory, or a weights file used with "
                    "--bert_config_file and --vocab_file. Default: the embedded MiniLM-L6.")
flags.DEFINE_string("vocab_file", None, "The vocabulary file the BERT model was trained on.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the input (uncased models).")
flags.DEFINE_integer("batch_size", 32, "Batch size for predictions.")

# PyTorch-era extras.
flags.DEFINE_string("task_name", None, "Instead of --input_file: a registered task's --split.")
flags.DEFINE_string("data_dir", None, "The task's data files (with --task_name).")
flags.DEFINE_enum("split", "dev", SPLITS, "The task's split to embed (with --task_name).")
flags.DEFINE_string("processor_module", None, "A module (dotted path or .py file) that "
                    "registers your own processors.")
flags.DEFINE_string("output_vectors", None, "One vector per input: .npy (row guids in a "
                    ".guids.txt beside it) or .safetensors (guids in its metadata).")
flags.DEFINE_enum("pooling", "mean", POOLINGS, "The vector of --output_vectors: [CLS]'s last "
                  "hidden state, the mean over the tokens' last hidden states, or BERT's pooler.")
flags.DEFINE_bool("no_cuda", False, "Do not use a GPU even when there is one.")
flags.DEFINE_enum("precision", "auto", PRECISIONS, "Numeric precision: auto is bf16 where the "
                  "hardware runs it fast (CUDA, avx512_bf16 CPUs), else fp32; fp16 is CUDA-only.")

# Long documents.
flags.DEFINE_enum("long_text", "truncate", LONG_TEXT, "Texts longer than --max_seq_length: "
                  "truncate them, or embed overlapping windows of text_a and write the mean "
                  "of their vectors (--output_vectors only).")
flags.DEFINE_integer("doc_stride", None, "With --long_text=windows: tokens between the starts "
                     "of consecutive windows. Default: (max_seq_length - 2) // 2.")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InputError(message)


def check_outputs(s) -> None:
    _check(s.output_file or s.output_vectors,
           "at least one of --output_file or --output_vectors is required")
    _check(not s.output_vectors or s.output_vectors.endswith(VECTOR_SUFFIXES),
           f"--output_vectors={s.output_vectors}: must end in .npy or .safetensors")
    for name in ("output_file", "output_vectors"):
        path = getattr(s, name)
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        _check(not path or os.path.isdir(folder), f"--{name}={path}: no directory {folder}")
    _check(s.batch_size > 0, f"--batch_size={s.batch_size}: must be positive")
    check_long_text(s)
    _check(s.long_text != "windows" or not s.output_file, "--output_file: not with "
           "--long_text=windows (a document's tokens span windows); use --output_vectors")
    check_distinct(s, [(f"--input_file={s.input_file}", s.input_file)])


def check_distinct(s, files: list[tuple[str, str]]) -> None:
    """The input and the outputs (the guids file beside a .npy too) must be different
    files: an output written over the input or over the other output destroys it."""
    vectors = s.output_vectors
    files = files + [(f"--output_file={s.output_file}", s.output_file),
                     (f"--output_vectors={vectors}", vectors)]
    if vectors and vectors.endswith(".npy"):
        files.append((f"{guids_path(vectors)} (the guids of --output_vectors)",
                      guids_path(vectors)))
    seen = {}
    for name, path in files:
        if path:
            same = seen.setdefault(os.path.realpath(path), name)
            _check(same == name, f"{name}: the same file as {same}; choose another path")


def read_examples(s) -> list:
    """The inputs: --input_file, or --task_name's --split in --data_dir (all rows checked)."""
    _check(bool(s.input_file) != bool(s.task_name),
           "pass exactly one of --input_file or --task_name (with --data_dir)")
    if s.input_file:
        return read_input_file(s.input_file)
    if s.processor_module:
        load_processor_module(s.processor_module)
    processor = get_processor(s.task_name, s.data_dir)
    _check(bool(s.data_dir) and os.path.isdir(s.data_dir),
           f"--data_dir={s.data_dir}: not a directory")
    check_distinct(s, [(f"{p} (--data_dir)", p) for p in _files(s.data_dir)])
    return list(split_examples(processor, s.data_dir, s.split))


def _files(folder: str) -> list[str]:
    """The files in --data_dir: an output must not overwrite any (the processor reads them)."""
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))]


def main(argv) -> None:
    _check(len(argv) <= 1, f"unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
    s = cli.settings(FLAGS, sys.modules[__name__])
    check_outputs(s)
    device = select_device(s.no_cuda)
    precision = resolve_precision(s.precision, device)
    check_model_files(s.init_checkpoint)  # a saved model's integrity record, before it is read
    source = resolve_source(s.init_checkpoint, s.bert_config_file, s.vocab_file)
    config = load_config(source.config_file, 2, None)
    layers = parse_layers(s.layers, config.num_hidden_layers)
    check_model(source, s.do_lower_case, s.max_seq_length)
    check_windows_model(s, source)
    examples = read_examples(s)
    tokenizer = source_tokenizer(source, s.do_lower_case)
    model = load_encoder(source, config, s.pooling).to(device)
    windows = Windows.from_settings(s)
    args = ExtractArgs(tuple(layers), s.pooling, s.max_seq_length, s.batch_size,
                       s.output_file, s.output_vectors, windows and windows.doc_stride)
    metadata = {"pooling": s.pooling, "model": source.weights_file,
                "max_seq_length": s.max_seq_length, **windows_key(windows)}
    extract_to_files(model, tokenizer, examples, args, device, precision, metadata)
    logging.info("Extracted features of %d inputs to %s", len(examples),
                 " and ".join(p for p in (s.output_file, s.output_vectors) if p))


def _main(argv) -> None:
    cli.call("extract_features", main, argv)


def run() -> None:
    """Console-script entry point."""
    transformers.utils.logging.disable_progress_bar()
    cli.run("extract_features", _main)


if __name__ == "__main__":
    run()
