"""--search_trials on a tiny BERT: pruning, the best trial as output_dir's model, a search
SIGKILLed mid-trial and restarted, and two workers sharing one study."""

import json
import os
import re
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import optuna
import pytest
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import kill_after_checkpoint, write_keyword_data
from processors import InputError
from training.search import DATABASE, RESULTS, open_study, study_name
from training.search_space import parse_search_space as parse_with

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS="1")  # steady speed on a shared, busy CPU
# Trials of 3 epochs of 16 steps: seed 1 picks rates that learn (1.0) and some that do not,
# which the median pruner stops after an epoch or two.
SEARCH = dict(task_name="generic", train_batch_size=8, eval_batch_size=16, precision="fp32",
              num_train_epochs=3.0, save_checkpoints_steps=5, do_train=True, do_eval=True,
              search_trials=4, search_space="learning_rate=1e-4:1e-2:log", seed=1)


def parse_search_space(text):
    return parse_with(text, run_classifier.SEARCHABLE)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def test_restarts_report_the_spread_over_seeds_and_keep_the_best(tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), str(tmp_path / "out")
    with flagsaver.flagsaver(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
                             **{**SEARCH, "search_trials": 3, "search_space": "seed",
                                "learning_rate": 1e-2, "num_train_epochs": 1.0}):
        run_classifier.main(["run_classifier"])
    trials = by_trial(load_study(out))
    assert [s.name for s, *_ in trials.values()] == ["COMPLETE"] * 3  # restarts: no pruning
    seeds = [params["seed"] for _, _, params, _ in trials.values()]
    assert len(set(seeds)) == 3 and all(1 <= s <= 10000 for s in seeds)
    for n, (_, _, params, _) in trials.items():
        assert read_stats(os.path.join(out, f"trial-{n}"))[0]["epoch"] == 1
        assert f'"seed": {params["seed"]}' in read(os.path.join(out, f"trial-{n}",
                                                                "run_config.json"))
    scores = [value for _, value, *_ in trials.values()]
    assert min(scores) < max(scores)  # in 1 epoch at this rate, some seeds learn the task
    table = read(os.path.join(out, RESULTS))
    assert (f"dev_accuracy over 3 finished trials: median {statistics.median(scores):.4f}, "
            f"min {min(scores):.4f}, max {max(scores):.4f}, "
            f"std {statistics.stdev(scores):.4f}") in table
    best = max(trials, key=lambda n: (trials[n][1], -n))
    assert f"best: trial {best} (dev_accuracy {max(scores):.4f}): --seed={seeds[best]}" in table
    assert read(os.path.join(out, "model.safetensors"), "rb") == read(
        os.path.join(out, f"trial-{best}", "model.safetensors"), "rb")


def read_stats(folder):
    return json.loads(read(os.path.join(folder, "training_stats.json")))


def load_study(out):
    return optuna.load_study(study_name=study_name(out), storage=f"sqlite:///{out}/{DATABASE}")


def by_trial(study):
    """Trial n (its last attempt) -> (state, value, params, intermediate values)."""
    return {t.user_attrs["trial"]: (t.state, t.value, t.params, t.intermediate_values)
            for t in study.get_trials()}


def test_search_prunes_and_makes_the_best_trial_the_model(tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), str(tmp_path / "out")
    with flagsaver.flagsaver(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
                             do_predict=True, **SEARCH):
        run_classifier.main(["run_classifier"])
    trials = by_trial(load_study(out))
    assert sorted(trials) == [0, 1, 2, 3]
    states = [state for state, *_ in trials.values()]
    assert optuna.trial.TrialState.PRUNED in states and all(
        s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states)
    complete = {n: v for n, (s, v, *_) in trials.items() if s.name == "COMPLETE"}
    best = max(complete, key=lambda n: (complete[n], -n))
    for n, (state, _, _, reports) in trials.items():
        folder = os.path.join(out, f"trial-{n}")
        finished = os.path.exists(os.path.join(folder, "config.json"))
        assert finished == (state.name == "COMPLETE")  # a pruned trial stopped mid-run
        assert len(reports) == (3 if finished else len(read_stats(folder)))
        if not finished:  # pruned after one of its epochs (the last one too, possibly)
            assert len(reports) <= 3 and max(reports.values()) < complete[best]
    for name in ("model.safetensors", "eval_results.json", "training_stats.json"):
        assert read(os.path.join(out, name), "rb") == read(
            os.path.join(out, f"trial-{best}", name), "rb"), name
    assert len(read(os.path.join(out, "test_results.tsv")).splitlines()) == 20
    table = read(os.path.join(out, RESULTS))
    assert len(re.findall(r"^ +\d +(complete|pruned) ", table, re.M)) == 4
    assert f"best: trial {best} (dev_accuracy {complete[best]:.4f}): --learning_rate=" in table
    model = read(os.path.join(out, "model.safetensors"), "rb")
    with flagsaver.flagsaver(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
                             **SEARCH):  # the same search again: done, nothing runs
        run_classifier.main(["run_classifier"])
    assert by_trial(load_study(out)) == trials and read(os.path.join(out, RESULTS)) == table
    assert read(os.path.join(out, "model.safetensors"), "rb") == model
    plain = {k: v for k, v in SEARCH.items() if not k.startswith("search_")}
    with pytest.raises(InputError, match="a search there already finished"):
        with flagsaver.flagsaver(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
                                 **plain):  # a plain run never replaces the search's model
            run_classifier.main(["run_classifier"])
    with pytest.raises(InputError, match="the study in .* searches learning_rate=0.0001:0.01"):
        open_study(out, None, parse_search_space("seed"), 4)


def command(tiny_bert, data, out):
    flags_ = [f"--{k}={v}" if not isinstance(v, bool) else f"--{k}" for k, v in SEARCH.items()]
    return [sys.executable, os.path.join(ROOT, "run_classifier.py"), f"--data_dir={data}",
            f"--init_checkpoint={tiny_bert}", f"--output_dir={out}", *flags_]


def run_to_end(cmd, log):
    with open(log, "w") as err:
        return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV, cwd=ROOT,
                              timeout=300).returncode


def kill_in_trial_2(cmd, out, log):
    """Runs the search and SIGKILLs it once trial 2 has written its first checkpoint."""
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=ENV, cwd=ROOT)
    return kill_after_checkpoint(proc, os.path.join(out, "trial-2"), 240)


def without_times(table):
    return re.sub(r"^( +\d +\w+ +\S+ +\d+) +\d+", r"\1", table, flags=re.M)


def test_killed_search_restarts_to_the_same_result(tiny_bert, tmp_path):
    data = write_keyword_data(tmp_path / "data")
    plain, killed = str(tmp_path / "plain"), str(tmp_path / "killed")
    logs = [str(tmp_path / name) for name in ("plain.log", "killed.log", "restart.log")]
    with ThreadPoolExecutor(2) as pool:
        reference = pool.submit(run_to_end, command(tiny_bert, data, plain), logs[0])
        assert kill_in_trial_2(command(tiny_bert, data, killed), killed, logs[1]) == -9
        assert reference.result() == 0, read(logs[0])[-3000:]
    assert not os.path.exists(os.path.join(killed, "trial-3"))
    assert run_to_end(command(tiny_bert, data, killed), logs[2]) == 0, read(logs[2])[-3000:]
    restart = read(logs[2])
    assert "Trial 2 lost its worker" in restart
    assert "Resuming from " + os.path.join(killed, "trial-2", "checkpoint-") in restart
    assert re.findall(r"\*\*\*\*\* Trial (\d)", restart) == ["2", "3"]
    assert by_trial(load_study(killed)) == by_trial(load_study(plain))
    assert without_times(read(os.path.join(killed, RESULTS))) == without_times(
        read(os.path.join(plain, RESULTS)))
    assert read(os.path.join(killed, "model.safetensors"), "rb") == read(
        os.path.join(plain, "model.safetensors"), "rb")


def test_two_workers_share_one_study(tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), str(tmp_path / "out")
    logs = [str(tmp_path / f"worker{i}.log") for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        codes = list(pool.map(run_to_end, [command(tiny_bert, data, out)] * 2, logs))
    assert codes == [0, 0], read(logs[0])[-3000:] + read(logs[1])[-3000:]
    ran = [re.findall(r"\*\*\*\*\* Trial (\d)", read(log)) for log in logs]
    assert sorted(ran[0] + ran[1]) == ["0", "1", "2", "3"]  # each trial run once, by one worker
    study = load_study(out)
    assert len(study.trials) == 4 and all(t.state.is_finished() and t.state.name != "FAIL"
                                          for t in study.trials)
    texts = [read(log) for log in logs]
    for text in texts:
        assert "Resuming from" not in text and "lost its worker" not in text
    # The model is copied once, by the worker that finished last; the other says so.
    assert sorted("***** Search results *****" in text for text in texts) == [False, True]
    assert sum("(another worker copied it" in text for text in texts) == 1


def test_a_search_never_replaces_a_finished_run(tiny_bert, tmp_path):
    """A plain run's finished output_dir: a search there is refused, the model intact."""
    data, out = write_keyword_data(tmp_path / "data"), str(tmp_path / "out")
    plain = {k: v for k, v in SEARCH.items() if not k.startswith("search_")}
    with flagsaver.flagsaver(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
                             **{**plain, "num_train_epochs": 1.0}):
        run_classifier.main(["run_classifier"])
    before = {name: read(os.path.join(out, name), "rb") for name in os.listdir(out)
              if os.path.isfile(os.path.join(out, name))}
    with pytest.raises(InputError, match="training there already finished"):
        with flagsaver.flagsaver(init_checkpoint=tiny_bert, data_dir=data, output_dir=out,
                                 **SEARCH):
            run_classifier.main(["run_classifier"])
    assert before == {name: read(os.path.join(out, name), "rb") for name in os.listdir(out)
                      if os.path.isfile(os.path.join(out, name))}
    assert not [name for name in os.listdir(out) if name.startswith("trial-")]


@pytest.mark.parametrize("name", ["s?a", "s%41", "s#b"])
def test_the_default_study_file_is_inside_output_dir_whatever_its_name(tmp_path, name):
    out = tmp_path / name
    out.mkdir()
    study = open_study(str(out), None, parse_search_space("seed"), 2)
    assert os.listdir(tmp_path) == [name] and os.path.isfile(out / DATABASE)
    assert study.study_name == study_name(str(out)) == "run_classifier:" + str(out)


def test_each_trial_runs_on_a_copy_of_the_settings(monkeypatch, tmp_path):
    """A trial is train_eval_predict(replace(s, ...)): the flags are never rewritten, and
    the settings the search started from stay as they were."""
    from types import SimpleNamespace
    from training import search as tuning
    out, seen = str(tmp_path / "out"), []

    def fake_run(s, on_dev_score=None):
        seen.append((s, FLAGS.output_dir, FLAGS.learning_rate, FLAGS.search_trials))
        if s.do_train:
            os.makedirs(s.output_dir, exist_ok=True)
            with open(os.path.join(s.output_dir, "eval_results.json"), "w") as f:
                json.dump({"eval_accuracy": 0.5}, f)

    def fake_search(output_dir, storage, space, n_trials, seed, score_name, run, finish, name):
        assert (output_dir, n_trials, score_name) == (out, 2, "dev_accuracy")
        assert run(os.path.join(out, "trial-0"), {"learning_rate": 1e-3}, None) == 0.5
        finish({"learning_rate": 1e-3})
        return {"trial": 0}

    processor = SimpleNamespace(metric="accuracy")
    monkeypatch.setattr(run_classifier, "validate", lambda s: (processor, None, False, {}))
    monkeypatch.setattr(run_classifier, "train_eval_predict", fake_run)
    monkeypatch.setattr(tuning, "search", fake_search)
    with flagsaver.flagsaver(task_name="generic", output_dir=out, do_train=True, do_eval=True,
                             do_predict=True, search_trials=2, learning_rate=5e-5):
        s = run_classifier.settings(FLAGS, run_classifier)
        assert run_classifier.search(s) == {"trial": 0}
        assert (s.output_dir, s.learning_rate, s.search_trials) == (out, 5e-5, 2)
    (trial, *flag_values), (final, *after) = seen
    assert flag_values == after == [out, 5e-5, 2]  # FLAGS as the user set them, throughout
    assert (trial.output_dir, trial.learning_rate, trial.search_trials, trial.do_predict,
            trial.cache_dir) == (os.path.join(out, "trial-0"), 1e-3, 0, False,
                                 os.path.join(out, "cache"))
    assert (final.output_dir, final.learning_rate, final.do_train, final.do_eval,
            final.do_predict) == (out, 1e-3, False, False, True)
    with pytest.raises(AttributeError):
        s.learning_rate = 1.0  # frozen: a variant is a copy
