"""Train and predict throughput: this project vs Hugging Face Trainer, side by side.

    GLUE_DIR=../shared/data/glue python benchmarks/train_throughput.py --task=cola

Runs, one subprocess each (so peak RSS is per configuration), on the same rows,
model and hyperparameters:
  project     this project's defaults (length-grouped dynamic padding, auto precision)
  project_compiled  the same with --compile=on
  hf_default  HF Trainer as run_glue's defaults: every row padded to 128, fp32
  hf_best     HF Trainer at its best eager: dynamic padding, group_by_length, bf16 if fast
  hf_compiled hf_best with the Trainer's `torch_compile=True` and the fused AdamW
(benchmarks/hf_peer.py builds the HF ones). Both compiled configurations are timed in
steady state, compile apart, the same way (`warm_timed`): each trains twice over the same
rows and predicts the dev rows twice; the first pass compiles every shape the second
sees (the graphs compiled while timed are counted, and should be 0), the second is
timed, and the difference is the compile's seconds. With TORCHINDUCTOR_CACHE_DIR set to
an empty directory, the first repeat's compile times are cold, the rest warm.
The configurations take turns, `--repeats` times; the table holds each one's median,
and each ratio is the median of the repeats' own ratios (a shared 2-core machine drifts
by 10-30% between repeats, less within one). The ratios are the project's over each HF
configuration and over HF's fastest: per repeat, the best HF number measured (train and
predict each their own best), printed first and apart in the JSON
(`ratios_over_hf_fastest`). Model-FLOPs utilisation counts real (non-pad) tokens against
a matmul peak measured here. The project's run then trains once more under torch's
profiler, for the share of a training step its matmuls take: that gives its matmul-bound
ceiling, the rate it would reach if every other cost (dropout, optimizer, norms, copies,
Python) were zero.
"""

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import throughput_ratios as ratios  # noqa: E402
from benchmarks.throughput_ratios import HF_CONFIGS  # noqa: E402

CONFIGS = ("project", "project_compiled") + HF_CONFIGS
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
TASK_DIRS = {"cola": "CoLA", "mrpc": "MRPC"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="cola", choices=sorted(TASK_DIRS))
    p.add_argument("--rows", type=int, default=2000, help="train rows (first N)")
    p.add_argument("--slow_rows", type=int, default=320,
                   help="train rows for hf_default (pads to 128: time per row is constant)")
    p.add_argument("--predict_rows", type=int, default=1000, help="dev rows to predict")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--predict_batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=1e-4)
    p.add_argument("--model_dir", default=None, help="default: the embedded MiniLM-L6")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="every configuration on this device (default: cuda when there is one)")
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--repeats", type=int, default=3, help="runs of each configuration")
    p.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
    if unknown:
        p.error(f"--configs: unknown {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    return args


def load_rows(args, split: str, n: int):
    """(examples, features) for the first n rows of a split, tokenized by the project."""
    from modeling.model import resolve_source
    from modeling.tokenization import load_tokenizer
    from processors import get_processor
    from processors.features import convert_examples_to_features
    processor = get_processor(args.task)
    data_dir = os.path.join(os.environ["GLUE_DIR"], TASK_DIRS[args.task])
    examples = processor.get_examples(data_dir, split)[:n]
    source = resolve_source(args.model_dir, None, None)
    tokenizer = load_tokenizer(source.vocab_file, True)
    features = convert_examples_to_features(examples, processor.get_labels(), 128, tokenizer)
    return processor, source, tokenizer, features


def model_flops(config, lengths) -> float:
    """Training FLOPs on real tokens: 6 N T for the dense layers plus attention scores."""
    d, layers, ff = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    dense = layers * (4 * d * d + 2 * d * ff)
    return sum(6 * dense * n + 12 * layers * d * n * n for n in lengths)


def matmul_peak(dtype_name: str, device=None) -> float:
    """Best-of-5 FLOP/s of a 2048^3 matmul on `device` (default the CPU), the hardware
    ceiling MFU is measured against."""
    import torch
    dtype, device = getattr(torch, dtype_name), device or torch.device("cpu")
    a, b = (torch.randn(2048, 2048, dtype=dtype, device=device) for _ in range(2))
    best = float("inf")
    for _ in range(6):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * 2048 ** 3 / best


def matmul_share(run) -> float:
    """Share of the wall time of `run()` spent in matmuls (profiler self time).

    The profiler's own overhead counts as non-matmul time, so the share is, if
    anything, low, and the ceiling derived from it high.
    """
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        run()
        wall = time.perf_counter() - start
    matmul_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMULS)
    return matmul_us / 1e6 / wall


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_config(args):
    """Runs one configuration in this process and returns its measurements."""
    name = args.worker
    n = args.slow_rows if name == "hf_default" else args.rows
    processor, source, tokenizer, train_features = load_rows(args, "train", n)
    _, _, _, dev_features = load_rows(args, "dev", args.predict_rows)
    runner = run_project if name.startswith("project") else run_hf
    run = runner(args, processor, source, tokenizer, train_features, dev_features)
    train_s, config = run.pop("train_s"), run.pop("config")
    lengths = [len(f.input_ids) for f in train_features]
    padded = 128 if name == "hf_default" else None
    epochs = args.epochs
    real = sum(lengths) * epochs
    return {"config": name, "precision": run.pop("precision"), "train_rows": n,
            "train_examples_per_s": n * epochs / train_s, "real_tokens_per_s": real / train_s,
            "padding_share": padding_share(lengths, args.batch_size, padded, name),
            "predict_examples_per_s": len(dev_features) / run.pop("predict_s"),
            "train_flops_per_s": model_flops(config, lengths) * epochs / train_s, **run}


def padding_share(lengths, batch_size, pad_to, name) -> float:
    """Share of pad tokens in the training batches this configuration builds."""
    if pad_to:
        return 1 - sum(lengths) / (pad_to * len(lengths))
    from training.data import train_batches
    batches = train_batches(lengths, batch_size, 42, 0)  # the same grouping as both samplers
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / padded


def run_project(args, processor, source, tokenizer, train_features, dev_features):
    """The project's train and predict; compiled for project_compiled (`warm_timed`)."""
    import tempfile
    import torch
    from modeling.device import resolve_precision
    from modeling.model import build_model, load_config
    from processors.cache import FeatureSet
    from training.evaluation import predict_logits
    from training.loop import TrainArgs, train
    labels = processor.get_labels()
    config = load_config(source.config_file, len(labels), labels)
    torch.manual_seed(42)
    model = build_model(source, config)
    device = run_device(args)
    model = model.to(device)
    precision = resolve_precision("auto", device)
    train_set, dev_set = FeatureSet.from_features(train_features), FeatureSet.from_features(
        dev_features)

    compiled = args.worker == "project_compiled"

    def run_train():
        with tempfile.TemporaryDirectory() as out:
            train_args = TrainArgs(out, args.batch_size, 1, args.learning_rate, args.epochs,
                                   0.1, 0.01, 1e-6, 1.0, 10 ** 9, 1, 42, precision,
                                   compile=compiled)
            train(model, train_set, train_args, device, {})

    train_s, compile_s, graphs = warm_timed(run_train, compiled)
    if compiled:
        predict_s, predict_compile_s, predict_graphs = compiled_predict(model, dev_set, args,
                                                                        precision, device)
    else:
        start = time.perf_counter()
        predict_logits(model, dev_set, args.predict_batch_size, device, precision)
        predict_s, predict_compile_s, predict_graphs = time.perf_counter() - start, 0.0, 0
    run = {"train_s": train_s, "predict_s": predict_s, "compile_s": compile_s,
           "predict_compile_s": predict_compile_s, "timed_graphs": graphs + predict_graphs,
           "precision": precision, "config": config, "peak_rss_mb": peak_rss_mb()}
    if compiled:
        return {**run, "matmul_share": None}
    return {**run, "matmul_share": matmul_share(run_train)}  # after the RSS: profiling adds


def run_device(args):
    """--device, or CUDA when there is one."""
    import torch
    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def synchronize(device) -> None:
    """Waits for the device's queued work (timings on a GPU end there)."""
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compiled_predict(model, dev_set, args, precision, device) -> tuple[float, float, int]:
    """`warm_timed` of a pass over dev_set with the model compiled for prediction."""
    import torch
    from modeling.compiled import compiled_predictor
    from training.data import inference_batches, iterate
    predict = compiled_predictor(model, precision)

    def one_pass():
        with torch.inference_mode():
            for batch in iterate(dev_set, inference_batches(dev_set.lengths(),
                                                            args.predict_batch_size),
                                 device):
                batch.pop("labels", None)
                predict(**batch)
        synchronize(device)
    return warm_timed(one_pass, True)


def run_hf(args, processor, source, tokenizer, train_features, dev_features):
    """HF Trainer's train and predict (benchmarks/hf_peer.py); hf_compiled is timed on its
    second pass over the same rows, as project_compiled, and predicts with a Trainer and
    a model of its own (one that has not trained compiles its eval pass)."""
    import tempfile
    import torch
    from benchmarks import hf_peer
    from modeling.bert import to_transformers
    from modeling.model import build_model, load_config
    name, device = args.worker, run_device(args).type
    labels = processor.get_labels()
    config = load_config(source.config_file, len(labels), labels)
    torch.manual_seed(42)
    model = to_transformers(build_model(source, config))  # transformers' class, our weights
    pad_to = 128 if name == "hf_default" else None
    compiled = name == "hf_compiled"
    with tempfile.TemporaryDirectory() as out:
        training_args = hf_peer.training_arguments(
            name, out, device, batch_size=args.batch_size,
            eval_batch_size=args.predict_batch_size, learning_rate=args.learning_rate,
            epochs=args.epochs, warmup=0.1, weight_decay=0.01, seed=42)
        trainer = hf_peer.trainer(name, model, tokenizer, hf_peer.rows(train_features, pad_to),
                                  training_args)
        train_s, compile_s, graphs = warm_timed(trainer.train, compiled)
        if compiled:  # a model of its own: one a compiled Trainer trained is not recompiled
            trainer = hf_peer.predictor(name, to_transformers(build_model(source, config)),
                                        tokenizer, training_args)
        dev_rows = hf_peer.rows(dev_features, pad_to)
        predict_s, predict_compile_s, predict_graphs = warm_timed(
            lambda: trainer.predict(dev_rows), compiled)
    return {"train_s": train_s, "predict_s": predict_s,
            "precision": hf_peer.precision(name, device), "compile_s": compile_s,
            "predict_compile_s": predict_compile_s, "timed_graphs": graphs + predict_graphs,
            "config": config, "peak_rss_mb": peak_rss_mb(), "matmul_share": None}


def warm_timed(run, compiled: bool) -> tuple[float, float, int]:
    """(seconds of run(), compile seconds, graphs compiled while timed). Compiled, run()
    goes twice, the same work: the first compiles (untimed), the second is timed, and the
    compile's seconds are the difference; eager, once."""
    from benchmarks.hf_peer import graphs
    seconds = []
    for _ in range(2 if compiled else 1):
        before = graphs()
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return seconds[-1], seconds[0] - seconds[-1], graphs() - before


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_config(args)))
        return
    if not os.environ.get("GLUE_DIR"):
        sys.exit("train_throughput: set GLUE_DIR to the GLUE data directory")
    runs = {name: [] for name in args.configs.split(",")}
    for repeat in range(args.repeats):
        for name in runs:
            cmd = [sys.executable, __file__, f"--worker={name}"] + (argv or sys.argv[1:])
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.exit(f"train_throughput: {name} failed:\n{done.stderr[-3000:]}")
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{name}: run {repeat + 1} of {args.repeats} done", file=sys.stderr)
    for run in runs.get("project", []):
        run["ceiling_examples_per_s"] = run["train_examples_per_s"] / run["matmul_share"]
    report({name: ratios.median_run(r) for name, r in runs.items()}, run_device(args))
    ratios.report(ratios.paired_ratios(runs), ratios.hf_fastest(runs))


def report(results: dict, device=None) -> None:
    peaks = {name: matmul_peak(dtype, device) for name, dtype in
             (("fp32", "float32"), ("bf16", "bfloat16"), ("fp16", "float16"))}
    keys = ("precision", "train_rows", "train_examples_per_s", "real_tokens_per_s",
            "padding_share", "predict_examples_per_s", "compile_s", "predict_compile_s",
            "peak_rss_mb", "mfu")
    for r in results.values():
        r["mfu"] = r["train_flops_per_s"] / peaks[r["precision"]]
    print(f"{'config':12}" + "".join(f"{k:>24}" for k in keys))
    for name, r in results.items():
        print(f"{name:12}" + "".join(f"{r[k]:>24.3f}" if isinstance(r[k], float) else
                                     f"{r[k]:>24}" for k in keys))
    for name, r in results.items():
        print(f"{name} train examples/s per run: {r['train_examples_per_s_runs']}")
        if name.endswith("compiled"):
            print(f"{name} compile s per run: train {r['compile_s_runs']}, "
                  f"predict {r['predict_compile_s_runs']}; graphs compiled while timed "
                  f"{r['timed_graphs_runs']}")
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    if "project" in results:
        project = results["project"]
        print(f"project: matmuls take {project['matmul_share']:.0%} of training; with every "
              f"other cost at zero it would train at {project['ceiling_examples_per_s']:.1f} "
              "examples/s")
    print(json.dumps({"results": results, "peak_flops": peaks}, sort_keys=True))


if __name__ == "__main__":
    main()
