"""Hyperparameter search with Optuna: each trial an ordinary run in <output_dir>/trial-<n>.

The study lives in storage (by default SQLite in output_dir), so a search killed at any
moment continues when the same command runs again, and workers that share the storage
(and output_dir) split the trials between them. Each search is its own study, named for its
output_dir (or as the caller says), so any number of searches share one database. The
workers hold output_dir's lock shared: no plain run writes there meanwhile, and a search
never starts in a folder a plain run holds. Whatever a worker decides, it decides
holding `<output_dir>/.search.lock`: it either takes over a trial left running by a
worker that died (its directory's lock is free; the rerun resumes from the trial's
checkpoint, as the same trial number `n`), or asks Optuna for a new trial while fewer
than `n_trials` exist, and locks the trial's directory before letting go.

The last worker to finish makes the best trial output_dir's model (once per search: the
study records it), after removing what an earlier model left there.

Trials are compared on their final dev score (maximized) and pruned on each epoch's
(median pruner; restarts, a search over seed alone, are not pruned). TPE's random draws
come from (seed, n), so a search that was killed and restarted suggests what an
uninterrupted one would have.
"""

import contextlib
import functools
import logging
import os
import shutil
import statistics
import time
import warnings
from typing import Callable, Optional

import optuna
from optuna.trial import TrialState
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from modeling.disk import atomic_open, atomic_write_text
from modeling.locks import file_lock, folder_lock
from modeling.errors import InputError
from modeling.export import MODEL_FILES_LAST

from .runs import clear_run_outputs, format_table
from .search_space import Param

logger = logging.getLogger(__name__)

STUDY_PREFIX = "run_classifier:"  # + output_dir's absolute path: a study per search
DATABASE = "search.db"
RESULTS = "search_results.txt"
SCHEDULE_LOCK = ".search.lock"
POLL_S = 2.0  # how often a worker with nothing to run looks again for unfinished trials
FINISHED = "finished_at"  # the study's record: trials ended when the model was copied
NOT_COPIED = ("run_config.json",)  # the best trial's flags stay in its trial directory

# What a trial runner gets: (trial directory, flag values, report(epoch, dev score)); it
# returns the final dev score. `report` raises optuna.TrialPruned to stop a trial.
TrialRunner = Callable[[str, dict, Callable[[int, float], None]], float]


def trial_dir(output_dir: str, n: int) -> str:
    return os.path.join(output_dir, f"trial-{n}")


def study_name(output_dir: str, name: Optional[str] = None) -> str:
    """The search's study: `name`, or one per output_dir (its absolute path)."""
    return name or STUDY_PREFIX + os.path.abspath(output_dir)


def default_storage(output_dir: str) -> str:
    """SQLite in `<output_dir>/search.db`, whatever characters the path holds (quoted)."""
    path = os.path.abspath(os.path.join(output_dir, DATABASE))
    return URL.create("sqlite", database=path).render_as_string(hide_password=False)


def open_study(output_dir: str, storage: Optional[str], space: tuple[Param, ...],
               n_trials: int, name: Optional[str] = None) -> optuna.Study:
    """The study (created, or loaded to continue it); refused if its search space differs.

    Restarts (a space of `seed` alone) are not pruned: their spread is every seed's.
    """
    url = storage or default_storage(output_dir)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    pruner = (optuna.pruners.NopPruner() if [p.name for p in space] == ["seed"] else
              optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, n_trials // 4))))
    for attempt in range(5):
        try:
            study = optuna.create_study(
                storage=optuna.storages.RDBStorage(url, engine_kwargs=engine),
                study_name=study_name(output_dir, name), direction="maximize",
                load_if_exists=True, pruner=pruner)
            break
        except IntegrityError:  # another worker made the tables or the study meanwhile
            time.sleep(0.5 + attempt)
        except (ImportError, ValueError, SQLAlchemyError,
                optuna.exceptions.StorageInternalError
                ) as e:  # a URL that does not parse, a driver not installed, no connection
            raise InputError(f"--search_storage={url}: {str(e).splitlines()[0]}") from None
    else:
        raise InputError(f"--search_storage={url}: the study could not be created (other "
                         "workers kept creating it at the same time); run again")
    text, recorded = ",".join(str(p) for p in space), study.user_attrs.get("search_space")
    if recorded is None:
        study.set_user_attr("search_space", text)
    elif recorded != text:
        raise InputError(f"--search_space={text}: the study in {url} searches {recorded}; "
                         "use another --output_dir")
    return study


def _sampler(seed: int, n: int, n_trials: int) -> optuna.samplers.TPESampler:
    """TPE with random draws from (seed, n): random for the first half of the trials (at
    most 10), then guided by the finished ones."""
    return optuna.samplers.TPESampler(seed=(seed * 1_000_003 + n) % 2**32,
                                      n_startup_trials=min(10, max(1, n_trials // 2)))


def _is_free(folder: str) -> bool:
    try:
        with folder_lock(folder, folder):
            return True
    except FileNotFoundError:  # its worker died before making it
        return True
    except InputError:
        return False


def _slot(trial) -> Optional[int]:
    return trial.user_attrs.get("trial")


# A failed trial's copy (same params, same n in its user attrs, its epochs' reports) waits
# to be run again: Optuna's own retry, which its heartbeat would call on a stale trial.
# (Named RetryHeartbeatStaleTrialCallback in newer Optuna; both experimental, said once.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    RETRY = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback",
                    optuna.storages.RetryFailedTrialCallback)(
        max_retry=None, inherit_intermediate_values=True)


def _take_over_orphans(study: optuna.Study, output_dir: str) -> None:
    """A trial RUNNING with its directory free lost its worker (the OS lock ends with its
    process: no heartbeat's grace period to wait out): it fails, and Optuna's retry
    callback queues a copy, which the next worker resumes from the trial's checkpoint."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        n = _slot(t)
        if n is None or _is_free(trial_dir(output_dir, n)):
            study.tell(t.number, state=TrialState.FAIL)
            if n is not None:
                logger.info("Trial %d lost its worker; it runs again (resuming)", n)
                RETRY(study, study.get_trials(deepcopy=False)[t.number])


def _claim(study: optuna.Study, output_dir: str, space, seed: int, n_trials: int, stack):
    """Under the schedule lock: (trial, n, params) to run now, its directory locked into
    `stack`; or None when every trial is taken."""
    _take_over_orphans(study, output_dir)
    trials = study.get_trials(deepcopy=False)
    taken = {_slot(t) for t in trials} - {None}
    retry = [t for t in trials if t.state == TrialState.WAITING]
    if not retry and len(taken) >= n_trials:
        return None
    study.sampler = _sampler(seed, len(taken), n_trials)
    trial = study.ask()
    n = _slot(trial)
    if n is None:
        n = len(taken)
        trial.set_user_attr("trial", n)
    os.makedirs(trial_dir(output_dir, n), exist_ok=True)
    stack.enter_context(folder_lock(trial_dir(output_dir, n), f"trial {n}"))
    return trial, n, {p.name: p.suggest(trial) for p in space}


def _run_trial(study, trial, n: int, params: dict, output_dir: str,
               run_trial: TrialRunner) -> None:
    """Runs one claimed trial and tells the study how it ended (an interrupt tells
    nothing: the trial stays RUNNING, and is resumed by the next worker)."""
    reported = set(study.get_trials(deepcopy=False)[trial.number].intermediate_values)

    def report(epoch: int, score: float) -> None:
        if epoch not in reported:
            trial.report(score, epoch)
            reported.add(epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {n} pruned at epoch {epoch}")

    logger.info("***** Trial %d: %s *****", n, " ".join(f"--{k}={v}" for k, v in params.items()))
    try:
        value = run_trial(trial_dir(output_dir, n), params, report)
    except optuna.TrialPruned as e:
        logger.info("%s", e)
        study.tell(trial, state=TrialState.PRUNED)
        return
    except Exception:
        study.tell(trial, state=TrialState.FAIL)
        raise
    study.tell(trial, value)
    logger.info("Trial %d: dev score %.4f", n, value)


def _rows(study: optuna.Study, score_name: str) -> list[dict]:
    """A row per trial n (its last attempt): state, dev score (when pruned: its last
    epoch's), epochs, seconds, params."""
    latest = {_slot(t): t for t in study.get_trials(deepcopy=False) if _slot(t) is not None}
    rows = []
    for n, t in sorted(latest.items()):
        scores = t.intermediate_values
        score = t.value if t.value is not None else scores[max(scores)] if scores else None
        end = t.datetime_complete or t.datetime_start
        rows.append({"trial": n, "state": t.state.name.lower(), score_name: score,
                     "epochs": len(scores),
                     "time_s": round((end - t.datetime_start).total_seconds()) if end else None,
                     **t.params})
    return rows


def _table(rows: list[dict]) -> str:
    return format_table([{k: f"{v:.4g}" if isinstance(v, float) else v
                          for k, v in row.items()} for row in rows])


def _copy_outputs(src: str, dst: str) -> None:
    """The best trial's model and results into output_dir, each file whole, after removing
    what an earlier model left there (config.json, which marks a finished model, first);
    config.json copied last."""
    names = sorted((n for n in os.listdir(src) if os.path.isfile(os.path.join(src, n))
                    and not n.startswith(".") and n not in NOT_COPIED),
                   key=lambda n: n == MODEL_FILES_LAST)
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(dst, MODEL_FILES_LAST))
    clear_run_outputs(dst)
    for name in names:
        with open(os.path.join(src, name), "rb") as f, \
                atomic_open(os.path.join(dst, name), "wb") as out:
            shutil.copyfileobj(f, out)


def _best(rows: list[dict], score_name: str, output_dir: str = "") -> dict:
    """The best finished trial's row of `_rows`."""
    done = [r for r in rows if r["state"] == "complete"]
    if not done:
        raise InputError(f"--output_dir={output_dir}: no trial of the search finished "
                         "(each failed or was pruned)")
    return max(done, key=lambda r: (r[score_name], -r["trial"]))


def _finish(study: optuna.Study, output_dir: str, space, score_name: str) -> dict:
    """The table of trials (logged, and written to search_results.txt); the best finished
    trial's model and results copied into output_dir. Returns the best trial's row."""
    rows = _rows(study, score_name)
    done = [r for r in rows if r["state"] == "complete"]
    best = _best(rows, score_name, output_dir)
    scores = [r[score_name] for r in done]
    summary = (f"{score_name} over {len(done)} finished trials: median "
               f"{statistics.median(scores):.4f}, min {min(scores):.4f}, max {max(scores):.4f}"
               + (f", std {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""))
    params = " ".join(f"--{p.name}={best[p.name]}" for p in space)
    text = (f"{_table(rows)}\n\n{summary}\nbest: trial {best['trial']} ({score_name} "
            f"{best[score_name]:.4f}): {params}\n")
    _copy_outputs(trial_dir(output_dir, best["trial"]), output_dir)
    atomic_write_text(os.path.join(output_dir, RESULTS), text)
    logger.info("***** Search results *****\n%s", text)
    return best


def search(output_dir: str, storage: Optional[str], space: tuple[Param, ...], n_trials: int,
           seed: int, score_name: str, run_trial: TrialRunner,
           finish: Optional[Callable[[dict], None]] = None, name: Optional[str] = None) -> dict:
    """Runs trials (alongside any other workers) until `n_trials` have ended; then the last
    worker makes the best one output_dir's model and calls `finish(its params)`, holding the
    schedule lock. Returns the best trial's row: trial, state, score, epochs, time_s,
    params. Holds output_dir's lock shared throughout."""
    os.makedirs(output_dir, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with folder_lock(output_dir, f"--output_dir={output_dir}", shared=True):
        return _search(output_dir, storage, space, n_trials, seed, score_name, run_trial, finish,
                       name)


def _search(output_dir, storage, space, n_trials, seed, score_name, run_trial, finish,
            name) -> dict:
    schedule = functools.partial(file_lock, os.path.join(output_dir, SCHEDULE_LOCK))
    with schedule():
        study = open_study(output_dir, storage, space, n_trials, name)
    while True:
        with contextlib.ExitStack() as stack:
            with schedule():
                claim = _claim(study, output_dir, space, seed, n_trials, stack)
                others = claim is None and study.get_trials(
                    deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
            if claim:
                _run_trial(study, *claim, output_dir, run_trial)
                continue
        if not others:
            break
        time.sleep(POLL_S)  # trials that other workers run (or that one left behind)
    with schedule():
        ended = len(study.get_trials(deepcopy=False, states=(
            TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))
        if study.user_attrs.get(FINISHED) == ended:  # a worker made the model already
            best = _best(_rows(study, score_name), score_name)
            logger.info("The search is finished: output_dir's model is trial %d's (another "
                        "worker copied it, or an earlier run of this search)", best["trial"])
            return best
        best = _finish(study, output_dir, space, score_name)
        if finish:
            finish({p.name: best[p.name] for p in space})
        study.set_user_attr(FINISHED, ended)
    return best
