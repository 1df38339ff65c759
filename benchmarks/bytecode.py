"""The project's bytecode, written before a benchmark times a command.

pip wrote the peers' bytecode (transformers, the Trainer) when it installed them, and a
user's first run of this project writes its own (`__pycache__`, git-ignored). A machine
that sets PYTHONDONTWRITEBYTECODE, as the sandboxes these benchmarks ran on do, would
instead compile every module of ours again in every timed command: an extra cost no user
pays, so the benchmarks write the bytecode first, as that first run would.
"""

import compileall
import os

PACKAGES = ("modeling", "processors", "training")


def write_bytecode(root: str) -> None:
    """Compiles the packages under `root` (a checkout) to their `__pycache__` folders."""
    for package in PACKAGES:
        compileall.compile_dir(os.path.join(root, package), maxlevels=0, quiet=1)
