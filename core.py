"""What processors/ and modeling/ both use: the user-error type, the problem types, and
atomic file writes.

Atomic writes go to a temp file in the same folder, fsync, then rename: a crash at
any point leaves either the old file or the new one, never a half-written file that
a later run would read. A process killed mid-write leaves only a dot-named `.tmp`
entry, which `remove_temp_files` clears.
"""

import contextlib
import fcntl
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
from typing import Optional

# transformers' `problem_type` names; a processor's sets the loss, metrics and outputs.
SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
REGRESSION = "regression"
# The exported models in output_dir, by --export value and by --predict_backend value.
ONNX_FILES = {"onnx": "model.onnx", "onnx_int8": "model_int8.onnx",
              "onnxruntime": "model.onnx", "onnxruntime_int8": "model_int8.onnx"}


class InputError(ValueError):
    """A user error (bad flag, file or row); its message is one line."""


def check(ok: bool, message: str) -> None:
    """Raises InputError(message) unless ok."""
    if not ok:
        raise InputError(message)


class TrainingDiverged(RuntimeError):
    """Training met a non-finite loss or gradient norm; its message is one line."""


def cpp_compiler() -> Optional[str]:
    """The C++ compiler torch.compile's inductor builds its kernels with ($CXX or g++)."""
    return shutil.which(os.environ.get("CXX") or "g++")


def use_cache_dir() -> str:
    """Points torch.compile's inductor caches at ~/.cache/bert-classifier/inductor
    ($XDG_CACHE_HOME respected) unless TORCHINDUCTOR_CACHE_DIR is set: kept across
    reboots, unlike inductor's default in /tmp. run_classifier calls it first: importing
    torch._dynamo (building a transformers model does) sets the variable to that default."""
    if not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(base, "bert-classifier", "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]


def finite_json(value, sort_keys: bool = False) -> str:
    """Indented JSON in which a non-finite float is null: JSON has no NaN or Infinity."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return [clean(x) for x in v] if isinstance(v, (list, tuple)) else v
    return json.dumps(clean(value), indent=2, sort_keys=sort_keys, allow_nan=False) + "\n"


_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() gives a new file; outputs all get it


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """A file (text "w" or binary "wb") that replaces `path` only if the block succeeds.

    An OSError names `path`, not the temp file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            os.fchmod(f.fileno(), FILE_MODE)  # mkstemp's 0600 is for secrets
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror, path) from None
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `path` whole or not at all."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_temp_files(folder: str, prefix: str = "") -> list[str]:
    """Deletes the `.<prefix>*.tmp` files and folders a killed writer left in `folder`."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    stale = [os.path.join(folder, n) for n in names
             if n.startswith("." + prefix) and n.endswith(".tmp")]
    for path in stale:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    return stale


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


LOCK_FILE = ".lock"
_locked: set[str] = set()  # the folders this process holds


@contextlib.contextmanager
def folder_lock(folder: str, name: str):
    """Holds `folder` for the block, so that no other process runs into it meanwhile.

    Another process holding it is not waited for: InputError `<name>: in use by pid N on
    host H`. The lock is the OS's (flock on `folder/.lock`), so it ends with its process: a
    folder a killed run held is free at once. Re-entrant within a process.
    """
    key = os.path.realpath(folder)
    if key in _locked:
        yield
        return
    fd = os.open(os.path.join(folder, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        os.close(fd)
        raise InputError(f"{name}: in use by {holder or 'another process'}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
    _locked.add(key)
    try:
        yield
    finally:
        _locked.discard(key)
        os.close(fd)
