"""Dev accuracy on long documents: `--long_text=windows` vs `truncate`, same recipe and seeds.

    GLUE_DIR=../shared/data/glue python data/make_long_documents.py --output_dir=/tmp/long
    python benchmarks/long_documents.py --data_dir=/tmp/long --output_dir=/tmp/long_runs

For each seed and mode, runs `run_classifier.py --task_name=generic` with the README's
recipe for the embedded MiniLM (lr 1e-4, 10% warmup, weight decay 0.01, batch 32,
3 epochs) at `--max_seq_length=128`. Each run keeps its folder (and log) in
--output_dir; the features cache is shared. Prints one JSON line per run as it ends, then
the machine, a Markdown table (accuracy per seed, mean) and one JSON line of everything.
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
RECIPE = ("--learning_rate=1e-4", "--warmup_proportion=0.1", "--weight_decay=0.01",
          "--train_batch_size=32", "--max_seq_length=128",
          "--eval_batch_size=64")


def run(data_dir: str, out_root: str, mode: str, seed: int, doc_stride: int, epochs: float
        ) -> dict:
    """One fine-tune and dev evaluation; its log is <run folder>.log."""
    out = os.path.join(out_root, f"{mode}-seed{seed}")
    command = [sys.executable, os.path.join(ROOT, "run_classifier.py"), "--task_name=generic",
               f"--data_dir={data_dir}", f"--output_dir={out}", "--do_train", "--do_eval",
               f"--seed={seed}", f"--cache_dir={os.path.join(out_root, 'cache')}",
               f"--long_text={mode}", f"--num_train_epochs={epochs}", *RECIPE]
    if mode == "windows" and doc_stride:
        command.append(f"--doc_stride={doc_stride}")
    start = time.perf_counter()
    with open(out + ".log", "w") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    with open(os.path.join(out, "eval_results.json")) as f:
        results = json.load(f)
    return {"mode": mode, "seed": seed, "accuracy": results["eval_accuracy"],
            "seconds": round(time.perf_counter() - start, 1)}


def table(runs: list[dict], modes: list[str], seeds: list[int]) -> str:
    """Accuracy per mode (rows) and seed (columns), with the mean of the seeds that ran."""
    lines = ["| mode | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---" * (len(seeds) + 2) + "|"]
    for mode in modes:
        by_seed = {r["seed"]: r["accuracy"] for r in runs if r["mode"] == mode}
        cells = [f"{by_seed[s]:.3f}" if s in by_seed else "-" for s in seeds]
        mean = f"{statistics.mean(by_seed.values()):.3f}" if by_seed else "-"
        lines.append(f"| `{mode}` | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data_dir", required=True, help="data/make_long_documents.py's output.")
    p.add_argument("--output_dir", required=True, help="Run folders and logs go here.")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--modes", default="windows,truncate")
    p.add_argument("--doc_stride", type=int, default=0,
                   help="windows: tokens between window starts (0: run_classifier's default)")
    p.add_argument("--num_train_epochs", type=float, default=3)
    args = p.parse_args()
    seeds, modes = [int(s) for s in args.seeds.split(",")], args.modes.split(",")
    os.makedirs(args.output_dir, exist_ok=True)
    runs = []
    for seed in seeds:
        for mode in modes:
            runs.append(run(args.data_dir, args.output_dir, mode, seed, args.doc_stride,
                            args.num_train_epochs))
            print(json.dumps(runs[-1]), flush=True)
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    print(table(runs, modes, seeds))
    print(json.dumps({"doc_stride": args.doc_stride, "num_train_epochs": args.num_train_epochs,
                      "runs": runs}, sort_keys=True))


if __name__ == "__main__":
    main()
