"""Curves to look at: training_stats.json as learning_curves.png, and TensorBoard events.

    python -m training.plot OUTPUT_DIR    # (re)draws OUTPUT_DIR/learning_curves.png

Both are optional: matplotlib comes with the `plot` extra, tensorboard with the
`tensorboard` extra. The figure is drawn without pyplot, so no display is needed.
"""

import importlib.util
import io
import json
import os
import sys

from modeling.disk import atomic_write_bytes
from modeling.errors import InputError

STATS_FILE = "training_stats.json"
CURVES_FILE = "learning_curves.png"
SKIPPED = ("epoch", "step", "time_s")  # per-epoch row keys that are not curves


def has_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_learning_curves(stats: list[dict], path: str) -> None:
    """Left: train and dev loss per epoch; right: the dev metric per epoch."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, metric_axes = figure.subplots(1, 2)
    keys = list(dict.fromkeys(k for row in stats for k in row if k not in SKIPPED))
    for key in keys:
        points = [(row["epoch"], row[key]) for row in stats if key in row]
        axes = loss_axes if key.endswith("_loss") else metric_axes
        axes.plot(*zip(*points), marker="o", label=key.replace("_", " "))
    for axes, title in ((loss_axes, "loss"), (metric_axes, "dev metric")):
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_title(title)
        axes.grid(alpha=0.3)
        if axes.lines:
            axes.legend()
    if not metric_axes.lines:
        metric_axes.text(0.5, 0.5, "no dev set (train with --do_eval)", ha="center",
                         transform=metric_axes.transAxes)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(path, buffer.getvalue())


def write_learning_curves(output_dir: str) -> str:
    """Draws output_dir/training_stats.json into output_dir/learning_curves.png."""
    if not has_matplotlib():
        raise InputError("learning curves need matplotlib: pip install matplotlib "
                         "(or the project's `plot` extra)")
    stats_file = os.path.join(output_dir, STATS_FILE)
    try:
        with open(stats_file) as f:
            stats = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{stats_file}: cannot read: {e}".splitlines()[0]) from None
    if not (isinstance(stats, list) and stats and all("epoch" in row for row in stats)):
        raise InputError(f"{stats_file}: not a list of per-epoch rows")
    path = os.path.join(output_dir, CURVES_FILE)
    plot_learning_curves(stats, path)
    return path


def check_tensorboard() -> None:
    """Fails early, in one line, when --tensorboard is given without the package."""
    if importlib.util.find_spec("tensorboard") is None:
        raise InputError("--tensorboard: needs the tensorboard package: pip install "
                         "tensorboard (or the project's `tensorboard` extra)")


class TensorBoardLog:
    """Loss and learning rate every few steps, train and dev results every epoch."""

    def __init__(self, log_dir: str):
        check_tensorboard()
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(log_dir)

    def log_step(self, step: int, loss: float, learning_rate: float) -> None:
        self.writer.add_scalar("train/loss", loss, step)
        self.writer.add_scalar("train/learning_rate", learning_rate, step)

    def log_epoch(self, row: dict) -> None:
        """A per-epoch stats row (train_loss, dev_loss, dev_<metric>) at its global step."""
        for key, value in row.items():
            if key not in SKIPPED:
                tag = "train/epoch_loss" if key == "train_loss" else key.replace("_", "/", 1)
                self.writer.add_scalar(tag, value, row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: python -m training.plot OUTPUT_DIR\n")
        return 2
    try:
        print(write_learning_curves(argv[1]))
    except InputError as e:
        sys.stderr.write(f"training.plot: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
