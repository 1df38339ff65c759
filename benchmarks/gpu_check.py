"""One script for the first GPU: what a review of the CUDA path runs, in under 9 minutes.

    GLUE_DIR=../shared/data/glue python benchmarks/gpu_check.py --out=gpu_check.json
    python benchmarks/gpu_check.py --dry_run     # the same steps on the CPU, tiny sizes

Steps (each timed; a failing step is recorded and the next one runs):
  environment     versions, the GPU, what `--precision=auto` picks, which arguments
                  torch.compile takes
  training_steps  five steps per precision with every tensor on the device and no host
                  sync (CUDA's sync debug mode as well), logits equal to transformers'
                  BertForSequenceClassification with the same weights
  tests           the GPU-relevant test files (pytest; --dry_run only collects them)
  compile_shapes  --compile=on at odd lengths and 1-row batches, against eager
  mrpc            MRPC, 3 epochs, bf16 and fp16: dev F1 and the time split (GLUE_DIR)
  throughput      BERT-base size, random weights, 32 x 128: eager, compiled, compiled with
                  CUDA graphs (ms a step, MFU against a measured matmul peak), beside HF's
                  Trainer on the same device
  torchrun        run_classifier under torchrun --nproc_per_node=1 (NCCL; gloo dry)
Writes one JSON (--out) and prints a short table; exit 1 when a step failed. --dry_run
compiles on dynamo's aot_eager backend (no inductor codegen: seconds, not minutes).
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

GPU_TESTS = ("tests/test_gpu_path.py", "tests/test_compiled.py", "tests/test_forward.py",
             "tests/test_optimization.py", "tests/test_device.py", "tests/test_resume.py",
             "tests/test_distributed.py")
SYNC_OPS = ("_local_scalar_dense", "nonzero", "is_nonzero", "equal", "masked_select",
            "unique", "_unique2", "repeat_interleave")
TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 1e-2}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry_run", action="store_true", help="CPU, tiny sizes (the test suite)")
    p.add_argument("--out", default="gpu_check.json")
    p.add_argument("--model_dir", default=None, help="default: the embedded MiniLM-L6")
    p.add_argument("--steps", default="", help="comma-separated subset of the steps")
    return p.parse_args(argv)


class Context:
    """What the steps share: device, sizes, a scratch folder, a tiny model for dry runs."""

    def __init__(self, args, tmp: str):
        import torch
        from conftest import write_similarity_data, write_tiny_bert
        self.dry = args.dry_run
        self.device = torch.device("cpu" if self.dry else "cuda")
        self.tmp = tmp
        self.model_dir = write_tiny_bert(os.path.join(tmp, "tiny")) if self.dry else \
            args.model_dir
        self.data_dir = write_similarity_data(os.path.join(tmp, "data"), 48, 16, 8)
        self.precisions = ("fp32", "bf16", "fp16")
        self.glue = os.environ.get("GLUE_DIR")

    def model(self, eval_mode: bool = False):
        import torch
        from modeling.model import build_model, load_config, resolve_source
        source = resolve_source(self.model_dir, None, None)
        torch.manual_seed(0)
        model = build_model(source, load_config(source.config_file, 2, ["0", "1"]))
        return (model.eval() if eval_mode else model.train()).to(self.device)

    def compile_backend(self):
        """aot_eager in a dry run (the same dynamo and AOTAutograd), else as it is."""
        if not self.dry:
            return contextlib.nullcontext()
        from unittest import mock
        import torch
        real = torch.compile

        def compile(fn=None, **options):
            options.pop("mode", None)
            return real(fn, **dict(options, backend="aot_eager"))
        return mock.patch.object(torch, "compile", compile)


def environment(ctx) -> dict:
    import inspect
    import platform
    import torch
    import transformers
    from modeling.device import choose_precision, describe_device
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__, "cuda": torch.version.cuda,
           "device": describe_device(ctx.device),
           "auto_precision": choose_precision("auto", ctx.device)}
    if ctx.device.type == "cuda":
        out["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        out["bf16_supported"] = torch.cuda.is_bf16_supported()
    accepted = inspect.signature(torch.compile).parameters
    out["torch_compile_takes"] = {name: name in accepted for name in
                                  ("dynamic", "mode", "options", "recompile_limit")}
    with contextlib.suppress(ImportError):
        import triton
        out["triton"] = triton.__version__
    return out


def training_steps(ctx) -> dict:
    """Five steps per precision, recorded; then eval logits against transformers'."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from modeling.forward import classifier_logits
    from processors.cache import FeatureSet
    from processors.features import InputFeatures
    from training import loop as training
    from training.data import iterate, train_batches

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.devices, self.syncs = set(), []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            self.syncs += [name] if name in SYNC_OPS else []
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.dim() > 0:
                    self.devices.add(t.device.type)
            return out

    g = torch.Generator().manual_seed(0)
    rows = [InputFeatures(ids, [1] * len(ids), [0] * len(ids), i % 2) for i, ids in enumerate(
        [2] + torch.randint(5, 60, (int(n),), generator=g).tolist() + [3]
        for n in torch.randint(3, 40, (40,), generator=g))]
    data = FeatureSet.from_features(rows)
    out = {}
    for precision in ctx.precisions:
        model = ctx.model()
        args = training.TrainArgs(os.path.join(ctx.tmp, f"steps-{precision}"), 8, 1, 1e-4, 1.0,
                                  0.0, 0.01, 1e-6, 1.0, 10 ** 9, 1, 0, precision,
                                  cuda_path=ctx.dry)
        loop = training._Loop(model, data, args, ctx.device, {})
        batches = list(iterate(data, train_batches(data.lengths(), 8, 0, 0)[:5], ctx.device))
        recorder = Recorder()
        sync_debug = (torch.cuda.set_sync_debug_mode if ctx.device.type == "cuda" else
                      lambda mode: None)
        with training.sparse_word_embeddings(model, ctx.device, ctx.dry), recorder:
            sync_debug("error")
            try:
                for batch in batches:
                    loop.train_on(batch)
            finally:
                sync_debug("default")
        loss = loop.flush()
        model.eval()
        batch = {k: v for k, v in batches[0].items() if k != "labels"}
        from modeling.bert import to_transformers
        from modeling.device import autocast
        hf = to_transformers(model)  # transformers' class with the same weights
        with torch.no_grad(), autocast(ctx.device, precision):
            ours = classifier_logits(model, **batch).float()
            theirs = hf(**batch).logits.float()
        diff = float((ours - theirs).abs().max())
        out[precision] = {"loss": loss, "devices": sorted(recorder.devices),
                          "syncs": recorder.syncs, "max_logit_diff_vs_hf": diff}
        assert recorder.devices == {ctx.device.type}, recorder.devices
        assert not recorder.syncs, recorder.syncs
        assert diff < TOLERANCE[precision], (precision, diff)
    return out


def tests(ctx) -> dict:
    """The GPU-relevant test files; a dry run only collects them (it runs inside them)."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", *GPU_TESTS]
    cmd += ["--collect-only"] if ctx.dry else []
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=420)
    tail = done.stdout.strip().splitlines()[-1:] or [done.stderr[-500:]]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return {"returncode": done.returncode, "summary": tail[0]}


def compile_shapes(ctx) -> dict:
    """--compile=on's training forward and predict at odd lengths and 1-row batches."""
    import torch
    from modeling.compiled import TrainingForward, compiled_predictor
    from modeling.forward import classifier_logits
    model = ctx.model(eval_mode=True)
    out = {}
    with ctx.compile_backend():
        train_forward, predict = TrainingForward("fp32", ctx.dry), compiled_predictor(model, "fp32")
        for rows, length in ((1, 7), (3, 13), (1, 1 + 32), (5, 61)):
            g = torch.Generator().manual_seed(rows * length)
            ids = torch.randint(5, 60, (rows, length), generator=g).to(ctx.device)
            mask = torch.ones_like(ids)
            mask[0, max(1, length // 2):] = 0
            inputs = {"input_ids": ids, "attention_mask": mask,
                      "token_type_ids": torch.zeros_like(ids)}
            with torch.no_grad():
                eager = classifier_logits(model, **inputs)
                diffs = [float((fn(**inputs) - eager).abs().max()) for fn in (
                    lambda **x: train_forward(model, **x), predict)]
            out[f"{rows}x{length}"] = diffs
            assert max(diffs) < TOLERANCE["fp32"], (rows, length, diffs)
    return out


def _run_classifier(ctx, out: str, *flags: str, torchrun: bool = False) -> float:
    """Seconds of one run_classifier command (under torchrun where asked)."""
    cmd = [sys.executable] + (["-m", "torch.distributed.run", "--standalone",
                               "--nproc_per_node=1"] if torchrun else [])
    cmd += [os.path.join(ROOT, "run_classifier.py"), f"--output_dir={out}", "--do_train",
            "--do_eval"] + (["--no_cuda"] if ctx.dry else []) + list(flags)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return time.perf_counter() - start


def mrpc(ctx) -> dict:
    """MRPC (dry: the tiny similarity task) in each reduced precision: dev metric, times."""
    out = {}
    if ctx.dry:
        task = ["--task_name=sentence_similarity", f"--data_dir={ctx.data_dir}",
                f"--init_checkpoint={ctx.model_dir}", "--num_train_epochs=1"]
    else:
        assert ctx.glue, "set GLUE_DIR"
        task = ["--task_name=mrpc", f"--data_dir={os.path.join(ctx.glue, 'MRPC')}",
                "--num_train_epochs=3", "--learning_rate=1e-4"]
        task += [f"--init_checkpoint={ctx.model_dir}"] if ctx.model_dir else []
    for precision in ("bf16",) if ctx.dry else ("bf16", "fp16"):
        folder = os.path.join(ctx.tmp, f"mrpc-{precision}")
        seconds = _run_classifier(ctx, folder, f"--precision={precision}", *task)
        with open(os.path.join(folder, "eval_results.json")) as f:
            results = json.load(f)
        with open(os.path.join(folder, "training_stats.json")) as f:
            train_s = sum(row["time_s"] for row in json.load(f))
        out[precision] = {"dev_f1": results.get("eval_f1"),
                          "dev_accuracy": results.get("eval_accuracy"),
                          "command_s": round(seconds, 1), "train_s": round(train_s, 1),
                          "other_s": round(seconds - train_s, 1)}
    return out


def torchrun(ctx) -> dict:
    folder = os.path.join(ctx.tmp, "torchrun")
    seconds = _run_classifier(ctx, folder, "--task_name=sentence_similarity",
                              f"--data_dir={ctx.data_dir}", "--num_train_epochs=1",
                              *([f"--init_checkpoint={ctx.model_dir}"] if ctx.model_dir
                                else []), torchrun=True)
    with open(os.path.join(folder, "run_config.json")) as f:
        resolved = json.load(f)["resolved"]
    return {"seconds": round(seconds, 1), "world_size": resolved["world_size"],
            "backend": "gloo" if ctx.dry else "nccl"}


def _bert_base(ctx):
    """A random BertForSequenceClassification, BERT-base size (dry: tiny)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                 intermediate_size=64) if ctx.dry else {}
    config = BertConfig(**sizes, num_labels=2)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    return BertForSequenceClassification(config).to(ctx.device)


def _step_ms(ctx, model, batch: dict, forward, steps: int) -> float:
    """ms a bf16 training step of `forward` (training_forward's), after two warm-up steps
    (compiles, CUDA graph recordings)."""
    import torch
    from training import distributed
    from training import loop as training
    from training.optimization import create_optimizer
    args = training.TrainArgs(ctx.tmp, len(batch["labels"]), 1, 1e-5, 1.0, 0.0, 0.01, 1e-6,
                              1.0, 10 ** 9, 1, 0, "bf16")
    optimizer, scheduler = create_optimizer(model, 1e-5, 0.01, 1e-6, 10 ** 6, 0)
    wrapped = distributed.wrap(model, forward)
    sync = torch.cuda.synchronize if ctx.device.type == "cuda" else (lambda: None)
    for i in range(2 + steps):
        if i == 2:
            sync()
            start = time.perf_counter()
        training._train_step(wrapped, dict(batch), args, ctx.device, optimizer, scheduler, None)
    sync()
    return (time.perf_counter() - start) / steps * 1e3


def _matmul_peak(ctx) -> float:
    """Best-of-5 bf16 FLOP/s of a square matmul on the device (the MFU's ceiling)."""
    import torch
    n = 256 if ctx.dry else 8192
    a = torch.randn(n, n, dtype=torch.bfloat16, device=ctx.device)
    sync = torch.cuda.synchronize if ctx.device.type == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(6):
        sync()
        start = time.perf_counter()
        a @ a
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def _hf_trainer_ms(ctx, model, batch: dict, steps: int) -> float:
    """HF Trainer's ms a step on the same device and batch (its runtime over all steps,
    warm-up included: a bound from above)."""
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback
    rows = [{k: v[i].tolist() for k, v in batch.items()} for i in range(len(batch["labels"]))]
    args = TrainingArguments(
        output_dir=os.path.join(ctx.tmp, "hf"), per_device_train_batch_size=len(rows),
        max_steps=steps, learning_rate=1e-5, bf16=not ctx.dry, use_cpu=ctx.dry,
        save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.remove_callback(PrinterCallback)  # (it prints the run's summary into our table)
    result = trainer.train()
    return result.metrics["train_runtime"] / steps * 1e3


def throughput(ctx) -> dict:
    import torch
    from modeling.compiled import TrainingForward
    from modeling.forward import classifier_logits
    from benchmarks.train_throughput import model_flops
    rows, length, steps = (4, 16, 2) if ctx.dry else (32, 128, 20)
    g = torch.Generator().manual_seed(0)
    batch = {"input_ids": torch.randint(1000 % 99, 99, (rows, length), generator=g),
             "attention_mask": torch.ones(rows, length, dtype=torch.long),
             "token_type_ids": torch.zeros(rows, length, dtype=torch.long),
             "labels": torch.randint(0, 2, (rows,), generator=g)}
    batch = {k: v.to(ctx.device) for k, v in batch.items()}
    forwards = {"eager": classifier_logits,
                "compiled": TrainingForward("bf16", cuda_graphs=False),
                "compiled_cuda_graphs": TrainingForward("bf16", cuda_path=ctx.dry,
                                                        cuda_graphs=True)}
    model = _bert_base(ctx).train()
    flops = model_flops(model.config, [length] * rows)
    peak = _matmul_peak(ctx)
    out = {"batch": f"{rows}x{length}", "bf16_matmul_peak_tflops": peak / 1e12}
    with ctx.compile_backend():
        for name, forward in forwards.items():
            ms = _step_ms(ctx, model, batch, forward, steps)
            out[name] = {"ms_per_step": round(ms, 3), "mfu": flops / (ms / 1e3) / peak}
    import importlib.util
    if ctx.dry and importlib.util.find_spec("accelerate") is None:
        out["hf_trainer"] = "not run: HF's Trainer needs accelerate (pip install .[bench])"
        return out
    ms = _hf_trainer_ms(ctx, _bert_base(ctx), batch, steps + 2)
    out["hf_trainer"] = {"ms_per_step": round(ms, 3), "mfu": flops / (ms / 1e3) / peak}
    return out


STEPS = {"environment": environment, "training_steps": training_steps, "tests": tests,
         "compile_shapes": compile_shapes, "mrpc": mrpc, "throughput": throughput,
         "torchrun": torchrun}


def run_steps(ctx, names) -> dict:
    """Each step's result (or error) and seconds; a failure does not stop the others."""
    results = {}
    for name in names:
        start = time.perf_counter()
        try:
            results[name] = {"ok": True, "result": STEPS[name](ctx)}
        except Exception as e:  # a check script: record, go on, report at the end
            results[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000],
                             "traceback": traceback.format_exc()[-4000:]}
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"{name}: {'ok' if results[name]['ok'] else 'FAILED'} "
              f"({results[name]['seconds']} s)", file=sys.stderr, flush=True)
    return results


def table(results: dict) -> str:
    lines = [f"{'step':16} {'ok':4} {'seconds':>8}  summary"]
    for name, r in results.items():
        summary = json.dumps(r.get("result", r.get("error")), default=str)
        lines.append(f"{name:16} {'yes' if r['ok'] else 'NO':4} {r['seconds']:>8}  "
                     f"{summary[:150]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from modeling.disk import atomic_write_text
    names = [n for n in args.steps.split(",") if n] or list(STEPS)
    unknown = sorted(set(names) - set(STEPS))
    if unknown:
        sys.exit(f"gpu_check: --steps: unknown {', '.join(unknown)} (of {', '.join(STEPS)})")
    import torch
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here (--dry_run runs the steps on the CPU)")
    with tempfile.TemporaryDirectory() as tmp:
        results = run_steps(Context(args, tmp), names)
    atomic_write_text(args.out, json.dumps({"dry_run": args.dry_run, "steps": results},
                                           indent=1, sort_keys=True, default=str) + "\n")
    print(table(results))
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
