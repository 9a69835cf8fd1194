"""One writer per index: an flock'ed file beside the index, released by the kernel when its holder dies, and
removed by its holder on release, so no housekeeping file outlives a run that ended (a killed one leaves it)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import IndexLockedError, RagkitError
from .diskio import canonical_target

POLL_SECONDS = 0.1
# Registry of locks this process holds, so Index.save() inside a locked CLI build does not lock itself out.
_HELD: dict[tuple[str, int, int], int] = {}


def lock_path(target: Path) -> Path:
    """`indexes/.name.lock` for the index at `indexes/name`."""
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def index_lock(target: str | Path, wait: float = 0.0) -> Iterator[Path]:
    """Hold the writer lock of the index at target; fail fast (or after `wait` seconds) if another process holds it.

    flock rather than an O_EXCL file: the kernel drops it when the holder exits or is killed, so a
    crashed run never blocks the next one and no PID-liveness guess is needed. The file holds the
    holder's PID only for the error message. The holder unlinks it as its last act; a waiter that then
    gets the flock checks that the path still names the file it locked, and otherwise locks the new
    file, so two writers never run at once.
    """
    path = lock_path(canonical_target(Path(target)))
    key = (str(path), os.getpid(), threading.get_ident())  # a forked child does not hold its parent's lock
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield path
        finally:
            _HELD[key] -= 1
        return
    deadline = time.monotonic() + wait
    while True:
        fd = _open(path)
        try:
            _acquire(fd, path, max(0.0, deadline - time.monotonic()))
        except BaseException:
            os.close(fd)
            raise
        if _still_at(fd, path):
            break
        os.close(fd)  # its holder removed it on release: lock the file now at the path
    try:
        _write_pid(fd, path)
        _HELD[key] = 1
        try:
            yield path
        finally:
            del _HELD[key]
            with contextlib.suppress(OSError):
                os.unlink(path)
    finally:
        os.close(fd)  # releases the flock


def _still_at(fd: int, path: Path) -> bool:
    try:
        here, mine = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        raise RagkitError(f"{path}: cannot create the index lock file ({exc.strerror or exc}); check the folder's permissions") from exc


def _acquire(fd: int, path: Path, wait: float) -> None:
    import fcntl

    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise IndexLockedError(_locked_message(path)) from None
            time.sleep(POLL_SECONDS)


def _locked_message(path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        pid = ""
    holder = f"PID {pid}" if pid.isdigit() else "another process (PID not yet written)"
    index = path.parent / path.name[1 : -len(".lock")]
    return f"index is locked by {holder}: another `ragkit index` is writing {index}; wait for it to finish and retry"


def _write_pid(fd: int, path: Path) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as exc:
        raise RagkitError(f"{path}: cannot write ({exc.strerror or exc}); free disk space and retry") from exc
