"""Checks a calibrated MRPC model where it is used: transformers.pipeline and the ONNX export
against the run's own test_results.tsv, and the dev scores before and after calibration.

    run_classifier --task_name=mrpc --data_dir=$GLUE_DIR/MRPC --output_dir=/tmp/mrpc \
        --do_train --do_eval --do_predict --learning_rate=1e-4 \
        --calibration=temperature --export=onnx [--precision=fp32]
    python benchmarks/calibration_check.py --output_dir=/tmp/mrpc --glue_dir=$GLUE_DIR
"""

import argparse
import csv
import json
import os

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output_dir", required=True)
    p.add_argument("--glue_dir", default=os.environ.get("GLUE_DIR"))
    args = p.parse_args()
    out = args.output_dir
    with open(os.path.join(out, "training_stats.json")) as f:
        last = json.load(f)[-1]
    print("last epoch's dev, before calibration:",
          {k: round(v, 4) for k, v in last.items() if k.startswith("dev_")})
    with open(os.path.join(out, "eval_results.txt")) as f:
        print("eval_results.txt:", " ".join(line.strip() for line in f))
    with open(os.path.join(out, "test_results.tsv")) as f:
        probs = np.array([[float(x) for x in row] for row in csv.reader(f, delimiter="\t")])
    with open(os.path.join(args.glue_dir, "MRPC", "test.tsv"), encoding="utf-8-sig") as f:
        test = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    from transformers import AutoTokenizer, pipeline
    classifier = pipeline("text-classification", model=out, top_k=None, truncation=True)
    with open(os.path.join(out, "config.json")) as f:
        id2label = json.load(f)["id2label"]
    labels = [id2label[str(i)] for i in range(len(id2label))]
    scores = classifier([{"text": r[3], "text_pair": r[4]} for r in test])
    piped = np.array([[next(d["score"] for d in s if d["label"] == lab) for lab in labels]
                      for s in scores])
    print(f"{len(test)} test rows: pipeline vs test_results.tsv, max abs difference "
          f"{np.abs(piped - probs).max():.2e}")
    import onnxruntime
    tokenizer = AutoTokenizer.from_pretrained(out)
    session = onnxruntime.InferenceSession(os.path.join(out, "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    worst = 0.0
    for row, expected in zip(test, probs):
        enc = tokenizer(row[3], row[4], truncation=True, max_length=128, return_tensors="np")
        logits = session.run(["logits"], {k: enc[k].astype(np.int64) for k in names})[0][0]
        p_onnx = np.exp(logits - logits.max())
        worst = max(worst, float(np.abs(p_onnx / p_onnx.sum() - expected).max()))
    print(f"ONNX vs test_results.tsv, max abs difference {worst:.2e}")


if __name__ == "__main__":
    main()
