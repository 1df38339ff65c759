"""Scale benchmark: an N-row train file through the features pipeline, memory and speed.

    GLUE_DIR=../shared/data/glue python benchmarks/scale.py --rows=1000000,10000000
    GLUE_DIR=../shared/data/glue python benchmarks/scale.py --rows=1000000 --repeats=3

Writes a synthetic SST-2 train.tsv of N rows (SST-2's train sentences, each with its row
number appended, so every row is distinct), then runs, each in a fresh process:
  tokenizer  the fast tokenizer's own batch rate on the file's first texts (the reference)
  cold       the run's example pass (read, check, hash) and a features build (cache miss)
  cached     the same with the cache built (what a second run pays before training)
  first_step the whole `run_classifier --do_train` command for one optimizer step, on the
             cached features (examples pass, model load, batch order, one step)
and prints rows/s and each process's peak RSS.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_train_file(glue_dir: str, rows: int, folder: str) -> str:
    """SST-2's train sentences, cycled, with ` <row number>` appended; a header first."""
    with open(os.path.join(glue_dir, "SST-2", "train.tsv"), encoding="utf-8") as f:
        sentences = [line.split("\t") for line in f.read().splitlines()[1:] if line]
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "train.tsv")
    with open(path, "w", encoding="utf-8") as f:
        f.write("sentence\tlabel\n")
        for start in range(0, rows, 100_000):
            f.write("".join(f"{sentences[i % len(sentences)][0]} {i}\t"
                            f"{sentences[i % len(sentences)][1]}\n"
                            for i in range(start, min(rows, start + 100_000))))
    return path


def vocab_file() -> str:
    from modeling.model import default_model_dir
    return os.path.join(default_model_dir(), "vocab.txt")


def phase_tokenizer(data_dir: str, sample: int) -> dict:
    from modeling.tokenization import load_tokenizer
    from processors.features import tokenize
    with open(os.path.join(data_dir, "train.tsv"), encoding="utf-8") as f:
        f.readline()
        texts = [f.readline().split("\t")[0] for _ in range(sample)]
    tokenizer = load_tokenizer(vocab_file(), True)
    start = time.perf_counter()
    for i in range(0, len(texts), 4096):
        tokenize(tokenizer, texts[i:i + 4096])
    return {"rows": len(texts), "seconds": time.perf_counter() - start}


def phase_features(data_dir: str, cache_dir: str) -> dict:
    """The run's pre-work example pass, then load_features (a build or a cache hit)."""
    from modeling.tokenization import load_tokenizer
    from processors import get_processor
    from processors.builders import BertFeatures
    from processors.cache import load_features
    from processors.splits import SplitExamples
    tokenizer = load_tokenizer(vocab_file(), True)
    processor = get_processor("sst-2")
    start = time.perf_counter()
    examples = SplitExamples(processor, data_dir, "train")
    examples_s = time.perf_counter() - start
    features = load_features(processor, data_dir, "train", BertFeatures(tokenizer), vocab_file(),
                             True, 128, cache_dir, examples=examples)
    return {"rows": len(features), "seconds": time.perf_counter() - start,
            "examples_pass_s": examples_s}


def phase_first_step(data_dir: str, cache_dir: str, rows: int) -> dict:
    """run_classifier for exactly one optimizer step of batch 32."""
    import run_classifier
    out = tempfile.mkdtemp(prefix="scale_out_")
    sys.argv = ["run_classifier", "--task_name=sst-2", f"--data_dir={data_dir}",
                f"--output_dir={out}", f"--cache_dir={cache_dir}", "--do_train",
                f"--num_train_epochs={1 / (rows // 32)}", "--save_checkpoints_steps=1000000"]
    start = time.perf_counter()
    try:
        run_classifier.run()
    except SystemExit as e:
        if e.code:
            raise
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"rows": rows, "seconds": time.perf_counter() - start}


def child(args) -> None:
    """One phase in this process; prints its result as one JSON line."""
    if args.phase == "tokenizer":
        result = phase_tokenizer(args.data_dir, args.sample)
    elif args.phase == "first_step":
        result = phase_first_step(args.data_dir, args.cache_dir, args.rows_now)
    else:
        result = phase_features(args.data_dir, args.cache_dir)
    print("RESULT " + json.dumps({**result, "peak_rss_mb": peak_rss_mb()}), flush=True)


def run_phase(phase: str, **options) -> dict:
    argv = [sys.executable, os.path.abspath(__file__), f"--phase={phase}"] + [
        f"--{k}={v}" for k, v in options.items()]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        sys.exit(f"{phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def paired_builds(rows: int, data_dir: str, cache_dir: str, sample: int, repeats: int):
    """Tokenizer reference and cold build, alternated `repeats` times (a fresh cache each):
    on a shared machine each pair sees the same load, so their ratio is what counts."""
    pairs = []
    for _ in range(repeats):
        shutil.rmtree(cache_dir, ignore_errors=True)
        tokenizer = run_phase("tokenizer", data_dir=data_dir, sample=min(sample, rows))
        cold = run_phase("cold", data_dir=data_dir, cache_dir=cache_dir)
        pairs.append((tokenizer["rows"] / tokenizer["seconds"], cold))
    return pairs


def measure(rows: int, work: str, sample: int, repeats: int) -> None:
    data_dir = os.path.join(work, f"sst2_{rows}")
    cache_dir = os.path.join(work, f"cache_{rows}")
    size = os.path.getsize(write_train_file(os.environ["GLUE_DIR"], rows, data_dir))
    print(f"\n{rows:,} rows ({size / 2**20:.0f} MiB train.tsv)")
    pairs = paired_builds(rows, data_dir, cache_dir, sample, repeats)
    cached = run_phase("cached", data_dir=data_dir, cache_dir=cache_dir)
    step = run_phase("first_step", data_dir=data_dir, cache_dir=cache_dir, rows_now=rows)
    ratios = [rows / cold["seconds"] / rate for rate, cold in pairs]
    for rate, cold in pairs:
        print(f"  tokenizer alone   {rate:10,.0f} rows/s (first {min(sample, rows):,} texts)")
        print(f"  cold build        {rows / cold['seconds']:10,.0f} rows/s  "
              f"{cold['seconds']:8.1f} s  peak RSS {cold['peak_rss_mb']:7.0f} MB, examples "
              f"pass {cold['examples_pass_s']:.1f} s")
    for name, r in (("cached load", cached), ("first step", step)):
        extra = (f", examples pass {r['examples_pass_s']:.1f} s"
                 if "examples_pass_s" in r else "")
        print(f"  {name:<17} {rows / r['seconds']:10,.0f} rows/s  {r['seconds']:8.1f} s  "
              f"peak RSS {r['peak_rss_mb']:7.0f} MB{extra}")
    cold = pairs[-1][1]
    build = cold["seconds"] - cold["examples_pass_s"]
    load = cached["seconds"] - cached["examples_pass_s"]
    print(f"  features alone    build {build:.1f} s, cached load {load:.2f} s "
          f"(the examples pass before them is the cache key: every run pays it)")
    peak = max(r["peak_rss_mb"] for r in [cached, step] + [c for _, c in pairs])
    print(f"  cold build / tokenizer rate: {statistics.median(ratios):.2f} (per pair: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.70); cached features load / "
          f"build: {load / build:.3f} (goal < 0.05); with the examples pass: "
          f"{cached['seconds'] / cold['seconds']:.3f}; peak RSS max {peak:.0f} MB (goal < 3000)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated N")
    parser.add_argument("--work_dir", default=None, help="where the files go (default: a "
                        "temp dir, removed at the end)")
    parser.add_argument("--sample", type=int, default=200_000,
                        help="texts for the tokenizer's reference rate")
    parser.add_argument("--repeats", type=int, default=1,
                        help="tokenizer/cold-build pairs per N (their ratio's median is printed)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)
    parser.add_argument("--cache_dir", help=argparse.SUPPRESS)
    parser.add_argument("--rows_now", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return
    if "GLUE_DIR" not in os.environ:
        sys.exit("set GLUE_DIR to the GLUE data (SST-2 is read for its sentences)")
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    work = args.work_dir or tempfile.mkdtemp(prefix="scale_")
    try:
        for rows in (int(n) for n in args.rows.split(",")):
            measure(rows, work, args.sample, args.repeats)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
