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
  the eager pass's masks, so seeds, checkpoints and resume work as without compile
  (inductor's in-kernel random numbers would differ from eager's, and ran slower here).
- Batch lengths vary: the batch and length dimensions are dynamic, one graph for
  all of them; `RECOMPILE_LIMIT` goes to torch.compile itself where it takes
  `recompile_limit` (torch 2.12 on; dynamo's config is per thread, and the backward
  runs on another), else to dynamo's global config (`compile_options`: every
  version-specific argument is feature-detected, as setup.cfg allows torch>=2.4).
- On CUDA (and on a CPU run taking CUDA's branches, `cuda_path`) the compile mode is
  `reduce-overhead`: inductor replays CUDA graphs, one recording per batch shape, so a
  step is one launch instead of hundreds. Batches on CUDA pad to a multiple of
  `training.data.LENGTH_BUCKET` tokens, which keeps the recordings few (not verified on
  a GPU yet).
- The modules' float settings (LayerNorm eps, dropout rates) are constants
  (`specialize_float` while dynamo traces): else dynamo traces them as symbolic floats
  and traces the whole graph a second time.
Prediction compiles an eval copy of the model, its weights in the run's precision
(without inductor's `freezing`, which ran the same GEMMs no faster and skips
AOTAutograd's cache).

Compiling costs more than a short run saves. Inductor's caches live in a per-user
directory (`toolchain.use_cache_dir`), so a model and precision compiled once compile
much faster the next time (a marker in the cache directory says so), and `auto` compiles
a run only past a break-even of steps (or predicted rows), cold or warm: `BREAK_EVEN`
(CPU, measured) and `CUDA_BREAK_EVEN` (estimates until a GPU measures them). The
measurements behind them are in benchmarks/README.md ("Compiling").
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
