"""The problem types a task's head can have: transformers' `problem_type` names, which
set the loss, the metrics and what the outputs hold; and --class_weights parsed against
them (no torch: it is checked before any work)."""

import math
from typing import Optional, Sequence, Union

from .errors import InputError

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
FLOAT32_MAX = 3.4028234663852886e38  # torch.finfo(torch.float32).max


def parse_class_weights(spec: str, labels: Optional[Sequence[str]], problem_type: str
                        ) -> Union[None, str, tuple[float, ...]]:
    """--class_weights: None for "none", "balanced", or one positive weight per label."""
    if spec == "none":
        return None
    if problem_type != SINGLE_LABEL:
        raise InputError(f"--class_weights={spec}: only for single-label classification "
                         f"(this task is {problem_type})")
    if spec == "balanced":
        return spec
    try:
        weights = tuple(float(w) for w in spec.split(","))
    except ValueError:
        weights = ()
    if len(weights) != len(labels) or not all(math.isfinite(w) and w > 0 for w in weights):
        raise InputError(f"--class_weights={spec}: expected none, balanced, or {len(labels)} "
                         f"positive numbers, one per label in order: {', '.join(labels)}")
    largest = FLOAT32_MAX  # the loss multiplies float32 weights
    if max(weights) > largest:
        raise InputError(f"--class_weights={spec}: {max(weights):g} is infinite in float32 "
                         f"(at most {largest:.4g})")
    return weights
