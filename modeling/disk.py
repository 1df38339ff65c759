"""The one way to the disk: every file a run writes goes through this module.

Writes go to a temp file (or folder) in
the same folder, fsync, then rename: a crash at any point leaves either the old file or the
new one, never a half-written file that a later run would read; any OSError names the final
path, and no temp entry is left behind (a process killed mid-write leaves only a dot-named
`.tmp` entry, which `remove_temp_files` clears). An integrity
record (the sha256 of each file, written last) lets a reader tell a damaged folder from a
whole one.
"""

import contextlib
import hashlib
import json
import math
import os
import shutil
import stat
import tempfile
from typing import Iterable, Optional

from .errors import InputError
from .sha256 import sha256_file


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


def _named(e: OSError, path: str) -> OSError:
    """The same error, naming `path` (the file the user knows, not a temp file)."""
    return OSError(e.errno, e.strerror or str(e), path)


def fsync_dir(path: str) -> None:
    """Makes a rename inside `path` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
    """A file (text "w" or binary "wb") that replaces `path` only if the block succeeds.

    An OSError names `path`, not the temp file.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path), suffix=".tmp")
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8",
                       newline=None if "b" in mode else "") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), FILE_MODE)  # mkstemp's 0600 is for secrets
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _named(e, path) from None
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Writes `path` whole or not at all."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: str) -> None:
    for root, _, names in os.walk(folder):
        for name in names:
            _fsync_file(os.path.join(root, name))
        fsync_dir(root)


@contextlib.contextmanager
def atomic_folder(path: str):
    """A temp folder beside `path` (`.<name>.tmp`), yielded for the block to fill; on
    success its files are fsynced and it replaces `path` whole, else it is removed. For
    writers that need a folder (checkpoints, a library's save_pretrained). An OSError
    names `path`."""
    parent, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(parent, f".{name}.tmp")
    old = os.path.join(parent, f".{name}.old.tmp")
    try:
        for stale in (tmp, old):
            _remove(stale)
        os.makedirs(tmp)
        yield tmp
        _fsync_tree(tmp)
        if os.path.lexists(path):
            os.rename(path, old)  # then one rename; a crash between leaves `.old.tmp`
        os.rename(tmp, path)
        _moved(tmp, path)
        fsync_dir(parent)
        _remove(old)
    except BaseException as e:
        _remove(tmp)
        if isinstance(e, OSError):
            raise _named(e, path) from None
        raise


@contextlib.contextmanager
def temp_folder(path: str):
    """A temp folder beside `path` (`.<name>.tmp`) for the block to fill, removed after it
    whatever happens: for writers that then move its files into a folder that holds
    others too (`move_into`), which `atomic_folder` would replace whole. An OSError
    making it names `path`; the block's own errors pass through."""
    parent, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(parent, f".{name}.tmp")
    try:
        _remove(tmp)
        os.makedirs(tmp)
    except OSError as e:
        raise _named(e, path) from None
    try:
        yield tmp
    finally:
        _remove(tmp)


def move_into(src_folder: str, names: Iterable[str], dst_folder: str) -> None:
    """Moves each file `names` of `src_folder` (a temp folder on the same disk) into
    `dst_folder` by rename (fsynced first), in order, replacing what is there: each file
    whole or the old one."""
    for name in names:
        target = os.path.join(dst_folder, name)
        try:
            _fsync_file(os.path.join(src_folder, name))
            os.replace(os.path.join(src_folder, name), target)
            _moved(os.path.join(src_folder, name), target)
        except OSError as e:
            raise _named(e, target) from None
    fsync_dir(dst_folder)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def remove_temp_files(folder: str, prefix: str = "") -> list[str]:
    """Deletes the `.<prefix>*.tmp` files and folders a killed writer left in `folder`."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    stale = [os.path.join(folder, n) for n in names
             if n.startswith("." + prefix) and n.endswith(".tmp")]
    for path in stale:
        _remove(path)
    return stale


# The files `write_file` wrote, at their current paths: path -> (sha256, size, inode,
# mtime). Bytes written again (a model saved to best_model/, then in the same step's
# checkpoint and as the final model) become a hard link to such a file, if it is still
# that file, unchanged; and an integrity record takes the digest without reading it back.
_written: dict[str, tuple[str, int, int, int]] = {}


def _unchanged(path: str) -> Optional[str]:
    """The sha256 `write_file` wrote `path` with, if it is still that file, unchanged."""
    known = _written.get(path)
    if known is None:
        return None
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    now = (st.st_size, st.st_ino, st.st_mtime_ns)
    ok = stat.S_ISREG(st.st_mode) and known[1:] == now
    return known[0] if ok else None


def write_file(path: str, data) -> None:
    """Writes `data` (bytes-like) as the new file `path` in a temp folder that its caller
    fsyncs and moves into place (`atomic_folder`, `move_into`): a hard link to a file
    written here before with the same bytes, where one is still there and the disk takes
    links; else the bytes."""
    path, data = os.path.abspath(path), memoryview(data).cast("B")
    digest = hashlib.sha256(data).hexdigest()
    same = [p for p in list(_written) if _written[p][0] == digest and _unchanged(p)]
    for earlier in same:
        try:
            os.link(earlier, path)
            break
        except OSError:
            continue
    else:
        with open(path, "wb") as f:
            f.write(data)
    st = os.stat(path)
    _written[path] = (digest, st.st_size, st.st_ino, st.st_mtime_ns)


def _moved(src: str, dst: str) -> None:
    """Follows `write_file`'s files through a rename of a file or folder (`dst` replaced)."""
    src, dst = os.path.abspath(src), os.path.abspath(dst)
    for path in [p for p in _written if p == dst or p.startswith(dst + os.sep)]:
        del _written[path]
    for path in [p for p in _written if p == src or p.startswith(src + os.sep)]:
        _written[dst + path[len(src):]] = _written.pop(path)


INTEGRITY = "integrity.json"  # {"sha256": {file name: hex digest}}, written last


class DamagedFile(InputError):
    """A file whose bytes differ from its folder's integrity record; names the file."""


def write_integrity(folder: str, names: Iterable[str], record: str = INTEGRITY) -> None:
    """Records the sha256 of `names` (files in `folder`) in `folder/record`, atomically.
    Call it after the files are in place: a folder killed before has the old record (or
    none) and fails `check_integrity`, which is what damaged means."""
    digests = {name: _unchanged(os.path.abspath(os.path.join(folder, name)))
               or sha256_file(os.path.join(folder, name)) for name in sorted(set(names))}
    atomic_write_text(os.path.join(folder, record),
                      json.dumps({"sha256": digests}, indent=2, sort_keys=True) + "\n")


def read_integrity(folder: str, record: str = INTEGRITY) -> Optional[dict]:
    """The record's {name: digest}, or None when there is none; DamagedFile when it is
    not a record."""
    path = os.path.join(folder, record)
    try:
        with open(path, encoding="utf-8") as f:
            digests = json.load(f)["sha256"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DamagedFile(f"{path}: integrity record is unreadable ({type(e).__name__})") \
            from None
    if not isinstance(digests, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and os.path.basename(k) == k
            for k, v in digests.items()):
        raise DamagedFile(f"{path}: integrity record is not a table of file digests")
    return digests


def check_integrity(folder: str, record: str = INTEGRITY, required: bool = True) -> bool:
    """Checks each file the record names against its sha256; DamagedFile names the first
    that differs or is missing. Without a record: DamagedFile if `required`, else False
    (a folder written by another tool); True when checked."""
    digests = read_integrity(folder, record)
    if digests is None:
        if required:
            raise DamagedFile(f"{os.path.join(folder, record)}: missing (the folder's "
                              "integrity record)")
        return False
    for name, digest in digests.items():
        path = os.path.join(folder, name)
        try:
            actual = sha256_file(path)
        except OSError as e:
            raise DamagedFile(f"{path}: {e.strerror or e} (named in {record})") from None
        if actual != digest:
            raise DamagedFile(f"{path}: damaged (its sha256 differs from {record}'s)")
    return True
