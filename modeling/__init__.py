"""Model, training, evaluation and prediction for BERT sequence classification."""

PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # --precision; here so flags need no torch
COMPILE = ("auto", "on", "off")  # --compile
