"""The served index: loaded once, reloaded when `ragkit index` publishes a new version."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..storage.diskio import resolve_index
from ..storage.location import Location, PgLocation, parse_location

if TYPE_CHECKING:
    from ..index.core import Index


@dataclass(frozen=True, slots=True)
class Limits:
    """What one request may ask for; over a limit is a 400 or 413, never a slow server."""

    max_query_chars: int = 1000
    max_k: int = 50
    max_body_bytes: int = 64 * 1024
    max_llm_calls: int = 2  # concurrent LLM answers
    max_context: int = 10


class Served:
    """The index at a path, reloaded when its published version changes (in-flight requests keep the old one)."""

    def __init__(self, path: str | Path, link_template: str | None = None, answerer: str = "extractive") -> None:
        from ..index.core import Index

        self.path: Location = parse_location(path)
        self._watch = _version_watch(self.path)
        self.link_template = link_template
        self.answerer = answerer
        self._lock = threading.Lock()
        self._version = self._watch()
        self._index: Index = Index.load(self.path)

    @property
    def index(self) -> Index:
        """The current index; a new version published since the last request is loaded first."""

        version = self._watch()
        if version != self._version or not self._index.store.alive():  # a lost database connection: open it again
            with self._lock:
                if version != self._version or not self._index.store.alive():
                    self._index, self._version = _reload(self.path, self._index), version
        return self._index


def _version_watch(location: Location) -> Callable[[], object]:
    """What names the published version: the folder a folder index's link points to, or PostgreSQL's version row."""
    if isinstance(location, PgLocation):
        from ..storage.postgres import VersionWatch

        return VersionWatch(location)
    return lambda: resolve_index(location)


def _reload(path: Location, old: Index) -> Index:
    """The new version, keeping the loaded query embedder when the index still uses the same one."""
    from ..errors import EmbedderMismatchError
    from ..index.core import Index

    embedder = old._embedder  # noqa: SLF001 - reusing the warm model is the point of a server
    try:
        return Index.load(path, embedder=embedder) if embedder is not None else Index.load(path)
    except EmbedderMismatchError:
        return Index.load(path)
