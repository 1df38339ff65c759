"""Deployment: the fine-tuned model as ONNX (fp32, and dynamically quantized int8), and
the onnxruntime session that runs it (training.evaluation.onnx_logits predicts with it).

torch's ONNX exporter (torch.export based: its graph gives PyTorch's logits to ~1e-7,
where the TorchScript tracer's did not) writes the graph, batch and sequence length
dynamic, and
onnxruntime's `quantize_dynamic` makes the int8 copy (int8 weights of the matrix
multiplies, activations quantized on the fly). Nothing here builds graph nodes by
hand. Needs the `onnx` extra: pip install 'bert-run-classifier[onnx]'.
"""

import io
import logging
import os

import torch

from .bert import BertClassifier, to_transformers
from .disk import atomic_write_bytes
from .errors import InputError
from .families import takes_token_types
from .files import ONNX_FILES

logger = logging.getLogger(__name__)

OPSET = 18


class _Logits(torch.nn.Module):
    """The classifier's logits from plain tensors (what the ONNX graph takes and gives)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        types = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **types).logits


def input_names(model: torch.nn.Module, tokenizer) -> list[str]:
    """What the graph takes: what the tokenizer gives (token types only where the model
    takes them too), so that `session.run(..., tokenizer(...))` feeds it as is."""
    types = "token_type_ids" in tokenizer.model_input_names and takes_token_types(type(model))
    return ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])


def export_onnx(model: torch.nn.Module, tokenizer, output_dir: str, int8: bool) -> list[str]:
    """Writes model.onnx (and model_int8.onnx) to output_dir through core's atomic writers
    (each whole or not at all, an OSError naming it, no temp file left); returns their
    paths."""
    names = input_names(model, tokenizer)
    if isinstance(model, BertClassifier):  # the graph is transformers' own forward
        model = to_transformers(model)
    model = model.float().eval().cpu()
    # Real-looking ids, and a padded row: transformers skips an all-ones mask when tracing.
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (2, 8), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # (notes about torchvision's ops, which it lacks)
    try:
        program = torch.onnx.export(
            _Logits(model).eval(), tuple(example[name] for name in names), None, dynamo=True,
            verbose=False, input_names=names, output_names=["logits"], opset_version=OPSET,
            dynamic_shapes=tuple({0: batch, 1: sequence} for _ in names))
    finally:
        quiet.setLevel(level)
    path = os.path.join(output_dir, ONNX_FILES["onnx"])
    atomic_write_bytes(path, program.model_proto.SerializeToString())
    written = [path]
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        path8 = os.path.join(output_dir, ONNX_FILES["onnx_int8"])
        quantized = io.BytesIO()  # (onnx.save_model writes to a file object too)
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
        atomic_write_bytes(path8, quantized.getvalue())
        written.append(path8)
    logger.info("Exported %s", " and ".join(written))
    return written


def session(path: str, threads: int = 0):
    """An onnxruntime CPU session of an exported model."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's InvalidProtobuf, Fail, ...: a damaged file
        raise InputError(f"{path}: onnxruntime cannot load it (damaged?): {type(e).__name__}: "
                         f"{e}".splitlines()[0]) from None
