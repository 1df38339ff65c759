"""Whole command, start to finish: run_classifier.py against HF Trainer at its best.

    GLUE_DIR=../shared/data/glue python benchmarks/whole_command.py --rows=2048 --repeats=2

A seeded `--rows` subset of CoLA's train file (benchmarks/glue_subset.py, in a temporary
directory), 1 epoch, train and dev eval with the README's recipe (benchmarks/accuracy.py),
each run a fresh process timed from start to finish (imports, features, training, eval):
  project        the defaults (`--compile=auto`; it logs whether it compiled)
  compiled_cold  --compile=on with inductor's caches empty (a fresh TORCHINDUCTOR_CACHE_DIR)
  compiled_warm  --compile=on again, with the caches compiled_cold left
  hf_best        HF Trainer at its best (dynamic padding, group_by_length, bf16 if fast)
The configurations take turns, `--repeats` times (each repeat starts from empty caches).
`--device` and `--model_dir` go to both, as in benchmarks/accuracy.py. Prints the machine
class, each run's seconds, and HF's seconds over each configuration's, the median of the
repeats' own ratios (above 1: faster than HF).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks import accuracy, glue_subset  # noqa: E402

CONFIGS = ("project", "compiled_cold", "compiled_warm", "hf_best")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2048, help="CoLA train rows (a seeded subset)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="both on this device (default: cuda when there is one)")
    p.add_argument("--model_dir", default=None, help="default: the embedded MiniLM-L6")
    return p.parse_args(argv)


def run(config: str, cache_dir: str, device: str, model_dir) -> float:
    """Seconds of one whole command on `device`; compiled runs keep inductor's caches in
    cache_dir."""
    if config == "hf_best":
        start = time.perf_counter()
        subprocess.run([sys.executable, accuracy.__file__, "--worker=cola,1",
                        f"--epochs={accuracy.RECIPE['epochs']}", f"--device={device}"]
                       + ([f"--model_dir={model_dir}"] if model_dir else []), check=True,
                       capture_output=True)
        return time.perf_counter() - start
    flags = ([] if config == "project" else ["--compile=on"]) + accuracy.device_flags(
        device, model_dir)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
    return accuracy.run_project("cola", 1, flags)["seconds"]


def main(argv=None) -> None:
    args = parse_args(argv)
    if not os.environ.get("GLUE_DIR"):
        sys.exit("whole_command: set GLUE_DIR to the GLUE data directory")
    accuracy.RECIPE["epochs"] = args.epochs
    configs = args.configs.split(",")
    device = args.device or accuracy.default_device()
    seconds = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as tmp:
        glue_subset.main([f"--task_dir={os.path.join(os.environ['GLUE_DIR'], 'CoLA')}",
                          f"--out={os.path.join(tmp, 'CoLA')}", f"--rows={args.rows}",
                          "--header=0"])
        os.environ["GLUE_DIR"] = tmp
        for repeat in range(args.repeats):
            cache_dir = os.path.join(tmp, f"inductor-{repeat}")
            for config in configs:
                seconds[config].append(run(config, cache_dir, device, args.model_dir))
                print(f"{config}: run {repeat + 1} of {args.repeats}: "
                      f"{seconds[config][-1]:.1f} s", file=sys.stderr, flush=True)
    report(seconds, args)


def report(seconds: dict[str, list[float]], args) -> None:
    from modeling.device import machine_class
    print(f"machine: {machine_class()}")
    print(f"whole command, CoLA {args.rows} train rows, {args.epochs:g} epoch(s), train + dev "
          "eval, seconds (runs):")
    for config, values in seconds.items():
        print(f"  {config:14} {statistics.median(values):7.1f} "
              f"({', '.join(f'{v:.1f}' for v in values)})")
    ratios = {}
    if "hf_best" in seconds:
        for config, values in seconds.items():
            if config != "hf_best":
                ratios[f"hf_best_over_{config}"] = [hf / mine for hf, mine in
                                                    zip(seconds["hf_best"], values)]
    for key, values in ratios.items():
        print(f"{key}: {statistics.median(values):.2f}x "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    print(json.dumps({"seconds": seconds, "ratio_runs": ratios,
                      "ratios": {k: statistics.median(v) for k, v in ratios.items()}},
                     sort_keys=True))


if __name__ == "__main__":
    main()
