"""Feature extraction: BERT's (or another family's) per-token hidden states and one vector
per text.

Two outputs. Google's extract_features.py JSON lines, one line per input:
    {"linex_index": 0, "features": [{"token": "[CLS]",
                                     "layers": [{"index": -1, "values": [...]}, ...]}, ...]}
and, for downstream models, an array of one vector per input (`[CLS]`, mean of the
tokens, or BERT's pooler) as `.npy` with a `.guids.txt` sidecar (one guid a line, escaped: see
`guid_line`), or `.safetensors` with the guids in its metadata (JSON). Duplicate
guids are warned about. Batches are length-sorted (dynamic padding) within
chunks of rows, and every chunk comes out in the input's order.
"""

import contextlib
import io
import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch
from transformers import BertConfig, BertModel

from processors.base import InputExample, read_rows
from processors.cache import FeatureSet
from processors.cells import table_cell
from processors.features import convert_examples_to_features
from processors.hf_features import tokenizer_features
from processors.windows import describe, pool_windows, window_arrays
from training.data import inference_batches, iterate

from . import families
from .device import autocast
from .disk import atomic_open, atomic_write_bytes, atomic_write_text
from .errors import InputError
from .model import ModelSource, build_model

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
    return build_model(source, config).bert


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


def document_vectors(model, examples: Sequence[InputExample], args: ExtractArgs, tokenizer,
                     device, precision: str) -> np.ndarray:
    """One vector per example from its windows: the mean of their pooled vectors."""
    arrays = window_arrays(examples, None, args.max_seq_length, tokenizer, args.doc_stride)
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
    if args.output_vectors:
        warn_duplicate_guids([e.guid for e in examples])
    if args.doc_stride:
        vectors = document_vectors(model, unlabeled, args, tokenizer, device, precision)
        write_vectors(args.output_vectors, vectors, [e.guid for e in examples], metadata)
        return
    convert = (convert_examples_to_features if model.config.model_type == "bert"
               else tokenizer_features)
    features = convert(unlabeled, None, args.max_seq_length, tokenizer)
    dataset = FeatureSet.from_features(features)
    layers = list(args.layers) if args.output_file else []
    vectors = []
    with atomic_open(args.output_file) if args.output_file else contextlib.nullcontext() as out:
        rows = extract(model, dataset, layers, args.pooling, args.batch_size, device, precision)
        for i, (states, vector) in enumerate(rows):
            if out:
                tokens = tokenizer.convert_ids_to_tokens(features[i].input_ids)
                out.write(json_line(i, tokens, layers, states))
            vectors.append(vector)
        if args.output_vectors:
            write_vectors(args.output_vectors, np.stack(vectors), [e.guid for e in examples],
                          metadata)
