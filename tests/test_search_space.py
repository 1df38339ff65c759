"""--search_space parsing, and bad spaces refused in one line before any work."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from absl import flags
from absl.testing import flagsaver

import run_classifier
from conftest import write_keyword_data
from processors import InputError
from training.search_space import Param
from training.search_space import parse_search_space as parse_with

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_search_space(text):
    """`text` over run_classifier's searchable flags."""
    return parse_with(text, run_classifier.SEARCHABLE)


@pytest.fixture(autouse=True)
def parsed_flags():
    if not FLAGS.is_parsed():
        FLAGS.mark_as_parsed()


def test_ranges_choices_and_defaults():
    space = parse_search_space("learning_rate=1e-5:3e-4:log,num_train_epochs=2:5:int,"
                               "train_batch_size=16|32,seed=1:1000,class_weights=none|balanced")
    assert space == (Param("learning_rate", 1e-5, 3e-4, log=True),
                     Param("num_train_epochs", 2, 5, integer=True),
                     Param("train_batch_size", choices=(16, 32), kind=int),
                     Param("seed", 1, 1000, integer=True, kind=int),  # an integer flag
                     Param("class_weights", choices=("none", "balanced"), kind=str))
    assert str(space[0]) == "learning_rate=1e-05:0.0003:log"
    assert space[1].extremes() == (2.0, 5.0) and space[2].extremes() == (16, 32)
    unset = SimpleNamespace(search_trials=4, search_space=None)
    assert run_classifier.search_space(unset) == parse_search_space(
        run_classifier.DEFAULT_SPACE) == parse_search_space(
        "learning_rate=1e-5:3e-4:log,num_train_epochs=2:4:int,train_batch_size=16|32")
    assert run_classifier.search_space(SimpleNamespace(search_trials=0, search_space="seed")) == ()
    assert parse_search_space("seed") == (Param("seed", 1, 10000, integer=True, kind=int),)


def test_a_search_space_names_only_what_the_program_allows():
    """The table is the program's: the library parses over whatever mapping it is given."""
    space = parse_with("dropout=0.1:0.3,steps", {"dropout": (float, None), "steps": (int, "1|2")})
    assert space == (Param("dropout", 0.1, 0.3), Param("steps", choices=(1, 2), kind=int))
    with pytest.raises(InputError, match="'learning_rate' is not a searchable flag"):
        parse_with("learning_rate", {"dropout": (float, None)})


class FakeTrial:
    """Records what a Param asks optuna for; answers the low end (or the last choice)."""

    def __init__(self):
        self.calls = []

    def suggest_float(self, name, low, high, log):
        self.calls.append(("float", name, low, high, log))
        return low

    def suggest_int(self, name, low, high, log):
        self.calls.append(("int", name, low, high, log))
        return low

    def suggest_categorical(self, name, choices):
        self.calls.append(("categorical", name, choices))
        return choices[-1]


def test_suggest_asks_for_the_right_kind_and_returns_the_flags_type():
    trial = FakeTrial()
    values = [p.suggest(trial) for p in parse_search_space(
        "learning_rate=1e-5:3e-4:log,num_train_epochs=2:5:int,train_batch_size=16|32")]
    assert trial.calls == [("float", "learning_rate", 1e-5, 3e-4, True),
                           ("int", "num_train_epochs", 2, 5, False),
                           ("categorical", "train_batch_size", (16, 32))]
    assert values == [1e-5, 2.0, 32] and isinstance(values[1], float)  # a float flag


BAD_SPACES = [
    ("foo=1:2", "'foo' is not a searchable flag"),
    ("output_dir=a|b", "'output_dir' is not a searchable flag"),
    ("learning_rate=1e-3:1e-5", "low 0.001 is above high 1e-05"),
    ("learning_rate=abc:1e-3", "'abc' is not a number"),
    ("train_batch_size=16|x", "'x' is not an integer"),
    ("num_train_epochs=2.5:4:int", "'2.5' is not an integer"),
    ("learning_rate=1e-5:1e-3:cubic", "unknown or repeated option 'cubic'"),
    ("learning_rate=1e-5", "expected low:high"),
    ("weight_decay=0:0.1:log", "a log range needs low > 0"),
    ("adam_epsilon", "adam_epsilon has no default range"),
    ("seed,seed=1:5", "a flag appears twice"),
    ("learning_rate,", "'' is not a searchable flag"),
]


@pytest.mark.parametrize("text, message", BAD_SPACES)
def test_bad_spaces_name_the_flag(text, message):
    with pytest.raises(InputError) as e:
        parse_search_space(text)
    assert str(e.value).startswith(f"--search_space={text}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def run_main(**overrides):
    values = dict(task_name="generic", precision="fp32", do_train=True, do_eval=True,
                  search_trials=4)
    values.update(overrides)
    with flagsaver.flagsaver(**values):
        run_classifier.main(["run_classifier"])


@pytest.mark.parametrize("overrides, message", [
    (dict(search_space="foo=1:2"), "--search_space=foo=1:2: foo=1:2: 'foo' is not a searchable"),
    (dict(search_space="train_batch_size=0:32"),
     "--search_space: train_batch_size=0:32: --train_batch_size=0: must be positive"),
    (dict(search_space="max_seq_length=64:512"), "--max_seq_length=512: must be at most"),
    (dict(search_space="class_weights=none|1,2,3"), "not a searchable flag"),
    (dict(search_space="class_weights=none|2:1"), "--search_space: class_weights=none|2:1: "),
    (dict(search_trials=0, search_space="seed"),
     "--search_space, --search_storage and --search_study need"),
    (dict(do_eval=False), "--search_trials needs --do_train and --do_eval"),
    (dict(overwrite_output_dir=True), "--overwrite_output_dir: not with --search_trials"),
    (dict(search_trials=-1), "--search_trials=-1: must be >= 0"),
])
def test_bad_search_flags_fail_before_any_work(overrides, message, tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), tmp_path / "out"
    with pytest.raises(InputError, match=message.replace("|", r"\|")):
        run_main(init_checkpoint=tiny_bert, data_dir=data, output_dir=str(out), **overrides)
    assert not out.exists()


def test_bad_space_on_the_command_line_is_one_line(tiny_bert, tmp_path):
    data, out = write_keyword_data(tmp_path / "data"), tmp_path / "out"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "run_classifier.py"), "--task_name=generic",
         f"--data_dir={data}", f"--init_checkpoint={tiny_bert}", f"--output_dir={out}",
         "--do_train", "--do_eval", "--search_trials=4",
         "--search_space=learning_rate=3e-4:1e-5:log"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr == ("run_classifier: error: --search_space=learning_rate=3e-4:1e-5:log: "
                             "learning_rate=3e-4:1e-5:log: low 0.0003 is above high 1e-05\n")
    assert not out.exists()
