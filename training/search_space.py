"""--search_space: which training flags a hyperparameter search varies, and over what.

    learning_rate=1e-5:3e-4:log,num_train_epochs=2:4:int,train_batch_size=16|32,seed

`name=low:high` is a uniform range (`:log` log-uniform, `:int` whole numbers; an integer
flag's range is always whole numbers), `name=a|b|c` a choice, and a bare name its default
range. Which names may be searched, their types and default ranges are the program's
(`searchable`, a plain mapping it passes in). Parsing is pure (no Optuna), so a bad space
is a one-line error before any work.
"""

from dataclasses import dataclass
from typing import Mapping, Optional, Union

from modeling.errors import InputError

OPTIONS = ("log", "int")

Value = Union[int, float, str]
Searchable = Mapping[str, tuple[type, Optional[str]]]  # name -> (type, default range)


@dataclass(frozen=True)
class Param:
    """One searched flag: a range (low, high) or a choice among `choices`."""

    name: str
    low: Optional[Value] = None
    high: Optional[Value] = None
    log: bool = False
    integer: bool = False
    choices: tuple = ()
    kind: type = float  # the flag's type: a trial's value is converted to it

    def __str__(self) -> str:
        if self.choices:
            return f"{self.name}={'|'.join(str(c) for c in self.choices)}"
        integer = self.integer and self.kind is not int  # (implied for int flags)
        options = "".join(f":{o}" for o, on in zip(OPTIONS, (self.log, integer)) if on)
        return f"{self.name}={self.low}:{self.high}{options}"

    def extremes(self) -> tuple:
        """The values a trial may take at the edges: every choice, or low and high."""
        return tuple(self.kind(v) for v in (self.choices or (self.low, self.high)))

    def suggest(self, trial) -> Value:
        """The trial's value (an optuna.Trial's suggest_*), as the flag's type."""
        if self.choices:
            return trial.suggest_categorical(self.name, self.choices)
        suggest = trial.suggest_int if self.integer else trial.suggest_float
        return self.kind(suggest(self.name, self.low, self.high, log=self.log))


def _number(text: str, kind: type, where: str) -> Value:
    try:
        return kind(text)
    except ValueError:
        raise InputError(f"{where}: {text!r} is not {'an integer' if kind is int else 'a number'}"
                         ) from None


def _parse_range(name: str, kind: type, text: str, where: str) -> Param:
    low, high, *options = text.split(":")
    unknown = [o for o in options if o not in OPTIONS]
    if unknown or len(set(options)) < len(options):
        raise InputError(f"{where}: unknown or repeated option {':'.join(options)!r} "
                         f"(options: {', '.join(OPTIONS)})")
    integer = "int" in options or kind is int
    low, high = (_number(v, int if integer else float, where) for v in (low, high))
    if low > high:
        raise InputError(f"{where}: low {low} is above high {high}")
    if "log" in options and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0")
    return Param(name, low, high, log="log" in options, integer=integer, kind=kind)


def _parse_one(item: str, where: str, searchable: Searchable) -> Param:
    name, _, text = item.partition("=")
    name = name.strip()
    if name not in searchable:
        raise InputError(f"{where}: {name!r} is not a searchable flag (one of "
                         f"{', '.join(searchable)})")
    kind, default = searchable[name]
    if not text:
        if default is None:
            raise InputError(f"{where}: {name} has no default range; give one ({name}=a:b)")
        text = default
    if "|" in text or kind is str:
        choices = tuple(c if kind is str else _number(c, kind, where) for c in text.split("|"))
        if "" in choices or len(set(choices)) < len(choices):
            raise InputError(f"{where}: choices must be distinct and not empty")
        return Param(name, choices=choices, kind=kind)
    if text.count(":") < 1:
        raise InputError(f"{where}: expected low:high[:log][:int] or a|b|c")
    return _parse_range(name, kind, text, where)


def parse_search_space(text: str, searchable: Searchable) -> tuple[Param, ...]:
    """The parameters of `--search_space=text` (the program passes its default for an
    unset flag); `searchable` maps each name a search may vary to (its type, its default
    range or None). InputError names the flag."""
    params = tuple(_parse_one(item, f"--search_space={text}: {item}", searchable)
                   for item in text.split(","))
    names = [p.name for p in params]
    if len(set(names)) < len(names):
        raise InputError(f"--search_space={text}: a flag appears twice")
    return params
