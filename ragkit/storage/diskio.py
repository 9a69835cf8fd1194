"""Crash-safe files: fsynced writes, verified reads, staging folders published by one atomic rename."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import IndexFormatError, RagkitError

log = logging.getLogger(__name__)

# An index at `indexes/name` is a symlink to a version folder `indexes/.name.v-<ns>`; replacing the
# symlink is one atomic rename, so a reader sees the old or the new version, never a mix.
TMP_MARK = ".tmp-"
VERSION_MARK = ".v-"
SUM_SUFFIX = ".sha256"
_SUM_LINE = re.compile(rb"([0-9a-f]{64})  ([^\n/]+)\n")


def file_digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"sha256": h.hexdigest(), "bytes": size}


_WRITE_FIX = {
    errno.ENOSPC: "free disk space and retry",
    errno.EDQUOT: "free space within your disk quota and retry",
    errno.EFBIG: "the file system cannot hold a file this large; write the index elsewhere with -o",
    errno.EACCES: "check the folder's permissions, or write the index elsewhere with -o",
    errno.EPERM: "check the folder's permissions, or write the index elsewhere with -o",
    errno.EROFS: "the file system is read-only; write the index elsewhere with -o",
}


def write_error(path: Path, exc: BaseException) -> RagkitError:
    reason = getattr(exc, "strerror", None) or str(exc)
    fix = _WRITE_FIX.get(getattr(exc, "errno", None) or 0, "retry, or write the index elsewhere with -o")
    return RagkitError(f"{path}: cannot write ({reason}); {fix}; the previous index is unchanged")


def write_file(path: Path, data: bytes) -> None:
    """Create path holding data, fsynced; an OSError becomes a RagkitError naming the file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from exc


def write_with_sum(path: Path, data: bytes) -> None:
    """Write path and `<path>.sha256` (sha256sum format), so the file can be checked before it is parsed."""
    write_file(path, data)
    write_file(sum_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode())


def sum_path(path: Path) -> Path:
    return path.with_name(path.name + SUM_SUFFIX)


def _read(path: Path, limit: int, hint: str) -> bytes:
    try:
        # O_NONBLOCK: opening a FIFO (or a device) planted in the index must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with open(fd, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise IndexFormatError(f"index is corrupt: {path} is not a regular file; {hint}")
            if info.st_size > limit:
                raise IndexFormatError(f"index is corrupt: {path} has {info.st_size} bytes, far more than expected; {hint}")
            return fh.read(limit + 1)
    except FileNotFoundError:
        raise IndexFormatError(f"index is corrupt: {path} is missing; {hint}") from None
    except OSError as exc:
        raise IndexFormatError(f"index is corrupt: cannot read {path} ({exc.strerror or exc}); {hint}") from exc


def read_with_sum(path: Path, limit: int, hint: str) -> bytes:
    """The file's bytes, only if they match the sha256sum line in `<path>.sha256`."""
    sums = sum_path(path)
    match = _SUM_LINE.fullmatch(_read(sums, 256, hint))
    if not match or match.group(2) != path.name.encode():
        raise IndexFormatError(f"index is corrupt: {sums} is not a sha256sum line for {path.name}; {hint}")
    data = _read(path, limit, hint)
    if hashlib.sha256(data).hexdigest().encode() != match.group(1):
        raise IndexFormatError(f"index is corrupt: {path} does not match its checksum in {sums.name}; {hint}")
    return data


def read_verified(path: Path, meta: dict[str, Any], hint: str) -> bytes:
    """The file's bytes, only if size and sha256 match the manifest entry."""
    size = meta["bytes"]
    data = _read(path, size, hint)
    if len(data) != size:
        raise IndexFormatError(f"index is corrupt: {path} has {len(data)} bytes, manifest says {size}; {hint}")
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise IndexFormatError(f"index is corrupt: {path} does not match its sha256 in the manifest; {hint}")
    return data


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------- versions and leftovers


def _pattern(target: Path, kind: str) -> re.Pattern[str]:
    name = re.escape(target.name)
    if kind == "version":
        return re.compile(rf"\.{name}{re.escape(VERSION_MARK)}\d{{20}}(-legacy)?")
    return re.compile(rf"\.{name}{re.escape(TMP_MARK)}\d+-\d+(\.link)?")


def _entries(target: Path, kind: str) -> list[Path]:
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return []
    pattern = _pattern(target, kind)
    return [target.parent / n for n in sorted(names) if pattern.fullmatch(n)]


def current_version(target: Path) -> Path | None:
    """The version folder the index symlink points at, or None when target is not such a symlink."""
    try:
        link = os.readlink(target)
    except OSError:
        return None
    return target.parent / link if _pattern(target, "version").fullmatch(link) else None


MAX_LINKS = 40  # as the kernel's own limit on symbolic links in one path


def _loop_error(path: Path) -> RagkitError:
    return RagkitError(f"{path}: a symbolic link loop (or over {MAX_LINKS} links in a row); point -i/-o at a real folder")


def canonical_target(path: Path) -> Path:
    """The index location behind the user's symlinks (ours, `name -> .name.v-N`, is kept): one location, one lock.

    `latest -> idx` and `idx` must lock and publish the same index, or two writers could run at once and one
    would build its new version inside the other's current one.
    """
    current = Path(os.path.abspath(path))
    for _ in range(MAX_LINKS):
        current = Path(os.path.realpath(current.parent)) / current.name
        if not current.is_symlink() or current_version(current) is not None:
            return current
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    raise _loop_error(path)


def resolve_index(target: Path) -> Path | None:
    """The folder holding the index files now, or None when there is no index at target."""
    if os.path.lexists(target):
        try:
            return target.resolve(strict=True)
        except FileNotFoundError:
            return target.resolve()  # a dangling link: the caller names what is missing
        except (RuntimeError, OSError) as exc:  # RuntimeError: Python < 3.13 on a symlink loop
            raise _loop_error(target) from exc
    versions = _entries(target, "version")
    if versions:  # a writer was killed while turning a plain folder into a link; its newest version is complete
        log.warning("%s: missing; reading %s (the next `ragkit index` restores the link)", target, versions[-1].name)
        return versions[-1]
    return None


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(OSError):
            path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def clean_leftovers(target: Path) -> list[Path]:
    """Remove staging folders and versions other than the current and the one before; caller holds the writer lock."""
    removed = _entries(target, "tmp")
    for path in removed:
        _remove(path)
    current = current_version(target)
    if current is None:
        return removed  # no link to our versions: keep them all (recover() relinks a lost one)
    versions = _entries(target, "version")
    older = [v for v in versions if v.name < current.name]
    keep = {current.name, *(v.name for v in older[-1:])}
    for path in versions:
        if path.name not in keep:
            _remove(path)
            removed.append(path)
    return removed


def recover(target: Path) -> None:
    """Relink a target lost to a crash between moving a plain folder aside and linking (caller holds the lock)."""
    versions = _entries(target, "version")
    if not os.path.lexists(target) and versions:
        _link(target, versions[-1])
        log.warning("%s: restored the link to %s after an interrupted write", target, versions[-1].name)


@contextlib.contextmanager
def staging_directory(target: Path) -> Iterator[Path]:
    """A fresh hidden folder beside target; removed if the block fails. Caller holds the writer lock."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        recover(target)
        clean_leftovers(target)
        tmp = target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{time.time_ns()}"
        tmp.mkdir()
    except OSError as exc:
        raise write_error(target.parent, exc) from exc
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _link(target: Path, version: Path) -> None:
    link = target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{time.time_ns()}.link"
    os.symlink(version.name, link)
    os.replace(link, target)  # atomic: readers see the old link or the new one


def _adopt(target: Path) -> None:
    """Turn a plain folder at target (an index copied in, or an empty folder) into the link layout."""
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
        return
    if not target.is_dir() or not (target / "manifest.json").exists():
        raise RagkitError(f"{target}: exists and is not a ragkit index; choose another output folder with -o")
    legacy = target.parent / f".{target.name}{VERSION_MARK}{time.time_ns():020d}-legacy"
    os.rename(target, legacy)
    _link(target, legacy)


def publish_directory(tmp: Path, target: Path) -> Path:
    """Make the complete folder tmp the index at target in one atomic step; returns the version folder."""
    try:
        if current_version(target) is None and os.path.lexists(target):
            _adopt(target)
        fsync_dir(tmp)
        version = target.parent / f".{target.name}{VERSION_MARK}{time.time_ns():020d}"
        os.rename(tmp, version)
        try:
            _link(target, version)
        except OSError:
            _remove(version)  # never published: a complete copy left on a full disk helps nobody
            raise
        fsync_dir(target.parent)
    except OSError as exc:
        raise RagkitError(f"{target}: cannot publish the new index ({exc.strerror or exc}); the previous index is unchanged") from exc
    clean_leftovers(target)
    return version


def writable_target(path: Path) -> Path:
    """Where to publish: path itself, or what is behind the symlinks the user made (not one of ours)."""
    return canonical_target(path)
