"""Whole command, start to finish: run_classifier.py against HF Trainer at its fastest.

    GLUE_DIR=../shared/data/glue python benchmarks/whole_command.py --rows=2048 --repeats=2

A seeded `--rows` subset of CoLA's train file (benchmarks/glue_subset.py, in a temporary
directory), 1 epoch, train and dev eval with the README's recipe (benchmarks/accuracy.py),
each run a fresh process timed from start to finish (imports, features, training, eval):
  project        the defaults (`--compile=auto`; it logs whether it compiled)
  compiled_cold  --compile=on with inductor's caches empty (a fresh TORCHINDUCTOR_CACHE_DIR)
  compiled_warm  --compile=on again, with the caches compiled_cold left
  hf_best        HF Trainer at its best eager (dynamic padding, group_by_length, bf16 if fast)
  hf_compiled    hf_best with the Trainer's `torch_compile=True` (benchmarks/hf_peer.py),
                 compile included; its inductor caches are warm (one untimed run fills
                 them first; its seconds are printed as a cold run's), HF's fastest case
The configurations take turns, `--repeats` times (each repeat starts the project's compiled
runs from empty caches). `--device` and `--model_dir` go to both, as in
benchmarks/accuracy.py. Prints the machine class, each run's seconds, and HF's seconds over
each configuration's, the median of the repeats' own ratios (above 1: faster than HF):
each HF configuration's, and HF's fastest, per repeat the fewest seconds of the HF
configurations measured (`hf_fastest_over_*`, printed first and in the JSON). The project's
bytecode is written first, as a user's first run writes it (benchmarks/bytecode.py).
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
from benchmarks.bytecode import write_bytecode  # noqa: E402

CONFIGS = ("project", "compiled_cold", "compiled_warm", "hf_best", "hf_compiled")
HF = ("hf_best", "hf_compiled")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=2048, help="CoLA train rows (a seeded subset)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--configs", default=",".join(CONFIGS))
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="both on this device (default: cuda when there is one)")
    p.add_argument("--model_dir", default=None, help="default: the embedded MiniLM-L6")
    args = p.parse_args(argv)
    unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
    if unknown:
        p.error(f"--configs: unknown {', '.join(unknown)} (known: {', '.join(CONFIGS)})")
    return args


def run(config: str, cache_dir: str, device: str, model_dir) -> float:
    """Seconds of one whole command on `device`; compiled runs keep inductor's caches in
    cache_dir."""
    if config in HF:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
        start = time.perf_counter()
        subprocess.run(accuracy.hf_command("cola", 1, config, device, model_dir), check=True,
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
    write_bytecode(ROOT)
    seconds = {config: [] for config in configs}
    with tempfile.TemporaryDirectory() as tmp:
        glue_subset.main([f"--task_dir={os.path.join(os.environ['GLUE_DIR'], 'CoLA')}",
                          f"--out={os.path.join(tmp, 'CoLA')}", f"--rows={args.rows}",
                          "--header=0"])
        os.environ["GLUE_DIR"] = tmp
        hf_cache = os.path.join(tmp, "inductor-hf")
        if "hf_compiled" in configs:
            cold = run("hf_compiled", hf_cache, device, args.model_dir)
            print(f"hf_compiled: cold caches (untimed): {cold:.1f} s", file=sys.stderr)
        for repeat in range(args.repeats):
            cache_dir = os.path.join(tmp, f"inductor-{repeat}")
            for config in configs:
                where = hf_cache if config in HF else cache_dir
                seconds[config].append(run(config, where, device, args.model_dir))
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
    ratios = hf_ratios(seconds)
    for key, values in ratios.items():
        print(f"{key}: {statistics.median(values):.2f}x "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    hf = [config for config in seconds if config in HF]
    fastest = [hf[run.index(min(run))] for run in zip(*(seconds[c] for c in hf))]
    if fastest:
        print(f"HF's fastest configuration per repeat: {fastest}")
    print(json.dumps({"seconds": seconds, "ratio_runs": ratios, "hf_fastest_config": fastest,
                      "ratios": {k: statistics.median(v) for k, v in ratios.items()}},
                     sort_keys=True))


def hf_ratios(seconds: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per repeat, HF's seconds over each project configuration's: HF's fastest (the fewest
    seconds of the HF configurations run in that repeat) first, then each HF configuration."""
    hf = [config for config in seconds if config in HF]
    theirs = {"hf_fastest": [min(run) for run in zip(*(seconds[c] for c in hf))]} if hf else {}
    theirs.update({c: seconds[c] for c in hf})
    return {f"{name}_over_{config}": [t / mine for t, mine in zip(their, values)]
            for name, their in theirs.items() for config, values in seconds.items()
            if config not in HF}


if __name__ == "__main__":
    main()
