"""Scale benchmark: an N-row train file through the features pipeline and the whole command.

    GLUE_DIR=../shared/data/glue python benchmarks/scale.py --rows=1000000,10000000
    GLUE_DIR=../shared/data/glue python benchmarks/scale.py --rows=1000000 --repeats=3 \
        --baseline_root=/tmp/base   # after: git worktree add /tmp/base <the commit to compare>

Writes a synthetic SST-2 train.tsv of N rows (SST-2's train sentences, each with its row
number appended, so every row is distinct), then runs, each in a fresh process:
  tokenizer  the fast tokenizer's own batch rate on the file's first texts (the reference)
  cold       the run's example pass (read, check, hash) and a features build (cache miss)
  cached     the same with the cache built
and prints rows/s and each process's peak RSS. Then the whole command, `run_classifier
--do_train` for one optimizer step, start to first step (the moment the loop starts: its
"Running training" line) and peak RSS, cold (an empty cache folder) and cached (the
second run, the fastest of --repeats), for the built-in processor (sst-2: its cached run
finds the examples record) and for a user's processor (a Google-style module loaded with
--processor_module, as Google's README has users write them: its own get_train_examples
with _read_tsv and InputExample, so the run keeps the examples key and pays the pass).
With --baseline_root (a checkout of an earlier commit, e.g. a git worktree), the user
processor's cached start is measured there too, alternating with this tree's; the issue's
goals are printed beside the numbers. The project's bytecode (and the baseline's) is written
first, as a user's first run writes it (benchmarks/bytecode.py).
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
    examples = SplitExamples(processor, data_dir, "train", cache_dir=cache_dir)
    examples_s = time.perf_counter() - start
    features = load_features(processor, data_dir, "train", BertFeatures(tokenizer), vocab_file(),
                             True, 128, cache_dir, examples=examples)
    return {"rows": len(features), "seconds": time.perf_counter() - start,
            "examples_pass_s": examples_s, "from_record": examples.from_record}


# A user's processor, as Google's README has users write one (run with --processor_module).
USER_PROCESSOR = '''import os

from processors import PROCESSORS, DataProcessor, InputExample


class MySst2Processor(DataProcessor):
    def get_train_examples(self, data_dir):
        return self._create_examples(self._read_tsv(os.path.join(data_dir, "train.tsv")), "train")

    def get_labels(self):
        return ["0", "1"]

    def _create_examples(self, lines, set_type):
        examples = []
        for (i, line) in enumerate(lines):
            if i == 0:
                continue
            guid = "%s-%s" % (set_type, i)
            examples.append(InputExample(guid=guid, text_a=line[0], text_b=None, label=line[1]))
        return examples


PROCESSORS["my_sst2"] = MySst2Processor
'''


def whole_command(root: str, data_dir: str, cache_dir: str, rows: int, task: list) -> dict:
    """`run_classifier --do_train` for one step of batch 32 from `root` (this tree or the
    baseline's): seconds to its first step ("Running training"), in all, and peak RSS."""
    out = tempfile.mkdtemp(prefix="scale_out_")
    argv = [sys.executable, os.path.join(root, "run_classifier.py"), *task,
            f"--data_dir={data_dir}", f"--output_dir={out}", f"--cache_dir={cache_dir}",
            "--do_train", f"--num_train_epochs={1 / (rows // 32)}",
            "--save_checkpoints_steps=1000000"]
    start, first, tail = time.perf_counter(), None, []
    proc = subprocess.Popen(argv, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if first is None and "Running training" in line:
            first = time.perf_counter() - start
        tail = (tail + [line])[-30:]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode or first is None:
        sys.exit(f"run_classifier failed in {root}:\n{''.join(tail)}")
    return {"first_step_s": first, "seconds": time.perf_counter() - start,
            "peak_rss_mb": usage.ru_maxrss / 1024}


def command_runs(root: str, data_dir: str, cache_dir: str, rows: int, task: list,
                 repeats: int) -> tuple[dict, dict]:
    """(cold: an empty cache folder, cached: the fastest of `repeats` runs after it)."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    cold = whole_command(root, data_dir, cache_dir, rows, task)
    cached = min((whole_command(root, data_dir, cache_dir, rows, task)
                  for _ in range(repeats)), key=lambda r: r["first_step_s"])
    return cold, cached


def show(name: str, result: dict) -> None:
    print(f"  {name:<28} to first step {result['first_step_s']:7.2f} s  (whole "
          f"{result['seconds']:6.1f} s)  peak RSS {result['peak_rss_mb']:6.0f} MB")


def measure_commands(rows: int, work: str, data_dir: str, repeats: int,
                     baseline: str = None) -> None:
    """The whole command, built-in and user processor (and the baseline's user processor),
    with the issue's goals beside them."""
    module = os.path.join(work, "my_sst2_processor.py")
    with open(module, "w", encoding="utf-8") as f:
        f.write(USER_PROCESSOR)
    user = ["--task_name=my_sst2", f"--processor_module={module}"]
    cache = os.path.join(work, f"cache_cmd_{rows}")
    built_cold, built = command_runs(ROOT, data_dir, cache, rows, ["--task_name=sst-2"], repeats)
    user_cold, user_cached = command_runs(ROOT, data_dir, cache + "_user", rows, user, repeats)
    show("sst-2 cold", built_cold)
    show("sst-2 cached (record)", built)
    show("user processor cold", user_cold)
    show("user processor cached", user_cached)
    ratio = built["first_step_s"] / built_cold["first_step_s"]
    print(f"  goal: sst-2 cached/cold <= 5% at 1M rows: {ratio:.1%}")
    if rows >= 10_000_000:
        print(f"  goal at 10M rows: cached start < 10 s: {built['first_step_s']:.1f} s, peak "
              f"RSS < 3000 MB: {max(r['peak_rss_mb'] for r in (built, built_cold)):.0f} MB")
    if baseline:
        _, base = command_runs(baseline, data_dir, cache + "_base", rows, user, repeats)
        show("user processor cached, base", base)
        print(f"  goal: user processor's cached start >= 2x faster than the baseline's: "
              f"{base['first_step_s'] / user_cached['first_step_s']:.2f}x")
    for folder in (cache, cache + "_user", cache + "_base"):
        shutil.rmtree(folder, ignore_errors=True)


def child(args) -> None:
    """One phase in this process; prints its result as one JSON line."""
    if args.phase == "tokenizer":
        result = phase_tokenizer(args.data_dir, args.sample)
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


def measure(rows: int, work: str, sample: int, repeats: int) -> str:
    data_dir = os.path.join(work, f"sst2_{rows}")
    cache_dir = os.path.join(work, f"cache_{rows}")
    size = os.path.getsize(write_train_file(os.environ["GLUE_DIR"], rows, data_dir))
    print(f"\n{rows:,} rows ({size / 2**20:.0f} MiB train.tsv)")
    pairs = paired_builds(rows, data_dir, cache_dir, sample, repeats)
    cached = run_phase("cached", data_dir=data_dir, cache_dir=cache_dir)
    ratios = [rows / cold["seconds"] / rate for rate, cold in pairs]
    for rate, cold in pairs:
        print(f"  tokenizer alone   {rate:10,.0f} rows/s (first {min(sample, rows):,} texts)")
        print(f"  cold build        {rows / cold['seconds']:10,.0f} rows/s  "
              f"{cold['seconds']:8.1f} s  peak RSS {cold['peak_rss_mb']:7.0f} MB, examples "
              f"pass {cold['examples_pass_s']:.1f} s")
    print(f"  cached load       {rows / cached['seconds']:10,.0f} rows/s  "
          f"{cached['seconds']:8.1f} s  peak RSS {cached['peak_rss_mb']:7.0f} MB, examples "
          f"{'record' if cached['from_record'] else 'pass'} {cached['examples_pass_s']:.2f} s")
    cold = pairs[-1][1]
    print(f"  cold build / tokenizer rate: {statistics.median(ratios):.2f} (per pair: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; goal >= 0.70)")
    shutil.rmtree(cache_dir, ignore_errors=True)
    return data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated N")
    parser.add_argument("--work_dir", default=None, help="where the files go (default: a "
                        "temp dir, removed at the end)")
    parser.add_argument("--sample", type=int, default=200_000,
                        help="texts for the tokenizer's reference rate")
    parser.add_argument("--repeats", type=int, default=1,
                        help="tokenizer/cold-build pairs per N (their ratio's median is printed)")
    parser.add_argument("--baseline_root", default=None, help="a checkout of the commit to "
                        "compare the user processor's cached start with (a git worktree)")
    parser.add_argument("--skip_features", action="store_true",
                        help="only the whole command (no tokenizer/features phases)")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", help=argparse.SUPPRESS)
    parser.add_argument("--cache_dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        child(args)
        return
    if "GLUE_DIR" not in os.environ:
        sys.exit("set GLUE_DIR to the GLUE data (SST-2 is read for its sentences)")
    from benchmarks.bytecode import write_bytecode
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    for root in filter(None, (ROOT, args.baseline_root)):
        write_bytecode(root)
    work = args.work_dir or tempfile.mkdtemp(prefix="scale_")
    try:
        for rows in (int(n) for n in args.rows.split(",")):
            if args.skip_features:
                data_dir = os.path.join(work, f"sst2_{rows}")
                write_train_file(os.environ["GLUE_DIR"], rows, data_dir)
                print(f"\n{rows:,} rows")
            else:
                data_dir = measure(rows, work, args.sample, args.repeats)
            measure_commands(rows, work, data_dir, args.repeats, args.baseline_root)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
