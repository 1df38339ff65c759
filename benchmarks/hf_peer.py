"""HF Trainer as the benchmarks' peer: its configurations, built one way for every script.

  hf_default   run_glue's defaults: every row padded to 128, fp32, the Trainer's optimizer
  hf_best      HF at its best eager: dynamic padding, group_by_length, bf16 where the
               project's `auto` would be bf16 (`fast_bf16`), the fused AdamW (the
               Trainer's default from torch 2.8 on; named, so older torch gets it too)
  hf_compiled  hf_best plus the Trainer's own `torch_compile=True` (inductor)

How the Trainer compiles varying lengths (transformers 5.x): it hands accelerate a
`TorchDynamoPlugin` with `dynamic=None`, which `accelerator.prepare` passes to
`torch.compile`. dynamo then compiles the first batch's shapes static and, at the first
new length, recompiles with that dimension symbolic (automatic dynamic shapes): two
graphs, no graph break, nothing recompiled later, far under dynamo's recompile limit.
Padding to a multiple of `PAD_MULTIPLE` (`DataCollatorWithPadding(pad_to_multiple_of=...)`,
the project's CUDA bucketing) changes nothing there: the second length still makes the
graph dynamic. The user's knob for dynamic shapes from the first batch (what the project's
compiled step does) is accelerate's `ACCELERATE_DYNAMO_USE_DYNAMIC` (read when the
plugin's `dynamic` is None). On a CPU here, automatic dynamic (with or without padding
to 16) trained several times slower in steady state than eager, and dynamic from the
first batch as fast as eager or a little faster, so `COMPILED_*` hold the latter (not
measured on CUDA, where `reduce-overhead` and `PAD_MULTIPLE` may win).
After `train()`, Trainer predicts with the eager model (its accelerator already holds the
compiled one), and so does a fresh Trainer given that trained model; a fresh Trainer that
only predicts, with a model no Trainer prepared, compiles its eval pass (`predictor`).
"""

import os

HF_CONFIGS = ("hf_default", "hf_best", "hf_compiled")
PAD_MULTIPLE = 16
# hf_compiled's settings: ACCELERATE_DYNAMO_USE_DYNAMIC ("1": dynamic from the first
# batch; None: the Trainer's automatic dynamic shapes) and pad_to_multiple_of (or None).
COMPILED_DYNAMIC, COMPILED_PAD_MULTIPLE = "1", None


def fast_bf16(device: str) -> bool:
    """Whether HF's Trainer should run bf16 here, as the project's `auto` would."""
    import torch
    from modeling.device import resolve_precision
    return resolve_precision("auto", torch.device(device)) == "bf16"


def precision(name: str, device: str) -> str:
    """The precision a configuration trains in on `device`."""
    return "bf16" if name != "hf_default" and fast_bf16(device) else "fp32"


def rows(features, pad_to=None) -> list[dict]:
    """Trainer's rows for project features; `pad_to` pads each to that many tokens."""
    out = []
    for f in features:
        pad = pad_to - len(f.input_ids) if pad_to else 0
        out.append({"input_ids": f.input_ids + [0] * pad,
                    "attention_mask": f.input_mask + [0] * pad,
                    "token_type_ids": f.segment_ids + [0] * pad, "labels": f.label_id})
    return out


def training_arguments(name: str, out: str, device: str, *, batch_size: int,
                       eval_batch_size: int, learning_rate: float, epochs: float,
                       warmup: float, weight_decay: float, seed: int):
    """TrainingArguments of configuration `name` (the recipe's values given by the caller)."""
    from transformers import TrainingArguments
    tuned = name != "hf_default"
    optim = {"optim": "adamw_torch_fused"} if tuned else {}
    if name == "hf_compiled" and COMPILED_DYNAMIC is not None:
        os.environ["ACCELERATE_DYNAMO_USE_DYNAMIC"] = COMPILED_DYNAMIC
    return TrainingArguments(
        output_dir=out, per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size, learning_rate=learning_rate,
        num_train_epochs=epochs, warmup_steps=warmup, weight_decay=weight_decay,
        adam_epsilon=1e-6, max_grad_norm=1.0, seed=seed, use_cpu=device == "cpu",
        bf16=precision(name, device) == "bf16",
        torch_compile=name == "hf_compiled",
        train_sampling_strategy="group_by_length" if tuned else "random",
        save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True, **optim)


def trainer(name: str, model, tokenizer, train_rows, args):
    """A Trainer for configuration `name`: dynamic padding unless hf_default."""
    from transformers import DataCollatorWithPadding, Trainer
    collator = None
    if name != "hf_default":
        multiple = COMPILED_PAD_MULTIPLE if name == "hf_compiled" else None
        collator = DataCollatorWithPadding(hf_tokenizer(tokenizer), pad_to_multiple_of=multiple)
    return Trainer(model=model, args=args, train_dataset=train_rows, data_collator=collator)


def hf_tokenizer(tokenizer):
    """transformers' tokenizer over the project's Rust one (the same ids and pad id): what
    DataCollatorWithPadding pads with."""
    from transformers import PreTrainedTokenizerFast
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer,
                                   pad_token="[PAD]")


def predictor(name: str, model, tokenizer, args):
    """A Trainer that only predicts: for hf_compiled, its eval pass compiles (given a model
    no Trainer has prepared)."""
    return trainer(name, model, tokenizer, None, args)


def graphs() -> int:
    """Graphs dynamo has compiled in this process so far (0 before torch._dynamo loads)."""
    import sys
    if "torch._dynamo" not in sys.modules:
        return 0
    from torch._dynamo.utils import counters
    return counters["stats"]["unique_graphs"]
