"""Dev accuracy: full fine-tunes of this project vs HF Trainer (fastest config), same recipe.

    GLUE_DIR=../shared/data/glue python benchmarks/accuracy.py --tasks=cola,mrpc --seeds=1,2,3

For each task and seed, runs `run_classifier.py` with the README's recipe for the
embedded MiniLM (lr 1e-4, 10% warmup, weight decay 0.01, batch 32, 3 epochs) and
the project's fastest settings (its defaults), then HF Trainer in each `--configs` of
benchmarks/hf_peer.py (default hf_best: dynamic padding, group_by_length, bf16 where
fast; also hf_compiled, its `torch_compile=True`) with the same recipe. Prints the
per-run metrics, the medians side by side, and one JSON line.

`--device` (cpu or cuda; default: cuda when there is one) puts both on the same device,
`--model_dir` names the model both fine-tune (default: the embedded MiniLM-L6).
`seconds` is each run's whole command, process start to finish (imports, features,
training, eval); with `--epochs=1` and GLUE_DIR at a subset (benchmarks/glue_subset.py),
the whole-command comparison of README's Compiling section. `--project_flags` adds flags
to the project's command (e.g. `--compile=on`).
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

TASKS = {"cola": ("CoLA", "mcc"), "mrpc": ("MRPC", "f1")}
RECIPE = dict(learning_rate=1e-4, warmup=0.1, weight_decay=0.01, batch_size=32, epochs=3.0)


def default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_flags(device: str, model_dir) -> list[str]:
    """run_classifier's flags for a benchmark's --device and --model_dir."""
    return (["--no_cuda"] if device == "cpu" else []) + (
        [f"--init_checkpoint={model_dir}"] if model_dir else [])


def project_flags(task: str, seed: int, data_dir: str, out: str) -> list[str]:
    """run_classifier's flags for the recipe: train and dev eval of `task` into `out`."""
    return [f"--task_name={task}", f"--data_dir={data_dir}", f"--output_dir={out}",
            "--do_train", "--do_eval", f"--seed={seed}",
            f"--learning_rate={RECIPE['learning_rate']}",
            f"--warmup_proportion={RECIPE['warmup']}", f"--weight_decay={RECIPE['weight_decay']}",
            f"--train_batch_size={RECIPE['batch_size']}",
            f"--num_train_epochs={RECIPE['epochs']}", "--eval_batch_size=64"]


def run_project(task: str, seed: int, flags: list[str]) -> dict:
    data_dir = os.path.join(os.environ["GLUE_DIR"], TASKS[task][0])
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(ROOT, "run_classifier.py"),
                        *project_flags(task, seed, data_dir, out), *flags],
                       check=True, capture_output=True)
        with open(os.path.join(out, "eval_results.json")) as f:
            results = json.load(f)
    return {"metric": results[f"eval_{TASKS[task][1]}"], "accuracy": results["eval_accuracy"],
            "seconds": time.perf_counter() - start}


def run_hf(task: str, seed: int, device: str = "cpu", model_dir=None,
           config: str = "hf_best") -> dict:
    """HF Trainer in configuration `config` (benchmarks/hf_peer.py), in this process (one
    task and seed), on `device`: train, then predict dev as Trainer does after training."""
    import numpy as np
    import torch
    from benchmarks import hf_peer
    from modeling.bert import to_transformers
    from modeling.model import build_model, load_config, resolve_source
    from modeling.tokenization import load_tokenizer
    from processors import get_processor
    from processors.features import convert_examples_to_features
    from processors.metrics import compute_metrics
    processor = get_processor(task)
    data_dir = os.path.join(os.environ["GLUE_DIR"], TASKS[task][0])
    source = resolve_source(model_dir, None, None)
    tokenizer = load_tokenizer(source.vocab_file, True)
    labels = processor.get_labels()

    def rows(split):
        return hf_peer.rows(convert_examples_to_features(processor.get_examples(data_dir, split),
                                                         labels, 128, tokenizer))

    torch.manual_seed(seed)
    model = to_transformers(build_model(source, load_config(source.config_file, len(labels),
                                                            labels)))  # the same weights
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        args = hf_peer.training_arguments(
            config, out, device, batch_size=RECIPE["batch_size"], eval_batch_size=64,
            learning_rate=RECIPE["learning_rate"], epochs=RECIPE["epochs"],
            warmup=RECIPE["warmup"], weight_decay=RECIPE["weight_decay"], seed=seed)
        trainer = hf_peer.trainer(config, model, tokenizer, rows("train"), args)
        trainer.train()
        # With group_by_length, Trainer predicts in length-grouped order too (its eval
        # sampler), so the labels to score against are the ones it returns beside the logits.
        predicted = trainer.predict(rows("dev"))
    results = compute_metrics(processor.metric, np.argmax(predicted.predictions, -1),
                              predicted.label_ids)
    return {"metric": results[TASKS[task][1]], "accuracy": results["accuracy"],
            "seconds": time.perf_counter() - start}


def hf_command(task: str, seed: int, config: str, device: str, model_dir) -> list[str]:
    """The command of one HF run in a fresh process (`--worker`)."""
    return [sys.executable, __file__, f"--worker={task},{seed}", f"--hf_config={config}",
            f"--epochs={RECIPE['epochs']}", f"--device={device}"] + (
                [f"--model_dir={model_dir}"] if model_dir else [])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="cola,mrpc")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--configs", default="project,hf_best")
    p.add_argument("--epochs", type=float, default=RECIPE["epochs"])
    p.add_argument("--project_flags", default="", help="more flags for run_classifier.py")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="both on this device (default: cuda when there is one)")
    p.add_argument("--model_dir", default=None, help="default: the embedded MiniLM-L6")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--hf_config", default="hf_best", choices=("hf_best", "hf_compiled"),
                   help=argparse.SUPPRESS)
    args = p.parse_args()
    RECIPE["epochs"] = args.epochs
    device = args.device or default_device()
    if args.worker:  # one HF run in a fresh process: task,seed
        task, seed = args.worker.split(",")
        print(json.dumps(run_hf(task, int(seed), device, args.model_dir, args.hf_config)))
        return
    if not os.environ.get("GLUE_DIR"):
        sys.exit("accuracy: set GLUE_DIR to the GLUE data directory")
    runs = []
    for task in args.tasks.split(","):
        for seed in map(int, args.seeds.split(",")):
            for config in args.configs.split(","):
                if config == "project":
                    result = run_project(task, seed, args.project_flags.split()
                                         + device_flags(device, args.model_dir))
                else:
                    start = time.perf_counter()
                    done = subprocess.run(hf_command(task, seed, config, device, args.model_dir),
                                          check=True, capture_output=True, text=True)
                    result = {**json.loads(done.stdout.strip().splitlines()[-1]),
                              "seconds": time.perf_counter() - start}
                runs.append({"task": task, "seed": seed, "config": config, **result})
                print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for task in args.tasks.split(","):
        for config in args.configs.split(","):
            values = [r["metric"] for r in runs if r["task"] == task and r["config"] == config]
            summary[f"{task}_{TASKS[task][1]}_{config}_median"] = statistics.median(values)
    for key, value in summary.items():
        print(f"{key}: {value:.4f}")
    print(json.dumps({"summary": summary, "runs": runs}, sort_keys=True))


if __name__ == "__main__":
    main()
