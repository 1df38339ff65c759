"""The command-line wrapper run_classifier.py and extract_features.py share.

absl parses the flags; every way a run can end is one line on stderr and an exit
code, never a traceback: 2 for a user error (a bad flag, file or row: an
`InputError`) or a failed write (`OSError`, e.g. a full disk), 3 for a training
run that diverged, 130 for Ctrl-C, 143 for SIGTERM (what schedulers and torchrun
send): both stop the run the same way, so the next run resumes from the last
checkpoint. This module imports only what is light, so a program can install its
interrupt handler before its heavy imports.
"""

import atexit
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import sys
import threading
from typing import Callable

from modeling.errors import InputError, TrainingDiverged

_phase = ["loading"]  # then "running" (in `call`), "interrupted" or "done"
_exit_code = [130]  # 128 + the number of the signal that interrupted the run


_SETTINGS: dict[str, type] = {}  # a module's Settings class, made once
_program: list[str] = []  # [its name] in a program's own process (`_own_process`)
_frozen: list[bool] = []  # [True] once `heavy_imports` has run
NOTICE_AFTER = 2.0  # seconds a held signal waits on torch before the user is told why
_held: list[int] = []  # [the signal] held until torch's code or an import returns
_IMPORTLIB = "<frozen importlib"  # the file names of importlib's frames


def user_set(flag_values, name: str) -> bool:
    """Whether the user gave flag `name` (on the command line, or a test's flagsaver): one
    left unset may follow the model instead of its default."""
    flag = flag_values[name]
    return bool(flag.present) or not flag.using_default_value


def settings(flag_values, module) -> object:
    """The values of the flags `module` defines, as a frozen dataclass (`Settings`): one
    invocation's settings, read once at the top of main; a variant (a search trial's) is
    `dataclasses.replace(s, ...)`, never a write to the flags."""
    values = {f.name: f.value for f in flag_values.get_key_flags_for_module(module)}
    cls = _SETTINGS.get(module.__name__)
    if cls is None or [f.name for f in dataclasses.fields(cls)] != list(values):
        cls = dataclasses.make_dataclass("Settings", list(values), frozen=True)
        _SETTINGS[module.__name__] = cls
    return cls(**values)


def fail(prog: str, message: str, code: int = 2) -> None:
    """The last line a run writes: nothing logs after it (torch's exit hooks included)."""
    logging.disable(logging.CRITICAL)
    sys.stderr.write(f"{prog}: {message}\n")
    sys.exit(code)


def _interrupted(hint: str) -> str:
    return "interrupted" + (f"; {hint}" if hint else "")


def interrupt_handler(prog: str, hint: str = "") -> Callable:
    """A SIGINT and SIGTERM handler. While the modules load nothing is written yet: exit at
    once with the hint. In `call`: Python's KeyboardInterrupt, so that `finally` blocks
    clean up; `call` ends the run as an interrupt (exit 128 + the signal's number) even when
    a library turned it into another error (transformers' lazy imports report an import cut
    short as ModuleNotFoundError). A signal that arrives while a module imports or torch's
    own Python code runs is held until that code returns to the program's (a profile hook
    on the main thread watches for it): torch runs Python from C++ (its import, the
    dispatcher's Python rules while a graph compiles), and an exception raised there
    aborts the process (SIGABRT, a C++ terminate) instead of unwinding. A second signal
    while one is held ends the process at once (a compile can take minutes)."""

    line = f"{prog}: {_interrupted(hint)}\n"

    def act(signum: int) -> None:
        if _phase[0] == "loading":
            sys.stderr.write(line)
            raise SystemExit(128 + signum)
        if _phase[0] != "done":
            _phase[0] = "interrupted"
            _exit_code[0] = 128 + signum
            raise KeyboardInterrupt

    def on_interrupt(signum, frame) -> None:
        if _phase[0] == "done":  # the run's work is over: only exiting is left
            return
        if _held:  # again while held: stop at once, as a killed process would
            sys.stderr.write(line)
            sys.stderr.flush()
            os._exit(128 + _held[0])
        outermost = _outermost_held(frame)
        if outermost is None or sys.getprofile() is not None:  # (a profiler's hook stays)
            act(signum)
            return
        _hold(signum, outermost, act, prog)

    return on_interrupt


def _hold(signum: int, outermost, act: Callable[[int], None], prog: str) -> None:
    """Holds `signum` until frame `outermost` returns, then calls `act(signum)` there (a
    profile hook on this, the main, thread); says so if torch's call lasts (a compile)."""
    _held.append(signum)
    notice = None
    if not outermost.f_code.co_filename.startswith(_IMPORTLIB):
        notice = threading.Timer(NOTICE_AFTER, sys.stderr.write, [
            f"{prog}: stopping once torch's current call returns (a graph may be compiling);"
            " Ctrl-C again stops at once\n"])
        notice.daemon = True
        notice.start()

    def after_held(frame, event, arg) -> None:
        if frame is outermost and event == "return":
            sys.setprofile(None)
            _held.clear()
            if notice is not None:
                notice.cancel()
            act(signum)  # raised into the program's code, as that frame returns

    sys.setprofile(after_held)


def _outermost_held(frame):
    """The outermost frame of an import or of torch's own Python code that `frame` runs
    inside, or None (then `frame` is the program's code, or another library's)."""
    torch_file = getattr(sys.modules.get("torch"), "__file__", None)
    torch_dirs = (os.path.dirname(torch_file) + os.sep,) if torch_file else ()
    prefixes = (_IMPORTLIB, *torch_dirs)
    outermost = None
    while frame is not None:
        if frame.f_code.co_filename.startswith(prefixes):
            outermost = frame
        frame = frame.f_back
    return outermost


def _own_process(prog: str) -> None:
    """Marks this process as program `prog`'s own (see `heavy_imports`)."""
    if not _program:
        _program.append(prog)


def install_interrupt_handler(prog: str, hint: str = "") -> None:
    """Ctrl-C (SIGINT) and SIGTERM both stop the run through `interrupt_handler`. A
    program's first call, in its own process only (a caller importing its library does
    not make it)."""
    _own_process(prog)
    handler = interrupt_handler(prog, hint)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def call(prog: str, main: Callable[[list[str]], None], argv: list[str], hint: str = "") -> None:
    """main(argv), with every way it can end reduced to one line and an exit code."""
    _phase[0] = "running"
    try:
        main(argv)
    except BaseException as e:
        interrupted = _phase[0] == "interrupted" or isinstance(e, KeyboardInterrupt)
        _phase[0] = "done"  # another Ctrl-C now changes nothing
        if interrupted:
            fail(prog, _interrupted(hint), _exit_code[0])
        if isinstance(e, InputError):
            fail(prog, f"error: {e}")
        if isinstance(e, TrainingDiverged):
            fail(prog, f"error: {e}", 3)
        if isinstance(e, OSError):  # a full disk, say: the atomic writers left nothing partial
            fail(prog, f"error: {e.filename}: {e.strerror or e}" if e.filename
                 else f"error: {e}")
        raise
    _phase[0] = "done"


@contextlib.contextmanager
def heavy_imports():
    """Wraps a program's heavy imports (torch's, transformers'). In the program's own
    process (`_own_process`; a caller's keeps its collector as it is), once: the cyclic
    garbage collector is paused while they run, then everything they made leaves its
    generations (`gc.freeze`). The imports make hundreds of thousands of objects (modules,
    functions, torch's operator tables) that live as long as the process: collected as
    they come, each full pass walks all of them to free almost nothing (benchmarks/README.md
    says how long that took), and the first full collection after, which building the
    model triggers, walks them again. The few cycles the imports leave as garbage stay,
    frozen with the rest (bounded, once); a search's later trials are collected as usual."""
    if not _program or _frozen:
        yield
        return
    _frozen.append(True)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def exit_now(code: int = 0) -> None:
    """Ends the process once its work is done: the exit hooks run and every stream and log
    is flushed, then the interpreter's teardown of each module and object (torch's,
    transformers') is skipped. Every file was written and synced before (modeling.disk),
    so the teardown would change nothing but the time the command takes. Under a profiler,
    debugger or coverage tracer the process ends the usual way, so that they finish too."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)


def run(prog: str, guarded_main: Callable[[list[str]], None]) -> None:
    """app.run(guarded_main) (a function that goes through `call`), absl's flag errors
    made one line; a finished run ends the process at once (`exit_now`). For the
    programs' entry points only: a caller that goes on afterwards calls their `main`."""
    from absl import app, flags
    _own_process(prog)

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(prog, f"error: {e}")

    def main_then_exit(argv: list[str]) -> None:
        guarded_main(argv)
        exit_now(0)

    app.run(main_then_exit, flags_parser=parse)
