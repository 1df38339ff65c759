"""The two ways a run ends on purpose: a user error (`InputError`, one line naming the
flag, `file:line` or file; exit 2) and a training run that diverged (exit 3)."""


class InputError(ValueError):
    """A user error (bad flag, file or row); its message is one line."""


def check(ok: bool, message: str) -> None:
    """Raises InputError(message) unless ok."""
    if not ok:
        raise InputError(message)


class TrainingDiverged(RuntimeError):
    """Training met a non-finite loss or gradient norm; its message is one line."""
