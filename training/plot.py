"""Curves to look at: training_stats.json as learning_curves.svg, and TensorBoard events.

    python -m training.plot OUTPUT_DIR    # (re)draws OUTPUT_DIR/learning_curves.svg

The curves are the hand-written SVG charts report.html shows (training/svg.py): every
training run draws them, with no plotting library to install or import. TensorBoard
events are optional (the `tensorboard` extra).
"""

import importlib.util
import json
import os
import sys

from modeling.disk import atomic_write_text
from modeling.errors import InputError

from . import svg

STATS_FILE = "training_stats.json"
CURVES_FILE = "learning_curves.svg"
SKIPPED = ("epoch", "step", "time_s")  # per-epoch row keys that are not curves


def curve_charts(stats: list[dict]) -> list[str]:
    """An SVG chart of the losses per epoch, and one of the dev metrics (when there are
    any): the same two charts in report.html and learning_curves.svg."""
    keys = list(dict.fromkeys(k for row in stats for k in row if k not in SKIPPED))
    charts = []
    for losses in (True, False):
        series = {k: [(row["epoch"], float(row[k])) for row in stats
                      if isinstance(row.get(k), (int, float))]
                  for k in keys if k.endswith("_loss") == losses}
        if any(series.values()):
            charts.append(svg.line_chart(series, "loss" if losses else "dev metrics", "epoch",
                                         "loss" if losses else "score"))
    return charts


def learning_curves_svg(stats: list[dict]) -> str:
    """The charts side by side in one standalone SVG document."""
    charts = curve_charts(stats)
    width = svg.W * max(len(charts), 1)
    placed = "".join(f'<g transform="translate({svg.W * i},0)">{chart}</g>'
                     for i, chart in enumerate(charts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{svg.H}" '
            f'viewBox="0 0 {width} {svg.H}"><title>learning curves</title>{placed}</svg>\n')


def read_stats(output_dir: str) -> list[dict]:
    """output_dir/training_stats.json's per-epoch rows; one line naming it when unreadable."""
    stats_file = os.path.join(output_dir, STATS_FILE)
    try:
        with open(stats_file) as f:
            stats = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{stats_file}: cannot read: {e}".splitlines()[0]) from None
    if not (isinstance(stats, list) and stats and all(
            isinstance(row, dict) and "epoch" in row for row in stats)):
        raise InputError(f"{stats_file}: not a list of per-epoch rows")
    return stats


def write_learning_curves(output_dir: str) -> str:
    """Draws output_dir/training_stats.json into output_dir/learning_curves.svg."""
    path = os.path.join(output_dir, CURVES_FILE)
    atomic_write_text(path, learning_curves_svg(read_stats(output_dir)))
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
