"""Predict with the exported model: onnxruntime fp32 and int8 beside PyTorch, on a GLUE dev set.

    run_classifier --task_name=mrpc --data_dir=$GLUE_DIR/MRPC --output_dir=/tmp/mrpc \
        --do_train --do_eval --learning_rate=1e-4 --export=onnx_int8
    GLUE_DIR=../shared/data/glue python benchmarks/onnx_predict.py --model_dir=/tmp/mrpc

Runs every dev row through PyTorch (fp32, and the precision `auto` picks on this
machine), onnxruntime with model.onnx and with model_int8.onnx, each with the same
length-sorted batches. Prints the machine, examples per second (best of --repeats),
the largest |logit difference| from PyTorch fp32, the dev F1 (or the task's metric) of
each, and one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from modeling.device import machine_class, resolve_precision  # noqa: E402
from modeling.model import build_model, load_config, resolve_source  # noqa: E402
from modeling.onnx_export import onnx_logits  # noqa: E402
from modeling.tokenization import source_tokenizer  # noqa: E402
from processors import get_processor  # noqa: E402
from processors.builders import feature_builder  # noqa: E402
from processors.cache import load_features  # noqa: E402
from processors.metrics import compute_metrics  # noqa: E402
from training.evaluation import decide, predict_logits  # noqa: E402

FOLDERS = {"mrpc": "MRPC", "cola": "CoLA", "sst-2": "SST-2", "rte": "RTE"}


def timed(fn, repeats: int) -> tuple[np.ndarray, float]:
    """fn()'s result and its best time in seconds."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_dir", required=True, help="a finished --export=onnx_int8 run")
    parser.add_argument("--task", default="mrpc", choices=sorted(FOLDERS))
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    data_dir = os.path.join(os.environ["GLUE_DIR"], FOLDERS[args.task])
    processor = get_processor(args.task, data_dir)
    source = resolve_source(args.model_dir, None, None)
    tokenizer = source_tokenizer(source, True)
    with tempfile.TemporaryDirectory() as cache:
        builder = feature_builder(source.family, tokenizer, source.tokenizer_files)
        dev = load_features(processor, data_dir, "dev", builder, source.vocab_file, True,
                            args.max_seq_length, cache)
    labels = processor.get_labels()
    model = build_model(source, load_config(source.config_file, len(labels), labels),
                        keep_head=True).eval()
    cpu = torch.device("cpu")
    auto = resolve_precision("auto", cpu)
    runs = {"torch_fp32": lambda: predict_logits(model, dev, args.batch_size, cpu, "fp32"),
            f"torch_{auto}": lambda: predict_logits(model, dev, args.batch_size, cpu, auto)}
    for name in ("model.onnx", "model_int8.onnx"):
        path = os.path.join(args.model_dir, name)
        runs["ort_" + ("int8" if "int8" in name else "fp32")] = (
            lambda path=path: onnx_logits(path, dev, args.batch_size))
    results, reference = {}, None
    for name, fn in runs.items():
        logits, seconds = timed(fn, args.repeats)
        reference = logits if reference is None else reference
        metrics = compute_metrics(processor.metric, decide(logits, "single_label_classification",
                                                           0.5), np.asarray(dev.labels))
        results[name] = {"examples_per_s": round(len(dev) / seconds, 1),
                         "max_abs_logit_diff": float(np.abs(logits - reference).max()),
                         **{k: round(float(v), 4) for k, v in metrics.items()}}
    print(f"Machine: {machine_class()} | {args.task} dev, {len(dev)} rows, "
          f"batch {args.batch_size}")
    for name, row in results.items():
        print(f"{name:>14}: " + ", ".join(f"{k} {v}" for k, v in row.items()))
    print(json.dumps({"machine": machine_class(), "task": args.task, "rows": len(dev),
                      "batch_size": args.batch_size, "results": results}))


if __name__ == "__main__":
    main()
