"""The one registry of processors: task name -> processor class.

Google's way (`PROCESSORS["name"] = MyProcessor`, in a --processor_module file
or in this package) and the decorator (`@register_processor("name")`) fill the
same dictionary; `get_processor` sets the task name on each instance either way.
"""

import importlib
import importlib.util
import inspect
import os
import sys
from typing import Optional

from .base import DataProcessor, InputError
from .cells import check_plain_name

PROCESSORS: dict[str, type[DataProcessor]] = {}


def register_processor(name: str):
    """Class decorator: registers a DataProcessor subclass under a task name, a plain
    name (it names cache entries: never a path)."""
    problem = check_plain_name(name)
    if problem:
        raise InputError(f"register_processor({name!r}): {problem}")

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, DataProcessor)):
            raise TypeError(f"{cls!r} is not a DataProcessor subclass")
        PROCESSORS[name.lower()] = cls
        if "task_name" not in vars(cls):
            cls.task_name = name.lower()
        return cls

    return register


def processor_class(task_name: str) -> type[DataProcessor]:
    """The registered class of a task name (case-insensitive), checked: a DataProcessor
    subclass that implements every abstract method."""
    name = task_name.lower()
    cls = PROCESSORS.get(name) or next(
        (c for n, c in PROCESSORS.items() if n.lower() == name), None)
    if cls is None or check_plain_name(name):
        raise InputError(f"--task_name={task_name}: unknown task; registered tasks: "
                         f"{', '.join(sorted(PROCESSORS))} (--task_name=help describes them)")
    if not (isinstance(cls, type) and issubclass(cls, DataProcessor)):
        raise InputError(f"--task_name={name}: PROCESSORS[{name!r}] is {cls!r}, not a "
                         "DataProcessor subclass")
    if inspect.isabstract(cls):
        raise InputError(f"--task_name={name}: {cls.__name__} does not implement "
                         f"{', '.join(sorted(cls.__abstractmethods__))}")
    return cls


def tasks_with_options() -> list[str]:
    """The tasks whose processors take options (`options_type`), sorted."""
    return sorted(n for n, c in PROCESSORS.items() if getattr(c, "options_type", None))


def get_processor(task_name: str, data_dir: Optional[str] = None,
                  options=None) -> DataProcessor:
    """Returns a new processor for a task name (case-insensitive): `cls.from_options`.

    `options` is the class's `options_type` value (None: the defaults); whether a task
    may be given options at all is the program's to decide (`processor_class(...)
    .options_type`). `data_dir` lets a processor read its labels from the train file.
    """
    cls = processor_class(task_name)
    processor = cls.from_options(options, data_dir)
    processor.task_name = task_name.lower()
    return processor


def describe_tasks() -> str:
    """A table of the tasks: name, problem type, metrics (the first is the main one), labels."""
    from .metrics import METRICS  # scikit-learn loads only when asked
    rows = [("task", "problem_type", "metrics", "labels")]
    for name in sorted(PROCESSORS):
        processor = get_processor(name)
        rows.append((name, processor.problem_type,
                     ", ".join(METRICS.get(processor.metric, (processor.metric,))),
                     processor.describe_labels()))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[3]
                     for row in rows)


def load_processor_module(spec: str) -> None:
    """Imports a user's module (dotted path or .py file) that registers processors."""
    before = set(PROCESSORS.items())
    if spec.endswith(".py") and not os.path.isfile(spec):
        raise InputError(f"--processor_module={spec}: file not found")
    try:
        if spec.endswith(".py"):
            name = "user_processors_" + os.path.splitext(os.path.basename(spec))[0]
            module_spec = importlib.util.spec_from_file_location(name, spec)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            module_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)
    except InputError as e:  # register_processor's, say
        sys.modules.pop("user_processors_" + os.path.splitext(os.path.basename(spec))[0], None)
        raise InputError(f"--processor_module={spec}: {e}") from None
    except Exception as e:  # any failure inside the user's module is a user error
        sys.modules.pop("user_processors_" + os.path.splitext(os.path.basename(spec))[0], None)
        raise InputError(f"--processor_module={spec}: cannot import: "
                         f"{type(e).__name__}: {e}".splitlines()[0]) from None
    for name in dict(set(PROCESSORS.items()) - before):
        problem = check_plain_name(name)
        if problem:
            raise InputError(f"--processor_module={spec}: PROCESSORS[{name!r}]: {problem}")
    if set(PROCESSORS.items()) <= before:
        raise InputError(f"--processor_module={spec}: registers no processor (add a "
                         "DataProcessor subclass to PROCESSORS, or decorate it with "
                         "@register_processor)")
