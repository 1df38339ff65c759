"""Locks on files and folders (a run's output_dir, the features cache, a search's study),
held by whole processes: they never follow links, and name the holder when refused."""

import contextlib
import errno
import os
import socket
import stat
from typing import Optional

try:  # POSIX; Windows locks with msvcrt
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None
    import msvcrt

from .disk import _named
from .errors import InputError


LOCK_FILE = ".lock"
_locked: set[str] = set()  # the folders this process holds


def _open_lock(path: str, name: str) -> int:
    """The lock file's descriptor: never through a link, only a regular file."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    if os.path.islink(path):
        raise InputError(f"{name}: {path} is a symbolic link; a lock file must be a regular "
                         "file (remove the link)")
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"{name}: {path} is a symbolic link; a lock file must be a "
                             "regular file (remove the link)") from None
        if e.errno in (errno.EISDIR, errno.ENXIO):
            raise InputError(f"{name}: {path} is not a regular file; a lock file must be one "
                             "(remove it)") from None
        raise _named(e, path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{name}: {path} is not a regular file; a lock file must be one "
                         "(remove it)")
    return fd


def _try_lock(fd: int, blocking: bool, shared: bool = False) -> bool:
    """flock (shared or exclusive); Windows has exclusive locks only."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
                        | (0 if blocking else fcntl.LOCK_NB))
        else:  # pragma: no cover
            msvcrt.locking(fd, msvcrt.LK_LOCK if blocking else msvcrt.LK_NBLCK, 1)
    except (BlockingIOError, PermissionError):
        return False
    return True


@contextlib.contextmanager
def file_lock(path: str, name: Optional[str] = None):
    """Holds the lock file `path` for the block, waiting for another process holding it.
    The OS's lock, so it ends with its process; never through a link."""
    fd = _open_lock(path, name or path)
    try:
        _try_lock(fd, blocking=True)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_lock(folder: str, name: str, shared: bool = False):
    """Holds `folder` for the block, so that no other process runs into it meanwhile.

    Another process holding it is not waited for: InputError `<name>: in use by pid N on
    host H`. The lock is the OS's (flock on `folder/.lock`), so it ends with its process: a
    folder a killed run held is free at once. Re-entrant within a process. `shared`: any
    number of shared holders at once (the workers of one search), none while an exclusive
    holder (a plain run) has it, and the other way round. A `.lock` that is a link or not a
    regular file is refused, its target untouched.
    """
    key = os.path.realpath(folder)
    if key in _locked:
        yield
        return
    fd = _open_lock(os.path.join(folder, LOCK_FILE), name)
    if not _try_lock(fd, blocking=False, shared=shared):
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise InputError(f"{name}: in use by {holder or 'another process'}") from None
    os.ftruncate(fd, 0)
    what = " (a search worker)" if shared else ""
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}{what}\n".encode(), 0)
    _locked.add(key)
    try:
        yield
    finally:
        _locked.discard(key)
        os.close(fd)
