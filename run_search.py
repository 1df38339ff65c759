"""--search_trials: a hyperparameter search whose trials are ordinary runs of run_classifier.

run_classifier passes its FLAGS (`f`: read as attributes, set as items, as it parses
them) and its one-run function; each trial is that run into <output_dir>/trial-<n>
with the trial's flags, in this process. The study, the scheduling among workers and
the table are modeling/search.py's.
"""

import contextlib
import json
import os
from typing import Callable

from training.checks import validate

# What every trial runs with besides its searched flags: trials only train and evaluate
# (the best model predicts, once), and share the search's features cache.
TRIAL_FLAGS = {"search_trials": 0, "search_space": None, "search_storage": None,
               "search_study": None, "do_predict": False}


@contextlib.contextmanager
def flag_values(f, values: dict):
    """Sets flags for the block (a trial's), then restores them."""
    saved = {name: f[name].value for name in values}
    try:
        for name, value in values.items():
            f[name].value = value
        yield
    finally:
        for name, value in saved.items():
            f[name].value = value


def search(f, train_eval_predict: Callable) -> dict:
    """Runs the search `f` asks for; returns the best trial's row (see training.search).

    `train_eval_predict(on_dev_score)` is one ordinary run with the flags as set.
    """
    from modeling.model import is_model_dir
    from training import search as tuning
    from training.search_space import parse_search_space

    metric = validate(f)[0].metric
    common = {**TRIAL_FLAGS, "cache_dir": f.cache_dir or os.path.join(f.output_dir, "cache")}

    def run_trial(folder: str, params: dict, report) -> float:
        with flag_values(f, {**common, **params, "output_dir": folder}):
            if not is_model_dir(folder):  # else it had finished when its worker died
                train_eval_predict(report)
        with open(os.path.join(folder, "eval_results.json")) as results:
            return json.load(results)[f"eval_{metric}"]

    def predict(params: dict) -> None:  # with the best model, now output_dir's
        with flag_values(f, {**common, **params, "do_train": False, "do_eval": False,
                             "do_predict": True}):
            train_eval_predict()

    return tuning.search(f.output_dir, f.search_storage, parse_search_space(f.search_space),
                         f.search_trials, f.seed, f"dev_{metric}", run_trial,
                         predict if f.do_predict else None, f.search_study)
