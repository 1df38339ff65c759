"""Train and predict throughput: this project vs Hugging Face Trainer, side by side.

    GLUE_DIR=../shared/data/glue python benchmarks/train_throughput.py --task=cola

Runs, one subprocess each (so peak RSS is per configuration), on the same rows,
model and hyperparameters:
  project     this project's defaults (length-grouped dynamic padding, auto precision)
  project_compiled  the same with --compile=on; compile times apart (a first 2-step
              run compiles the training step; predict's first pass over the dev rows
              compiles, its second is timed); with TORCHINDUCTOR_CACHE_DIR set to an
              empty directory, the first repeat's compile times are cold, the rest warm
  hf_default  HF Trainer as run_glue's defaults: every row padded to 128, fp32
  hf_best     HF Trainer at its best: dynamic padding, group_by_length, bf16 if fast
and prints a table, the ratios project/hf_*, and one JSON line. The
configurations take turns, `--repeats` times; the table holds each one's
median, and each ratio is the median of the repeats' own ratios (a shared 2-core
machine drifts by 10-30% between repeats, less within one). Model-FLOPs
utilisation counts real (non-pad) tokens against a matmul peak measured here.
The project's run then trains once more under torch's profiler, for the share of
a training step its matmuls take: that gives its matmul-bound ceiling, the rate
it would reach if every other cost (dropout, optimizer, norms, copies, Python)
were zero.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIGS = ("project", "project_compiled", "hf_default", "hf_best")
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
    return p.parse_args(argv)


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
    """The project's train and predict; compiled (after a compiling warm-up) for
    project_compiled."""
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

    def run_train(rows=train_set, epochs=args.epochs):
        with tempfile.TemporaryDirectory() as out:
            train_args = TrainArgs(out, args.batch_size, 1, args.learning_rate, epochs,
                                   0.1, 0.01, 1e-6, 1.0, 10 ** 9, 1, 42, precision,
                                   compile=compiled)
            train(model, rows, train_args, device, {})

    start = time.perf_counter()
    if compiled:  # two steps: the compile, apart from the timed run
        run_train(FeatureSet.from_features(train_features[:2 * args.batch_size]), 1.0)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    run_train()
    train_s = time.perf_counter() - start
    if compiled:
        predict_s, predict_compile_s = compiled_predict(model, dev_set, args, precision, device)
    else:
        start = time.perf_counter()
        predict_logits(model, dev_set, args.predict_batch_size, device, precision)
        predict_s, predict_compile_s = time.perf_counter() - start, 0.0
    run = {"train_s": train_s, "predict_s": predict_s, "compile_s": compile_s,
           "predict_compile_s": predict_compile_s, "precision": precision, "config": config,
           "peak_rss_mb": peak_rss_mb()}
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


def compiled_predict(model, dev_set, args, precision, device) -> tuple[float, float]:
    """(seconds of a pass over dev_set, its compile's seconds) for a compiled model:
    the first pass compiles, the second is timed; the compile is the difference."""
    import torch
    from modeling.compiled import compiled_predictor
    from training.data import inference_batches, iterate
    predict = compiled_predictor(model, precision)
    seconds = []
    for _ in range(2):
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in iterate(dev_set, inference_batches(dev_set.lengths(),
                                                            args.predict_batch_size),
                                 device):
                batch.pop("labels", None)
                predict(**batch)
        synchronize(device)
        seconds.append(time.perf_counter() - start)
    return seconds[1], seconds[0] - seconds[1]


def run_hf(args, processor, source, tokenizer, train_features, dev_features):
    import tempfile
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
    from modeling.model import build_model, load_config
    from benchmarks.accuracy import fast_bf16
    best = args.worker == "hf_best"
    labels = processor.get_labels()
    config = load_config(source.config_file, len(labels), labels)
    torch.manual_seed(42)
    model = build_model(source, config)

    def rows(features):
        out = []
        for f in features:
            pad = 0 if best else 128 - len(f.input_ids)
            out.append({"input_ids": f.input_ids + [0] * pad,
                        "attention_mask": f.input_mask + [0] * pad,
                        "token_type_ids": f.segment_ids + [0] * pad, "labels": f.label_id})
        return out

    device = run_device(args)
    bf16 = best and fast_bf16(device.type)
    with tempfile.TemporaryDirectory() as out:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=args.predict_batch_size,
            learning_rate=args.learning_rate, num_train_epochs=args.epochs, warmup_steps=0.1,
            weight_decay=0.01, adam_epsilon=1e-6, max_grad_norm=1.0, seed=42,
            use_cpu=device.type == "cpu",
            bf16=bf16, train_sampling_strategy="group_by_length" if best else "random",
            save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True)
        trainer = Trainer(model=model, args=training_args, train_dataset=rows(train_features),
                          data_collator=DataCollatorWithPadding(tokenizer) if best else None)
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        trainer.predict(rows(dev_features))
        predict_s = time.perf_counter() - start
    return {"train_s": train_s, "predict_s": predict_s, "precision": "bf16" if bf16 else "fp32",
            "compile_s": 0.0, "predict_compile_s": 0.0, "config": config,
            "peak_rss_mb": peak_rss_mb(), "matmul_share": None}


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
    report({name: median_run(r) for name, r in runs.items()}, paired_ratios(runs),
           run_device(args))


def median_run(runs: list[dict]) -> dict:
    """Each measurement's median over the runs, and the runs' train examples/s and compile
    seconds (the first run's are cold where inductor's cache directory started empty)."""
    out = {k: statistics.median(r[k] for r in runs) if isinstance(v, float) else v
           for k, v in runs[0].items()}  # matmul_share: a float for the project, else None
    for k in ("train_examples_per_s", "compile_s", "predict_compile_s"):
        out[f"{k}_runs"] = [round(r[k], 1) for r in runs]
    return out


def paired_ratios(runs: dict[str, list[dict]]) -> dict[str, list[float]]:
    """Project over each HF configuration, run by run: runs of one repeat are minutes
    apart, so their ratio is free of the machine's drift between repeats. The project's
    ceiling is compared with the other's train rate."""
    ratios = {}
    for mine_name in ("project", "project_compiled"):
        for other in ("hf_default", "hf_best", "project"):
            if mine_name == other or mine_name not in runs or other not in runs:
                continue
            for k in ("train_examples_per_s", "predict_examples_per_s", "ceiling_examples_per_s"):
                base = "train_examples_per_s" if k.startswith("ceiling") else k
                if k in runs[mine_name][0]:
                    ratios[f"{k}_{mine_name}_over_{other}"] = [
                        mine[k] / theirs[base]
                        for mine, theirs in zip(runs[mine_name], runs[other])]
    return ratios


def report(results: dict, ratios: dict[str, list[float]], device=None) -> None:
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
        if name == "project_compiled":
            print(f"{name} compile s per run: train {r['compile_s_runs']}, "
                  f"predict {r['predict_compile_s_runs']}")
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    print(f"matmul peak: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")
    if "project" in results:
        project = results["project"]
        print(f"project: matmuls take {project['matmul_share']:.0%} of training; with every "
              f"other cost at zero it would train at {project['ceiling_examples_per_s']:.1f} "
              "examples/s")
    print("ratios, the median of the runs' own (the runs' in brackets):")
    for k, values in ratios.items():
        print(f"{k}: {statistics.median(values):.2f}x "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    print(json.dumps({"results": results, "peak_flops": peaks, "ratio_runs": ratios,
                      "ratios": {k: statistics.median(v) for k, v in ratios.items()}},
                     sort_keys=True))


if __name__ == "__main__":
    main()
