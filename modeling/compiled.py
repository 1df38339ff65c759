"""--compile: torch.compile (inductor) of the training forward pass and of prediction.

Training compiles `forward.logits_from_embeddings`, BERT's forward after the
embedding lookups, and with it (AOTAutograd) its backward: the dropouts,
residual adds and LayerNorms, bias + GELU, softmax and the bf16 casts become a
few fused kernels around the matmuls.
- The lookups stay eager (`forward.input_embeddings`): the word table's gradient is
  sparse (`training.sparse_word_embeddings`), which inductor does not compile, and
  inductor's backward of the position and token-type lookups adds rows with atomics,
  in no fixed order: with it inside, two runs of one seed ended with different weights
  (MiniLM, 10 steps, fp32 and bf16); with it outside, the same bytes.
- Dropout's bits are drawn eagerly (`forward.DropoutBits`): a compiled pass has
  the eager pass's masks, so seeds, checkpoints and resume work as without
  compile. With inductor's in-kernel random numbers, each fused dropout + add +
  LayerNorm kernel of a 32 x 14 batch took 2.2-2.5 ms on the CPU, against 0.1-0.6 ms
  reading pre-drawn bits (torch's profiler).
- Batch lengths vary: the batch and length dimensions are dynamic, one graph for
  all of them; `RECOMPILE_LIMIT` goes to torch.compile itself (dynamo's config is
  per thread, and the backward runs on another).
- The modules' float settings (LayerNorm eps, dropout rates) are constants
  (`specialize_float` while dynamo traces, in the calling thread): with
  `dynamic=True` alone dynamo traces them as symbolic floats, fails to turn them
  into tensors and traces the whole graph a second time.
Prediction compiles an eval copy of the model, its weights in the run's precision.
Inductor's `freezing` (weights as constants) was measured and left out: here it ran
the bf16 GEMMs as the same aten `addmm` (not prepacked oneDNN ones), a pass over
CoLA's dev rows took the same time (0.871 s against 0.883, medians of 8 alternating
passes), and its graphs skip AOTAutograd's cache, so a warm start compiled in 13 s
instead of 5.

Compiling the training step took 81-97 s on 2 cores with empty caches; inductor's
caches (FX graphs and AOTAutograd) live in a per-user directory, and with them the
next run of the same model and precision compiled in 9-10 s (before the float
settings became constants: 20-27 s). A compiled step saved 16-40 ms (CoLA, batch
32, bf16; benchmarks/train_throughput.py), and about 20 ms in whole 3-epoch CoLA runs
(804 steps: eager 139 and 145 s, compiled with warm caches 139 and 136 s, the
compile and torch._dynamo's import about 11.6 s of those); at 20 ms, `auto` compiles
a run of at least 4,600 steps, or 580 once this model and precision have been
compiled here (a marker in the cache directory says so). Predict compiled in
28-41 s cold and 3.2-4.5 s warm, then saved 0.15 ms a row (eager predict's short-row
attention is already the plain product that inductor fuses): `auto` compiles
270,000 rows or more, or 30,000 warm.
"""

import copy
import hashlib
import json
import logging
import os

import torch

from core import cpp_compiler, use_cache_dir

from .forward import classifier_logits, dropout_bits, input_embeddings, logits_from_embeddings

logger = logging.getLogger(__name__)

RECOMPILE_LIMIT = 8
# `auto` compiles a CPU run with at least this many training steps or prediction rows,
# with caches cold or warm (this model and precision compiled here before).
BREAK_EVEN = {"training steps": {"cold": 4600, "warm": 580},
              "predict rows": {"cold": 270000, "warm": 30000}}


def should_compile(setting: str, model, device: torch.device, precision: str, work: int,
                   what: str) -> bool:
    """--compile's decision, logged, for `work` training steps or predict rows (`what`, a
    key of BREAK_EVEN): on, off, or (auto) on for a BERT model on the CPU when `work`
    reaches BREAK_EVEN's count, cold or warm (warm: the marker a first compiled call
    leaves). On GPUs `auto` stays eager: the compiled step has not been measured there."""
    if setting != "auto":
        decided, why = setting == "on", f"--compile={setting}"
        why += f", inductor's caches in {use_cache_dir()}" if decided else ""
    elif model.config.model_type != "bert" or device.type != "cpu":
        decided, why = False, "--compile=auto: compiles BERT models on the CPU"
    elif cpp_compiler() is None:
        decided, why = False, "--compile=auto: no C++ compiler for torch.compile"
    else:
        caches = "warm" if os.path.exists(_marker(model, precision, what)) else "cold"
        needed = BREAK_EVEN[what][caches]
        decided = work >= needed
        why = (f"--compile=auto: {work} {what}, {'at least' if decided else 'under'} the "
               f"{needed} that repay compiling with {caches} caches in {use_cache_dir()}")
    logger.info("%s: %s (%s)", what.capitalize(), "compiled" if decided else "eager", why)
    return decided


def _marker(model, precision: str, what: str) -> str:
    """The file that says this model's training step or predict (`what`, a key of
    BREAK_EVEN), in `precision`, has been compiled into the cache: keyed by torch's
    version, the model's config, the precision and `what`."""
    key = json.dumps([torch.__version__, model.config.to_dict(), precision, what],
                     sort_keys=True, default=str)
    return os.path.join(use_cache_dir(), "bert-classifier-compiled",
                        hashlib.sha256(key.encode()).hexdigest())


def _mark(model, precision: str, what: str) -> None:
    marker = _marker(model, precision, what)
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    open(marker, "a").close()


def _compile(fn, precision: str, what: str):
    """torch.compile(fn) with dynamic batch and length dims and constant float settings;
    fn(model, ...)'s first call leaves the warm-cache marker that `should_compile` reads."""
    compiled = torch.compile(fn, dynamic=True, recompile_limit=RECOMPILE_LIMIT)
    marked = False

    def call(model, *args, **kwargs):
        nonlocal marked
        with torch._dynamo.config.patch(specialize_float=True):
            out = compiled(model, *args, **kwargs)
        if not marked:
            _mark(model, precision, what)
            marked = True
        return out
    return call


class TrainingForward:
    """classifier_logits(model, ...) for training, its BERT layers compiled."""

    def __init__(self, precision: str):
        self.compiled = _compile(logits_from_embeddings, precision, "training steps")

    def __call__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor) -> torch.Tensor:
        return self.compiled(model, input_embeddings(model, input_ids, token_type_ids),
                             attention_mask, dropout_bits(model, input_ids))


def training_forward(compile_: bool, precision: str):
    """The forward the training loop calls: compiled or classifier_logits."""
    return TrainingForward(precision) if compile_ else classifier_logits


def compiled_predictor(model, precision: str):
    """An inference function (input_ids, attention_mask, token_type_ids) -> logits, compiled,
    over an eval copy of `model` in bf16 or fp16 weights where `precision` says so."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    copied = copy.deepcopy(model).eval().to(dtype)  # (its config is the model's)
    compiled = _compile(classifier_logits, precision, "predict rows")

    def predict(**inputs) -> torch.Tensor:
        return compiled(copied, **inputs)
    return predict
