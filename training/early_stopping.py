"""Early stopping: training ends once the dev score has stopped improving.

Everything here is a pure function of the per-epoch dev scores, which the checkpoint
keeps (a resumed run's included): a resumed run keeps its count, and one that had
stopped stays stopped.
"""


def is_better(score: float, earlier: list[float]) -> bool:
    """Whether an epoch's score beats every earlier one (then best_model/ saves it)."""
    return score > max(earlier, default=float("-inf"))


def best_epoch(scores: list[float]) -> int:
    """The index of the epoch best_model/ holds: the first with the highest score."""
    best = 0
    for i, score in enumerate(scores):
        if is_better(score, scores[:i]):
            best = i
    return best


def epochs_without_gain(scores: list[float], threshold: float = 0.0) -> int:
    """Epochs since the last that beat the best score before it by more than `threshold`
    (Hugging Face's EarlyStoppingCallback's count)."""
    best, count = float("-inf"), 0
    for score in scores:
        count = 0 if score > best + threshold else count + 1
        best = max(best, score)
    return count


def should_stop(scores: list[float], patience: int, threshold: float = 0.0) -> bool:
    """Stop after `patience` epochs without a gain above `threshold` (0: never)."""
    return patience > 0 and epochs_without_gain(scores, threshold) >= patience
