"""--compile: torch.compile (inductor) of the training forward pass and of prediction.

Training compiles `forward.logits_from_embeddings`, BERT's forward after the
embedding lookups, and with it (AOTAutograd) its backward: the dropouts,
residual adds and LayerNorms, bias + GELU, softmax and the bf16 casts become a
few fused kernels around the matmuls.
- The lookups stay eager (`forward.input_embeddings`): the word table's gradient is
  sparse (`training.loop.sparse_word_embeddings`), which inductor does not compile, and
  inductor's backward of the position and token-type lookups adds rows with atomics,
  in no fixed order: with it inside, two runs of one seed ended with different weights
  (MiniLM, 10 steps, fp32 and bf16); with it outside, the same bytes.
- Dropout's bits are drawn eagerly (`forward.DropoutBits`): a compiled pass has
  the eager pass's masks, so seeds, checkpoints and resume work as without
  compile. With inductor's in-kernel random numbers, each fused dropout + add +
  LayerNorm kernel of a 32 x 14 batch took 2.2-2.5 ms on the CPU, against 0.1-0.6 ms
  reading pre-drawn bits (torch's profiler).
- Batch lengths vary: the batch and length dimensions are dynamic, one graph for
  all of them; `RECOMPILE_LIMIT` goes to torch.compile itself where it takes
  `recompile_limit` (torch 2.12 on; dynamo's config is per thread, and the backward
  runs on another), else to dynamo's global config (`compile_options`: every
  version-specific argument is feature-detected, as setup.cfg allows torch>=2.4).
- On CUDA (and on a CPU run taking CUDA's branches, `cuda_path`) the compile mode is
  `reduce-overhead`: inductor replays CUDA graphs, one recording per batch shape, so a
  step is one launch instead of hundreds (a MiniLM step's GPU math is a few hundred
  microseconds behind milliseconds of launches). Batches on CUDA pad to a multiple
  of `data.LENGTH_BUCKET` tokens, which keeps the recordings few. On a CPU device
  inductor skips the CUDA graphs itself (not verified on a GPU yet).
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
compiled here (a marker in the cache directory says so). On CUDA, `auto` uses
`CUDA_BREAK_EVEN`, estimates until a GPU measures them (benchmarks/gpu_check.py):
a compile of 60 s cold and 10 s warm, and CUDA graphs saving about 3 ms a step
(the launches of a MiniLM step) and 0.05 ms a predicted row. Predict compiled in
28-41 s cold and 3.2-4.5 s warm, then saved 0.15 ms a row (eager predict's short-row
attention is already the plain product that inductor fuses): `auto` compiles
270,000 rows or more, or 30,000 warm.
"""

import contextlib
import copy
import functools
import hashlib
import inspect
import json
import logging
import os
from typing import Optional

import torch

from .forward import classifier_logits, dropout_bits, input_embeddings, logits_from_embeddings
from .toolchain import cpp_compiler, use_cache_dir

logger = logging.getLogger(__name__)

RECOMPILE_LIMIT = 8
# `auto` compiles a CPU run with at least this many training steps or prediction rows,
# with caches cold or warm (this model and precision compiled here before).
BREAK_EVEN = {"training steps": {"cold": 4600, "warm": 580},
              "predict rows": {"cold": 270000, "warm": 30000}}
# The same on CUDA: estimates (see the module doc), not measurements.
CUDA_BREAK_EVEN = {"training steps": {"cold": 20000, "warm": 3300},
                   "predict rows": {"cold": 1200000, "warm": 200000}}


def compile_options(cuda_graphs: bool) -> dict:
    """torch.compile's keyword arguments, those this torch takes: dynamic shapes, CUDA graphs
    (`reduce-overhead`) when asked, and the recompile limit, given to torch.compile where
    it has `recompile_limit` (torch 2.12 on), else set in dynamo's config (its older
    name `cache_size_limit` before torch 2.6)."""
    accepted = inspect.signature(torch.compile).parameters
    options = {"dynamic": True}
    if cuda_graphs:
        options["mode"] = "reduce-overhead"
    if "recompile_limit" in accepted:
        options["recompile_limit"] = RECOMPILE_LIMIT
        return options
    config = torch._dynamo.config
    name = next((n for n in ("recompile_limit", "cache_size_limit") if hasattr(config, n)), None)
    if name:
        setattr(config, name, max(getattr(config, name), RECOMPILE_LIMIT))
    return options


def _trace_settings() -> contextlib.ExitStack:
    """While dynamo traces: the float settings as constants (`specialize_float`, torch 2.6
    on; older torch always specializes them), and no duck sizing where torch has the
    switch (a batch of 16 rows of 16 tokens would otherwise compile a second graph, for
    batch == length)."""
    stack = contextlib.ExitStack()
    if hasattr(torch._dynamo.config, "specialize_float"):
        stack.enter_context(torch._dynamo.config.patch(specialize_float=True))
    fx_config = getattr(torch.fx.experimental, "_config", None)
    if hasattr(fx_config, "use_duck_shape"):
        stack.enter_context(fx_config.patch(use_duck_shape=False))
    return stack


def _mark_step() -> None:
    """Tells CUDA graph trees a new step begins (torch 2.1 on), so the previous step's
    recorded outputs may be overwritten."""
    mark = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
    if mark:
        mark()


def _has_triton() -> bool:
    """Whether inductor can generate GPU kernels here."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def should_compile(setting: str, model, device: torch.device, precision: str, work: int,
                   what: str) -> bool:
    """--compile's decision, logged, for `work` training steps or predict rows (`what`, a
    key of BREAK_EVEN): on, off, or (auto) on for a BERT model when `work` reaches the
    count of BREAK_EVEN (CPU) or CUDA_BREAK_EVEN (CUDA), cold or warm (warm: the marker
    a first compiled call leaves); never without a C++ compiler (CPU) or triton (CUDA)."""
    cuda = device.type == "cuda"
    if setting != "auto":
        decided, why = setting == "on", f"--compile={setting}"
        why += f", inductor's caches in {use_cache_dir()}" if decided else ""
    elif model.config.model_type != "bert" or device.type not in ("cpu", "cuda"):
        decided, why = False, "--compile=auto: compiles BERT models on the CPU and CUDA"
    elif not cuda and cpp_compiler() is None:
        decided, why = False, "--compile=auto: no C++ compiler for torch.compile"
    elif cuda and not _has_triton():
        decided, why = False, "--compile=auto: no triton for torch.compile on CUDA"
    else:
        caches = "warm" if os.path.exists(_marker(model, precision, what)) else "cold"
        needed = (CUDA_BREAK_EVEN if cuda else BREAK_EVEN)[what][caches]
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


def _compile(fn, precision: str, what: str, cuda_graphs: bool = False):
    """torch.compile(fn) with dynamic batch and length dims and constant float settings,
    CUDA graphs where asked; fn(model, ...)'s first call leaves the warm-cache marker that
    `should_compile` reads."""
    compiled = torch.compile(fn, **compile_options(cuda_graphs))
    marked = False

    def call(model, *args, **kwargs):
        nonlocal marked
        if cuda_graphs:
            _mark_step()
        with _trace_settings():
            out = compiled(model, *args, **kwargs)
        if not marked:
            _mark(model, precision, what)
            marked = True
        return out
    return call


def cuda_graphs_for(device: torch.device, cuda_path: bool = False) -> bool:
    """Whether a compiled step replays CUDA graphs: on CUDA, and on a CPU run that takes
    CUDA's branches (`cuda_path`: the same compile options; inductor skips the graphs)."""
    return device.type == "cuda" or cuda_path


class TrainingForward:
    """classifier_logits(model, ...) for training, its BERT layers compiled (on the first
    call: CUDA graphs when the batch is on CUDA); `cuda_path` takes CUDA's branches on any
    device (see forward.classifier_logits)."""

    def __init__(self, precision: str, cuda_path: bool = False,
                 cuda_graphs: Optional[bool] = None):
        self.precision, self.cuda_path, self.compiled = precision, cuda_path, None
        self.cuda_graphs = cuda_graphs  # None: `cuda_graphs_for` the batch's device

    def __call__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor) -> torch.Tensor:
        if self.compiled is None:
            graphs = self.cuda_graphs
            if graphs is None:
                graphs = cuda_graphs_for(input_ids.device, self.cuda_path)
            self.compiled = _compile(logits_from_embeddings, self.precision, "training steps",
                                     graphs)
        return self.compiled(model, input_embeddings(model, input_ids, token_type_ids),
                             attention_mask, dropout_bits(model, input_ids, self.cuda_path),
                             self.cuda_path)


def training_forward(compile_: bool, precision: str, cuda_path: bool = False):
    """The forward the training loop calls: compiled (CUDA graphs on CUDA) or
    classifier_logits; both take CUDA's branches with `cuda_path`."""
    if compile_:
        return TrainingForward(precision, cuda_path)
    return functools.partial(classifier_logits, cuda_path=True) if cuda_path else classifier_logits


def compiled_predictor(model, precision: str):
    """An inference function (input_ids, attention_mask, token_type_ids) -> logits, compiled,
    over an eval copy of `model` in bf16 or fp16 weights where `precision` says so. On CUDA
    it replays CUDA graphs, and returns a copy of the logits (a replay overwrites them)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)
    copied = copy.deepcopy(model).eval().to(dtype)  # (its config is the model's)
    graphs = cuda_graphs_for(next(model.parameters()).device)
    compiled = _compile(classifier_logits, precision, "predict rows", graphs)

    def predict(**inputs) -> torch.Tensor:
        logits = compiled(copied, **inputs)
        return logits.clone() if graphs else logits
    return predict
