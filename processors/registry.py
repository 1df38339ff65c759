"""The one registry of processors: task name -> processor class."""

import importlib
import importlib.util
import os
import sys

from .base import DataProcessor, InputError

PROCESSORS: dict[str, type[DataProcessor]] = {}


def register_processor(name: str):
    """Class decorator: registers a DataProcessor subclass under a task name."""

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, DataProcessor)):
            raise TypeError(f"{cls!r} is not a DataProcessor subclass")
        PROCESSORS[name.lower()] = cls
        cls.task_name = name.lower()
        return cls

    return register


def get_processor(task_name: str) -> DataProcessor:
    """Returns a new processor for a task name (case-insensitive)."""
    cls = PROCESSORS.get(task_name.lower())
    if cls is None:
        raise InputError(f"--task_name={task_name}: unknown task; registered tasks: "
                         f"{', '.join(sorted(PROCESSORS))}")
    return cls()


def load_processor_module(spec: str) -> None:
    """Imports a user's module (dotted path or .py file) that registers processors."""
    before = set(PROCESSORS.items())
    try:
        if spec.endswith(".py"):
            if not os.path.isfile(spec):
                raise InputError(f"--processor_module={spec}: file not found")
            name = "user_processors_" + os.path.splitext(os.path.basename(spec))[0]
            module_spec = importlib.util.spec_from_file_location(name, spec)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except InputError:
        raise
    except Exception as e:  # any failure inside the user's module is a user error
        sys.modules.pop("user_processors_" + os.path.splitext(os.path.basename(spec))[0], None)
        raise InputError(f"--processor_module={spec}: cannot import: "
                         f"{type(e).__name__}: {e}".splitlines()[0]) from None
    if set(PROCESSORS.items()) <= before:
        raise InputError(f"--processor_module={spec}: registers no processor "
                         "(decorate a DataProcessor subclass with @register_processor)")
