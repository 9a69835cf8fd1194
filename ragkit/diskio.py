"""Crash-safe files: fsynced writes, hash-verified reads, staging folders published by rename."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import IndexFormatError, RagkitError

# An index at `indexes/name` is a symlink to a version folder `indexes/.name.v-<stamp>`;
# replacing the symlink is one atomic rename, so readers see the old or the new version.
TMP_MARK = ".tmp-"
VERSION_MARK = ".v-"


def file_digest(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
            size += len(block)
    return {"sha256": h.hexdigest(), "bytes": size}


def write_file(path: Path, data: bytes) -> None:
    """Write and fsync; an OSError names the file."""
    try:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise RagkitError(f"{path}: cannot write ({exc.strerror or exc}); free disk space or choose another -o; the previous index is unchanged") from exc


def read_verified(path: Path, meta: dict[str, Any], hint: str) -> bytes:
    """The file's bytes, only if size and sha256 match the manifest."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexFormatError(f"index is corrupt: {path} is missing; {hint}") from None
    if size != meta.get("bytes"):
        raise IndexFormatError(f"index is corrupt: {path} has {size} bytes, manifest says {meta.get('bytes')}; {hint}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
        raise IndexFormatError(f"index is corrupt: {path} does not match its sha256 in the manifest; {hint}")
    return data


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target: Path) -> list[Path]:
    """Remove staging folders of dead processes and versions other than the current and previous."""
    parent, name = target.parent, target.name
    removed = []
    current = os.readlink(target) if target.is_symlink() else None
    versions = sorted(parent.glob(f".{name}{VERSION_MARK}*"), key=lambda p: p.name)
    keep = {current, versions[-1].name if versions else None}
    if current in [v.name for v in versions]:
        idx = [v.name for v in versions].index(current)
        keep.add(versions[idx - 1].name if idx > 0 else None)
    for path in parent.glob(f".{name}{TMP_MARK}*"):
        pid = path.name.rsplit("-", 2)[-2] if path.name.count("-") >= 2 else ""
        if not pid.isdigit() or not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    for path in versions:
        if path.name not in keep and current is not None:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def staging_directory(target: Path) -> Iterator[Path]:
    """A fresh hidden folder beside target; removed if the block fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    tmp = target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def publish_directory(tmp: Path, target: Path) -> None:
    """Make tmp the folder at target atomically (symlink swap)."""
    parent, name = target.parent, target.name
    if target.exists() and not target.is_symlink():
        if not (target / "manifest.json").exists() and any(target.iterdir()):
            raise RagkitError(f"{target}: exists and is not a ragkit index; choose another output folder with -o")
        legacy = parent / f".{name}{VERSION_MARK}{time.time_ns():020d}-legacy"
        os.rename(target, legacy)
    version = parent / f".{name}{VERSION_MARK}{time.time_ns():020d}"
    _fsync_dir(tmp)
    os.rename(tmp, version)
    link = parent / f".{name}{TMP_MARK}{os.getpid()}-{time.time_ns()}.link"
    os.symlink(version.name, link)
    os.replace(link, target)
    _fsync_dir(parent)
    clean_leftovers(target)
