"""BERT's optimizer: AdamW with decoupled weight decay, warmup, then linear decay.

Weight decay skips biases and LayerNorm weights, as in Google's
AdamWeightDecayOptimizer. The rate rises linearly over the warmup steps to
`learning_rate`, then decays linearly to 0 at the last step, starting from the
peak (Hugging Face's schedule; Google's decays from step 0, so its rate after
warmup starts below the peak). Unlike Google's, Adam here uses bias correction.
"""

import torch
from transformers import get_linear_schedule_with_warmup

NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")


def create_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float,
                     adam_epsilon: float, num_train_steps: int, num_warmup_steps: int):
    """Returns (AdamW, LambdaLR) for `num_train_steps` optimizer steps."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type in ("cuda", "cpu")
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, betas=(0.9, 0.999),
                                  eps=adam_epsilon, fused=fused)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps, num_train_steps)
    return optimizer, scheduler
