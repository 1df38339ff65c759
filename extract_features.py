"""BERT features for downstream models, with Google's extract_features.py flags.

    extract_features --input_file=sentences.txt --output_file=features.jsonl \
        --output_vectors=vectors.npy --pooling=mean

Reads one text, or `text_a ||| text_b`, per line of --input_file (or a registered
task's --split), and writes Google's JSON lines (every token's hidden states in
--layers) and/or one vector per input (.npy with a .guids.txt sidecar, or
.safetensors). A separate program from run_classifier.py, as in Google's BERT:
the two define some of the same flags, so this one defines its flags only when it runs
(`define_flags`) and tests import its library beside run_classifier.

Two outputs. Google's extract_features.py JSON lines, one line per input:
    {"linex_index": 0, "features": [{"token": "[CLS]",
                                     "layers": [{"index": -1, "values": [...]}, ...]}, ...]}
and, for downstream models, an array of one vector per input (`[CLS]`, mean of the
tokens, or BERT's pooler) as `.npy` with a `.guids.txt` sidecar (one guid a line, escaped: see
`guid_line`), or `.safetensors` with the guids in its metadata (JSON). Duplicate
guids are warned about. Batches are length-sorted (dynamic padding) within
chunks of rows, and every chunk comes out in the input's order.
"""

import sys

import training.cli as cli  # (light: it installs the interrupt handler before the heavy imports)

if __name__ == "__main__" or sys.argv[0].endswith("extract_features"):  # the program
    cli.install_interrupt_handler("extract_features")

# The other imports follow the handler (setup.cfg tells flake8: E402).
import contextlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from absl import flags

with cli.heavy_imports():  # (the collector paused, then their objects frozen)
    import numpy as np
    import torch
    import transformers
    from transformers import BertConfig, BertModel

from modeling import PRECISIONS, families
from modeling.bert import to_transformers
from modeling.device import autocast, resolve_precision, select_device
from modeling.disk import atomic_open, atomic_write_bytes, atomic_write_text
from modeling.errors import InputError, check
from modeling.model import ModelSource, build_model, load_config, resolve_source
from modeling.tokenization import source_tokenizer
from processors import get_processor, load_processor_module, split_examples
from processors.base import SPLITS, InputExample
from processors.readers import read_rows
from processors.cache import FeatureSet
from processors.builders import FeatureBuilder, feature_builder
from processors.cells import table_cell
from processors.features import log_examples
from processors.windows import (LONG_TEXT, Windows, describe, long_text_windows,
                                pool_windows, windows_key)
from training.data import inference_batches, iterate
from training.model_checks import (check_long_text, check_model, check_model_files,
                                   check_windows_model, resolve_casing)

POOLINGS = ("cls", "mean", "pooler")
VECTOR_SUFFIXES = (".npy", ".safetensors")
CHUNK_BATCHES = 64  # rows are length-sorted within chunks of this many batches
PAIR = re.compile(r"^(.*) \|\|\| (.*)$")  # Google's `text_a ||| text_b`

logger = logging.getLogger(__name__)


def read_input_file(path: str) -> list[InputExample]:
    """One text, or `text_a ||| text_b`, per line (Google's input); guids are line indices."""
    if not os.path.isfile(path):
        raise InputError(f"--input_file={path}: file not found")
    examples = []
    for _, fields in read_rows(path):  # blank lines are errors; fields joined back by tabs
        text = "\t".join(fields).strip()
        match = PAIR.match(text)
        text_a, text_b = match.groups() if match else (text, None)
        examples.append(InputExample(guid=str(len(examples)), text_a=text_a, text_b=text_b))
    return examples


def parse_layers(spec: str, num_layers: int) -> list[int]:
    """`-1,-2,-3,-4` -> [-1, -2, -3, -4]: Google's indices into the encoder's layers."""
    try:
        layers = [int(part) for part in spec.split(",")]
    except ValueError:
        raise InputError(f"--layers={spec}: expected comma-separated integers, "
                         "e.g. -1,-2,-3,-4") from None
    bad = [i for i in layers if not -num_layers <= i < num_layers]
    if bad:
        raise InputError(f"--layers={spec}: layer {bad[0]} does not exist in this "
                         f"{num_layers}-layer model (use {-num_layers} .. {num_layers - 1})")
    return layers


def load_encoder(source: ModelSource, config: BertConfig, pooling: str = "cls") -> BertModel:
    """The pretrained encoder, pooler included (every weight checked by build_model); another
    family's base model, whose pooler (where it has one) --pooling=pooler needs."""
    if source.family != "bert":
        return families.load_encoder(os.path.dirname(source.config_file), pooling == "pooler")
    return to_transformers(build_model(source, config)).bert  # its forward gives every layer


def _encode(model, batch: dict, layers: list[int], pooling: str, device, precision: str):
    """Yields (layers x tokens x hidden float32 states, pooled vector) per row of a batch."""
    if not families.takes_token_types(type(model)):
        batch = {k: v for k, v in batch.items() if k != "token_type_ids"}
    with autocast(device, precision):
        out = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"]
    encoder = out.hidden_states[1:]  # [0] is the embeddings; Google's indices skip it
    states = torch.stack([encoder[i] for i in layers]).float().cpu() if layers else None
    last = out.last_hidden_state.float()
    if pooling == "cls":
        vectors = last[:, 0]
    elif pooling == "mean":
        weights = mask.unsqueeze(-1).float()
        vectors = (last * weights).sum(1) / weights.sum(1)
    else:
        vectors = out.pooler_output.float()
    vectors = vectors.cpu().numpy()
    for row, length in enumerate(mask.sum(1).tolist()):
        yield (None if states is None else states[:, row, :length].numpy()), vectors[row]


@torch.no_grad()
def extract(model, dataset, layers: list[int], pooling: str, batch_size: int, device,
            precision: str) -> Iterator[tuple[Optional[np.ndarray], np.ndarray]]:
    """(states of `layers` per token, pooled vector) for every row, in the dataset's order."""
    model.eval()
    lengths = dataset.lengths()
    chunk = batch_size * CHUNK_BATCHES
    for start in range(0, len(dataset), chunk):
        batches = [[start + i for i in b]
                   for b in inference_batches(lengths[start:start + chunk], batch_size)]
        rows = {}
        for indices, batch in zip(batches, iterate(dataset, batches, device)):
            batch.pop("labels", None)
            rows.update(zip(indices, _encode(model, batch, layers, pooling, device, precision)))
        yield from (rows[i] for i in sorted(rows))


def json_line(index: int, tokens: list[str], layers: list[int], states: np.ndarray) -> str:
    """One line of Google's output; values rounded to 6 decimals as Google's are."""
    features = [{"token": token, "layers": [
        {"index": layer, "values": [round(x, 6) for x in states[j, t].tolist()]}
        for j, layer in enumerate(layers)]} for t, token in enumerate(tokens)]
    return json.dumps({"linex_index": index, "features": features}) + "\n"


def guids_path(vectors_path: str) -> str:
    """vectors.npy -> vectors.guids.txt: one guid per line, the order of the rows."""
    return os.path.splitext(vectors_path)[0] + ".guids.txt"


def guid_line(guid) -> str:
    """A guid as one line of `.guids.txt`: backslash, TAB, LF and CR as backslash escapes,
    other control characters as backslash-u escapes (`cells.escape_text`), and a leading
    `'` where a spreadsheet would read a formula (`cells.table_cell`)."""
    return table_cell(str(guid), escape=True) + "\n"


def warn_duplicate_guids(guids: Sequence) -> int:
    """Logs one warning naming the first guid that repeats and how many rows repeat one;
    returns that count (rows are still written: the order of the rows tells them apart)."""
    seen, first, count = set(), None, 0
    for guid in guids:
        if guid in seen:
            first = guid if first is None else first
            count += 1
        seen.add(guid)
    if count:
        logger.warning("%d inputs repeat an earlier input's guid (the first: %r); the "
                       "vectors' rows are in input order", count, first)
    return count


def write_vectors(path: str, vectors: np.ndarray, guids: list[str], metadata: dict) -> None:
    """`.npy` plus a guids sidecar, or `.safetensors` with guids in the metadata; atomic."""
    if path.endswith(".safetensors"):
        from safetensors.numpy import save
        info = {"guids": json.dumps(guids), **{k: str(v) for k, v in metadata.items()}}
        atomic_write_bytes(path, save({"vectors": vectors}, metadata=info))
        return
    buffer = io.BytesIO()
    np.save(buffer, vectors)
    atomic_write_text(guids_path(path), "".join(map(guid_line, guids)))
    atomic_write_bytes(path, buffer.getvalue())


@dataclass(frozen=True)
class ExtractArgs:
    layers: tuple[int, ...]
    pooling: str
    max_seq_length: int
    batch_size: int
    output_file: Optional[str]  # Google's JSON lines
    output_vectors: Optional[str]  # .npy or .safetensors
    doc_stride: Optional[int] = None  # long texts as windows this far apart (None: truncated)


def document_vectors(model, examples: Sequence[InputExample], args: ExtractArgs,
                     builder: FeatureBuilder, device, precision: str) -> np.ndarray:
    """One vector per example from its windows: the mean of their pooled vectors."""
    arrays = builder.build(examples, None, args.max_seq_length, Windows(args.doc_stride))
    dataset = FeatureSet.from_arrays(arrays)
    logger.info("%s", describe("input", dataset, args.max_seq_length))
    rows = extract(model, dataset, [], args.pooling, args.batch_size, device, precision)
    return pool_windows(np.stack([vector for _, vector in rows]), dataset.doc_offsets, "mean")


def extract_to_files(model, tokenizer, examples: Sequence[InputExample], args: ExtractArgs,
                     device, precision: str, metadata: dict) -> None:
    """Writes the JSON lines and/or the vectors of `examples`: both whole, or neither.

    With windows (`args.doc_stride`), only the vectors: one per example.
    """
    unlabeled = [InputExample(e.guid, e.text_a, e.text_b) for e in examples]
    builder = feature_builder(model.config.model_type, tokenizer)
    if args.output_vectors:
        warn_duplicate_guids([e.guid for e in examples])
    if args.doc_stride:
        vectors = document_vectors(model, unlabeled, args, builder, device, precision)
        write_vectors(args.output_vectors, vectors, [e.guid for e in examples], metadata)
        return
    arrays = builder.build(unlabeled, None, args.max_seq_length)
    log_examples(unlabeled, arrays, tokenizer)
    dataset = FeatureSet.from_arrays(arrays)
    layers = list(args.layers) if args.output_file else []
    vectors = []
    with atomic_open(args.output_file) if args.output_file else contextlib.nullcontext() as out:
        rows = extract(model, dataset, layers, args.pooling, args.batch_size, device, precision)
        for i, (states, vector) in enumerate(rows):
            if out:
                tokens = tokenizer.convert_ids_to_tokens(dataset[i].input_ids.tolist())
                out.write(json_line(i, tokens, layers, states))
            vectors.append(vector)
        if args.output_vectors:
            write_vectors(args.output_vectors, np.stack(vectors), [e.guid for e in examples],
                          metadata)


FLAGS = flags.FLAGS


def define_flags() -> None:
    """The program's flags, defined when it runs (`run`), not when a test imports its
    library: run_classifier defines some of the same names."""
    # Google's flags: same names and defaults.
    flags.DEFINE_string("input_file", None, "One text, or `text_a ||| text_b`, per line.")
    flags.DEFINE_string("output_file", None, "Google's JSON lines: each token's hidden states in "
                        "--layers.")
    flags.DEFINE_string("layers", "-1,-2,-3,-4",
                        "Encoder layers for --output_file; -1 is the last.")
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
                      "hidden state, the mean over the tokens' last hidden states, or BERT's "
                      "pooler.")
    flags.DEFINE_bool("no_cuda", False, "Do not use a GPU even when there is one.")
    flags.DEFINE_enum("precision", "auto", PRECISIONS, "Numeric precision: auto is bf16 where "
                      "the hardware runs it fast (CUDA, avx512_bf16 CPUs), else fp32; fp16 is "
                      "CUDA-only.")

    # Long documents.
    flags.DEFINE_enum("long_text", "truncate", LONG_TEXT, "Texts longer than --max_seq_length: "
                      "truncate them, or embed overlapping windows of text_a and write the mean "
                      "of their vectors (--output_vectors only).")
    flags.DEFINE_integer("doc_stride", None, "With --long_text=windows: tokens between the starts "
                         "of consecutive windows. Default: (max_seq_length - 2) // 2.")


def check_outputs(s) -> None:
    check(s.output_file or s.output_vectors,
          "at least one of --output_file or --output_vectors is required")
    check(not s.output_vectors or s.output_vectors.endswith(VECTOR_SUFFIXES),
          f"--output_vectors={s.output_vectors}: must end in .npy or .safetensors")
    for name, path in (("output_file", s.output_file), ("output_vectors", s.output_vectors)):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        check(not path or os.path.isdir(folder), f"--{name}={path}: no directory {folder}")
    check(s.batch_size > 0, f"--batch_size={s.batch_size}: must be positive")
    check_long_text(s.long_text, s.max_seq_length, s.doc_stride)
    check(s.long_text != "windows" or not s.output_file, "--output_file: not with "
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
            check(same == name, f"{name}: the same file as {same}; choose another path")


def read_examples(s) -> list:
    """The inputs: --input_file, or --task_name's --split in --data_dir (all rows checked)."""
    check(bool(s.input_file) != bool(s.task_name),
          "pass exactly one of --input_file or --task_name (with --data_dir)")
    if s.input_file:
        return read_input_file(s.input_file)
    if s.processor_module:
        load_processor_module(s.processor_module)
    processor = get_processor(s.task_name, s.data_dir)
    check(bool(s.data_dir) and os.path.isdir(s.data_dir),
          f"--data_dir={s.data_dir}: not a directory")
    check_distinct(s, [(f"{p} (--data_dir)", p) for p in _files(s.data_dir)])
    return list(split_examples(processor, s.data_dir, s.split))


def _files(folder: str) -> list[str]:
    """The files in --data_dir: an output must not overwrite any (the processor reads them)."""
    return [os.path.join(folder, name) for name in sorted(os.listdir(folder))
            if os.path.isfile(os.path.join(folder, name))]


def main(argv) -> None:
    check(len(argv) <= 1, f"unexpected arguments: {' '.join(argv[1:])} (flags start with --)")
    s = cli.settings(FLAGS, sys.modules[__name__])
    check_outputs(s)
    device = select_device(s.no_cuda)
    precision = resolve_precision(s.precision, device)
    check_model_files(s.init_checkpoint)  # a saved model's integrity record, before it is read
    source = resolve_source(s.init_checkpoint, s.bert_config_file, s.vocab_file)
    config = load_config(source.config_file, 2, None)
    layers = parse_layers(s.layers, config.num_hidden_layers)
    lower = resolve_casing(source, s.do_lower_case if cli.user_set(FLAGS, "do_lower_case")
                           else None)  # left unset, it follows the model
    check_model(source, lower, s.max_seq_length)
    check_windows_model(source, s.long_text)
    examples = read_examples(s)
    tokenizer = source_tokenizer(source, lower)
    model = load_encoder(source, config, s.pooling).to(device)
    windows = long_text_windows(s.long_text, s.max_seq_length, s.doc_stride)
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
    define_flags()
    transformers.utils.logging.disable_progress_bar()
    cli.run("extract_features", _main)


if __name__ == "__main__":
    run()
