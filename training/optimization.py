"""BERT's optimizer: AdamW with decoupled weight decay, warmup, then linear decay.

Weight decay skips biases and LayerNorm weights, as in Google's
AdamWeightDecayOptimizer. The rate rises linearly over the warmup steps to
`learning_rate`, then decays linearly to 0 at the last step, starting from the
peak (Hugging Face's schedule; Google's decays from step 0, so its rate after
warmup starts below the peak). Unlike Google's, Adam here uses bias correction.

`BertAdamW` is torch's fused AdamW with the same update (up to float rounding),
made cheaper in two ways that matter on a CPU, where a step's optimizer work is
memory-bound:
- Gradient clipping is folded into the fused kernel, which divides each gradient
  by the clip factor as it reads it, instead of a separate pass that scales them.
- A sparse gradient (the word embeddings', in one CPU process: see
  `training.sparse_word_embeddings`) updates only the rows that have had a gradient
  so far. Every other row has zero Adam moments, so AdamW's whole update there is
  its weight decay. That skips zero-filling, clipping and reading a dense
  vocab x hidden gradient (47 MB in MiniLM) every step.
"""

import functools

import torch

NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")
SEEN_ROWS = "seen_rows"  # optimizer state of a sparse-gradient parameter: rows with moments


def _eager(method):
    """An optimizer method as torch wrote it, without the wrapper that fits it to a compiled
    step (a graph break, or dynamo kept out): each wrapper imports torch._dynamo (most of a
    second) the first time it runs, and this project never compiles the optimizer's step,
    which always runs under no_grad here (`clip_and_step`, `step`)."""
    return getattr(method, "__wrapped__", method)


class BertAdamW(torch.optim.AdamW):
    """Fused AdamW that folds in gradient clipping and takes sparse row gradients."""

    add_param_group = _eager(torch.optim.Optimizer.add_param_group)
    zero_grad = _eager(torch.optim.Optimizer.zero_grad)
    state_dict = _eager(torch.optim.Optimizer.state_dict)
    load_state_dict = _eager(torch.optim.Optimizer.load_state_dict)

    @torch.no_grad()
    def clip_and_step(self, max_norm: float) -> torch.Tensor:
        """Clips the gradients to a global L2 norm of `max_norm` (as torch's
        clip_grad_norm_), then steps; returns the norm before clipping.

        A non-finite norm skips the update (weights and moments unchanged, as a grad
        scaler skips an overflowed step), decided on the device: no host sync.
        """
        params = [p for group in self.param_groups for p in group["params"]
                  if p.grad is not None]
        for p in params:
            if p.grad.is_sparse:
                p.grad = p.grad.coalesce()
        if not params:
            return torch.zeros(())
        total = _global_norm([p.grad.values() if p.grad.is_sparse else p.grad for p in params])
        divisor = torch.clamp((total + 1e-6) / max_norm, min=1.0)
        if self.defaults["fused"]:
            self.grad_scale = divisor.to(torch.float32)
            self.found_inf = (~torch.isfinite(total)).to(torch.float32)
        else:
            torch._foreach_div_([p.grad for p in params], divisor)
        try:
            self.step()
        finally:
            self.__dict__.pop("grad_scale", None)
            self.__dict__.pop("found_inf", None)
        return total

    @torch.no_grad()
    def step(self, closure=None):
        """torch's step for dense gradients; the rows of sparse ones as described above."""
        sparse = [(p, group) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        grads = [p.grad for p, _ in sparse]
        for p, _ in sparse:
            p.grad = None
        try:
            loss = _eager(torch.optim.AdamW.step)(self, closure)
        finally:
            for (p, _), grad in zip(sparse, grads):
                p.grad = grad
        for p, group in sparse:
            self._rows_step(p, p.grad.coalesce(), group)
        return loss

    def _rows_step(self, param: torch.Tensor, grad: torch.Tensor, group: dict) -> None:
        """AdamW on the rows that have ever had a gradient; weight decay on all rows."""
        state = self.state[param]
        if "step" not in state:
            state["step"] = torch.zeros((), dtype=torch.float32, device=param.device)
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if SEEN_ROWS not in state:  # a row with any gradient so far has a nonzero second moment
            state[SEEN_ROWS] = state["exp_avg_sq"].flatten(1).ne(0).any(1)
        rows, values = grad.indices()[0], grad.values()
        state[SEEN_ROWS][rows] = True
        seen = state[SEEN_ROWS].nonzero().squeeze(1)
        compact = torch.zeros((len(seen),) + param.shape[1:], dtype=values.dtype,
                              device=values.device)
        compact[torch.searchsorted(seen, rows)] = values
        lr, weight_decay = group["lr"], group["weight_decay"]
        skip = getattr(self, "found_inf", None)  # 1.0: a non-finite step, left undone
        if weight_decay:
            factor = 1 - lr * weight_decay
            param.mul_(factor if skip is None else torch.where(skip > 0, 1.0, factor))
        moments = (state["exp_avg"], state["exp_avg_sq"])
        params_, m, v = (t.index_select(0, seen) for t in (param,) + moments)
        state["step"] += 1 if skip is None else 1 - skip
        beta1, beta2 = group["betas"]
        torch._fused_adamw_([params_], [compact], [m], [v], [], [state["step"]],
                            lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                            eps=group["eps"], amsgrad=False, maximize=False,
                            grad_scale=getattr(self, "grad_scale", None), found_inf=skip)
        for target, rows_ in zip((param,) + moments, (params_, m, v)):
            target.index_copy_(0, seen, rows_)


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all `grads` together, in float32. On the CPU, each contiguous float32
    tensor's sum of squares is BLAS's dot of it with itself: one read of the gradients, in
    half the time of torch's norm kernels (a MiniLM step's, 2 cores) and nearer the float64
    value. Elsewhere torch's norms: `_foreach_norm` for float32 (one kernel on CUDA), and
    another dtype's norm computed in float32."""
    def blas(g: torch.Tensor) -> bool:
        return g.device.type == "cpu" and g.dtype == torch.float32 and g.is_contiguous()

    rest = [g for g in grads if not blas(g)]
    fp32 = [g for g in rest if g.dtype == torch.float32]
    norms = list(torch._foreach_norm(fp32)) if fp32 else []
    norms += [torch.linalg.vector_norm(g, dtype=torch.float32) for g in rest
              if g.dtype != torch.float32]
    squares = [g.view(-1).dot(g.view(-1)) for g in grads if blas(g)] + [n ** 2 for n in norms]
    return torch.stack(squares).sum().sqrt()


def create_optimizer(model: torch.nn.Module, learning_rate: float, weight_decay: float,
                     adam_epsilon: float, num_train_steps: int, num_warmup_steps: int):
    """Returns (BertAdamW, LambdaLR) for `num_train_steps` optimizer steps."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if name.endswith(NO_DECAY) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type in ("cuda", "cpu")
    optimizer = BertAdamW(groups, lr=learning_rate, betas=(0.9, 0.999), eps=adam_epsilon,
                          fused=fused)
    return optimizer, linear_schedule(optimizer, num_warmup_steps, num_train_steps)


def linear_schedule(optimizer, num_warmup_steps: int, num_train_steps: int):
    """torch's LambdaLR with the rate of transformers' `get_linear_schedule_with_warmup` (the
    same factor every step, tested), without transformers' import."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(
        _linear_factor, num_warmup_steps, num_train_steps))


def _linear_factor(num_warmup_steps: int, num_train_steps: int, step: int) -> float:
    if step < num_warmup_steps:
        return float(step) / float(max(1, num_warmup_steps))
    return max(0.0, float(num_train_steps - step) / float(max(1, num_train_steps
                                                              - num_warmup_steps)))
