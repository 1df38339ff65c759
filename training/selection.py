"""Best-model selection: at each epoch's end, evaluate on dev and keep the best model.

The per-epoch stats (train loss, dev loss and metric, time) go to
`training_stats.json`, the log and TensorBoard; the epoch with the best dev
metric so far is saved to `best_model/` (the test early stopping also uses), and
a search hears each epoch's score (to prune). The history passed in holds the
epochs before a resume too, so a resumed run compares against all of them.
"""

import logging
import os
from typing import Callable, Optional

from modeling.disk import atomic_write_text, finite_json
from modeling.export import save_model

from . import distributed, plot
from .early_stopping import is_better
from .evaluation import evaluate
from .runs import format_table

logger = logging.getLogger(__name__)

BEST_MODEL = "best_model"


class EpochEnd:
    """The training loop's end-of-epoch callback: `row` in, `row` with dev results out."""

    def __init__(self, run, eval_batch_size: int, threshold: float,
                 tensorboard: Optional[plot.TensorBoardLog] = None,
                 on_dev_score: Optional[Callable[[int, float], None]] = None):
        self.run, self.eval_batch_size, self.threshold = run, eval_batch_size, threshold
        self.tensorboard, self.on_dev_score = tensorboard, on_dev_score
        self.writes = distributed.is_main()

    def __call__(self, row: dict, history: list[dict]) -> dict:
        run, dev_set = self.run, self.run.datasets.get("dev")
        if dev_set is not None:
            metric = run.processor.metric
            results, logits = evaluate(run.model, dev_set, metric, self.eval_batch_size,
                                       run.device, run.precision, self.threshold)
            run.dev_logits[row["step"]] = logits  # do_eval's, if the final model is this
            row.update(dev_loss=results["loss"], **{f"dev_{metric}": results[metric]})
            if is_better(results[metric], [r[f"dev_{metric}"] for r in history]) and self.writes:
                save_model(run.model, run.tokenizer, run.source.vocab_file,
                           os.path.join(run.output_dir, BEST_MODEL), row["step"])
        stats = history + [row]
        if self.writes:
            atomic_write_text(os.path.join(run.output_dir, plot.STATS_FILE), finite_json(stats))
        if self.tensorboard:
            self.tensorboard.log_epoch(row)
        logger.info("Per-epoch results:\n%s", format_table(stats))
        if self.on_dev_score and dev_set is not None:
            self.on_dev_score(row["epoch"], row[f"dev_{run.processor.metric}"])
        return row
