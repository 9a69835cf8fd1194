"""Where an index lives: a folder, or a PostgreSQL database named by a `postgresql://` URL (`?index=NAME` picks one of
several indexes in one database). Parsing needs no database client; credentials are never shown."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

from ..errors import UsageError

SCHEMES = ("postgresql://", "postgres://")
DEFAULT_NAME = "default"
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")
SEARCH_MODES = ("hnsw", "exact")


@dataclass(frozen=True, slots=True)
class PgLocation:
    """An index in a PostgreSQL database: the libpq URL (without ragkit's own parameters), the index name, and how
    dense search runs (`hnsw`, approximate and fast; or `exact`, a scan that ranks exactly like a local index)."""

    conninfo: str
    name: str = DEFAULT_NAME
    search: str = "hnsw"

    @property
    def schema(self) -> str:
        return f"ragkit_{self.name}"

    def __str__(self) -> str:
        return masked(self.conninfo) + ("" if self.name == DEFAULT_NAME else f"{'&' if '?' in self.conninfo else '?'}index={self.name}")


Location = Path | PgLocation


def is_url(location: object) -> bool:
    return isinstance(location, PgLocation) or (isinstance(location, str) and location.startswith(SCHEMES))


def parse_location(location: str | Path | PgLocation) -> Location:
    """A folder path, or the PostgreSQL location a URL names (checked here, before any connection)."""
    if isinstance(location, PgLocation | Path):
        return location
    if not is_url(location):
        return Path(location)
    parts = urlsplit(location)
    params, name, search = [], DEFAULT_NAME, "hnsw"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "index":
            name = value
        elif key == "search":
            search = value
        else:
            params.append((key, value))
    if not NAME.fullmatch(name):
        raise UsageError(f"{masked(location)}: index={name!r} is not a valid index name; use lower-case letters, digits and _ (at most 40, starting with a letter)")
    if search not in SEARCH_MODES:
        raise UsageError(f"{masked(location)}: search={search!r}: choose one of {', '.join(SEARCH_MODES)}")
    return PgLocation(_join(parts.scheme, parts.netloc, parts.path, urlencode(params, safe="/:")), name, search)


def masked(url: str) -> str:
    """The URL with any password replaced by ***, in the user part and in a `password=` parameter."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/:*")
    return _join(parts.scheme, netloc, parts.path, query)


def _join(scheme: str, netloc: str, path: str, query: str) -> str:
    """A URL from its parts, keeping `//` when the host is empty (`postgresql:///db`: libpq's default host)."""
    return f"{scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def shown(location: str | Path | PgLocation) -> str:
    """A location as messages print it (passwords masked)."""
    if isinstance(location, PgLocation):
        return str(location)
    return masked(str(location)) if is_url(location) else str(location)
