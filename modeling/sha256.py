"""sha256 of files: the digests behind every integrity record and cache key.

A run checks the digests of big files it has not written (the features it loads, the
model it starts from); `prefetch_sha256` takes them on a background thread while the main
thread imports torch, so that a cached run's start waits for neither. Only reads: every
write goes through `disk`.
"""

import hashlib
import os
import stat
import threading
from typing import Iterable, Optional


BLOCK = 1 << 20
# A background thread's block: it takes the GIL back twice a block (after the read, after
# the hash), each time from the main thread's Python (torch's import): fewer hand-offs.
PREFETCH_BLOCK = 8 << 20


def sha256_of(f, block: int = BLOCK) -> str:
    """sha256 of an open binary file's remaining bytes, a block at a time (constant memory)."""
    digest, buffer = hashlib.sha256(), bytearray(block)
    view = memoryview(buffer)
    while True:
        n = f.readinto(buffer)
        if not n:
            return digest.hexdigest()
        digest.update(view[:n])


def _identity(st: os.stat_result) -> tuple:
    """What changes when a file is replaced or written: device, inode, size, mtime, ctime."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


class _Prefetch:
    """One file's sha256, taken on a background thread: (digest, identity) once `done`;
    a digest of None when the file changed while it was read, or could not be read."""

    def __init__(self, path: str):
        self.path, self.done = path, threading.Event()
        self.digest, self.identity = None, None

    def run(self) -> None:
        try:  # (non-blocking: a FIFO in a file's place is skipped, never waited on)
            with open(self.path, "rb", opener=_nonblocking) as f:
                st = os.fstat(f.fileno())
                if stat.S_ISREG(st.st_mode):
                    digest = sha256_of(f, max(1, min(PREFETCH_BLOCK, st.st_size)))
                    if _identity(os.fstat(f.fileno())) == _identity(st):
                        self.digest, self.identity = digest, _identity(st)
        except OSError:
            pass
        finally:
            self.done.set()


_prefetched: dict[str, _Prefetch] = {}  # absolute path -> its digest, taken or underway


def prefetch_sha256(paths: Iterable[str]) -> None:
    """Starts hashing `paths` on one background thread, so that the digests a run checks
    later (features, the model's files) are taken while the main thread does other work,
    torch's import above all (hashlib releases the GIL). The next `sha256_file` of each path
    takes its digest, if the file is still the one that was read, unchanged (`_identity`);
    else it reads the file again. A daemon thread: an exit does not wait for it."""
    jobs = [_Prefetch(path) for path in dict.fromkeys(os.path.abspath(p) for p in paths)
            if path not in _prefetched]
    for job in jobs:
        _prefetched[job.path] = job
    if jobs:
        threading.Thread(target=lambda: [job.run() for job in jobs], name="prefetch_sha256",
                         daemon=True).start()


def _prefetched_sha256(path: str) -> Optional[str]:
    """A prefetched digest of `path` (used once), if the file is still the one hashed."""
    job = _prefetched.pop(os.path.abspath(path), None)
    if job is None:
        return None
    job.done.wait()
    try:
        same = job.identity == _identity(os.stat(path))
    except OSError:
        return None
    return job.digest if same else None


def sha256_file(path: str) -> str:
    """sha256 of a file's bytes: read now, or taken by `prefetch_sha256` from the same,
    unchanged file."""
    digest = _prefetched_sha256(path)
    if digest is not None:
        return digest
    with open(path, "rb") as f:
        return sha256_of(f)
