"""The command-line wrapper run_classifier.py and extract_features.py share.

absl parses the flags; every user error (a bad flag, file or row: an
`InputError`), a failed write (`OSError`, e.g. a full disk) and Ctrl-C end as one
line on stderr with an exit code, never a traceback: 2 for a user error or a
failed write, 130 for an interrupt.
"""

import sys
import types
from typing import Callable

from absl import app, flags

from core import InputError


class Settings(types.SimpleNamespace):
    """The flag values of one invocation, read once at the top of main; read-only."""

    def __setattr__(self, name, value):
        raise AttributeError(f"settings are read-only ({name})")


def settings(flag_values: flags.FlagValues, module) -> Settings:
    """The values of the flags `module` defines."""
    return Settings(**{f.name: f.value for f in flag_values.get_key_flags_for_module(module)})


def fail(prog: str, message: str, code: int = 2) -> None:
    sys.stderr.write(f"{prog}: {message}\n")
    sys.exit(code)


def call(prog: str, main: Callable[[list[str]], None], argv: list[str],
         interrupted_hint: str = "") -> None:
    """main(argv), with its user errors, write errors and Ctrl-C made one line and an exit."""
    try:
        main(argv)
    except InputError as e:
        fail(prog, f"error: {e}")
    except OSError as e:  # a full disk, say: the atomic writers left nothing partial
        fail(prog, f"error: {e.filename}: {e.strerror or e}" if e.filename else f"error: {e}")
    except KeyboardInterrupt:
        fail(prog, "interrupted" + (f"; {interrupted_hint}" if interrupted_hint else ""), 130)


def run(prog: str, guarded_main: Callable[[list[str]], None]) -> None:
    """app.run(guarded_main) (a function that goes through `call`), absl's flag errors
    made one line."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(prog, f"error: {e}")

    app.run(guarded_main, flags_parser=parse)
