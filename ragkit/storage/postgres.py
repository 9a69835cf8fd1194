"""The PostgreSQL store: an index's segments as rows of one schema per index (`ragkit_NAME`), vectors in pgvector.

The layout mirrors the local format so both stores share one reader (LocalStore's logic over segment objects) and
one writer (a version is written to a local staging folder exactly as for a folder index, then its new segments are
copied in with COPY). A publish is one transaction: new segments in, unreferenced segments and rows no live source
owns out, the manifest row replaced. A reader reads everything inside one REPEATABLE READ snapshot, so it sees one
version whole, whatever a writer commits meanwhile. One writer per index: a session advisory lock, which the server
drops when the writer's connection ends (also when it is killed).

psycopg and pgvector are imported only here, and this module only for `postgresql://` locations.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datatypes import Chunk, Document
from ..errors import IndexFormatError, IndexLockedError, MissingDependencyError, MissingIndexError, RagkitError
from .local import LocalStore
from .location import PgLocation
from .manifest import corrupt, parse_manifest
from .segment import DB_SUFFIX, VEC_SUFFIX, parse_chunks, parse_document, record_json, text_key

if TYPE_CHECKING:
    import numpy as np
    import psycopg

# Segment tables, each keyed by (segment, ...); `chunks` also holds the vectors.
TABLES = ("meta", "sources", "chunks", "postings", "lengths", "speakers")
HNSW_EF_MAX = 1000  # pgvector's upper bound for hnsw.ef_search
TIE_ROWS = 8  # rows fetched past k, so that ties at the k-th score are broken by id as in a folder index
BUILD_MEMORY = "1GB"  # maintenance_work_mem for the HNSW build: a graph that does not fit is built far slower


def _schema_sql(schema: str, dim: int) -> str:
    return f"""
CREATE SCHEMA {schema};
CREATE TABLE {schema}.manifest (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL, body text NOT NULL);
CREATE TABLE {schema}.meta (segment text, key text, value bigint NOT NULL, PRIMARY KEY (segment, key));
CREATE TABLE {schema}.sources (segment text, row int, source text NOT NULL, entry text NOT NULL, record text NOT NULL, PRIMARY KEY (segment, row));
CREATE TABLE {schema}.chunks (segment text, row int, record text NOT NULL, text_key bigint NOT NULL, embedding vector({dim}) NOT NULL, PRIMARY KEY (segment, row));
CREATE INDEX ON {schema}.chunks (text_key);
CREATE TABLE {schema}.postings (segment text, part int, term text, rows bytea NOT NULL, tfs bytea NOT NULL, PRIMARY KEY (segment, part, term));
CREATE TABLE {schema}.lengths (segment text, part int, data bytea NOT NULL, PRIMARY KEY (segment, part));
CREATE TABLE {schema}.speakers (segment text, label text, listed bytea NOT NULL, rows bytea NOT NULL, shares bytea NOT NULL, sources bytea NOT NULL, PRIMARY KEY (segment, label));
"""


def _quoted(location: PgLocation) -> str:
    return f'"{location.schema}"'  # the name is checked ([a-z][a-z0-9_]*) when the URL is parsed


# ------------------------------------------------------------------ connections


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise MissingDependencyError("psycopg", "postgres") from None
    return psycopg


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def connect(location: PgLocation, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection; credentials come from the URL, PG* variables or ~/.pgpass (libpq's rules)."""
    psycopg = _psycopg()
    try:
        return psycopg.connect(location.conninfo, autocommit=autocommit, connect_timeout=10, application_name="ragkit")
    except psycopg.Error as exc:
        raise RagkitError(
            f"{location}: cannot connect ({_first_line(exc)}); check the URL, that the server is running, and the credentials "
            "(in the URL, PG* variables or ~/.pgpass)"
        ) from None


def _register_vector(conn: psycopg.Connection, location: PgLocation) -> None:
    try:
        from pgvector.psycopg import register_vector
    except ImportError:
        raise MissingDependencyError("pgvector", "postgres") from None
    try:
        register_vector(conn)
    except _psycopg().ProgrammingError:
        raise RagkitError(f"{location}: the pgvector extension is not installed in this database; {EXTENSION_FIX}") from None


EXTENSION_FIX = (
    "install pgvector on the server (https://github.com/pgvector/pgvector#installation, or enable it in your managed "
    "service's console) and run CREATE EXTENSION vector as a user allowed to"
)


def database_error(location: PgLocation, exc: BaseException, doing: str) -> RagkitError:
    return RagkitError(f"{location}: {doing} failed ({_first_line(exc)})")


# ------------------------------------------------------------------ reading


class PgSegment:
    """One segment's rows, read on demand (the same reads as segment.Segment, from the store's snapshot)."""

    def __init__(self, store: PostgresStore, name: str, rows: int, dim: int) -> None:
        self.store, self.name, self.rows, self.dim = store, name, rows, dim

    @property
    def db_path(self) -> str:
        return f"{self.store.location} segment {self.name}"

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.store.query(sql.replace("{s}", self.store.schema), (self.name, *args))

    def chunk(self, row: int) -> Chunk:
        return self.chunks(row, row + 1)[0]

    def chunks(self, start: int, stop: int) -> list[Chunk]:
        start, stop = int(start), int(stop)
        found = self.query("SELECT row, record FROM {s}.chunks WHERE segment = %s AND row >= %s AND row < %s ORDER BY row", (start, stop))
        return parse_chunks(found, start, stop, self.db_path)

    def document(self, row: int) -> Document:
        return parse_document(self.query("SELECT record FROM {s}.sources WHERE segment = %s AND row = %s", (row,)), row, self.db_path)

    def entries(self) -> dict[int, dict[str, Any]]:
        return {row: record_json(text, self.db_path) for row, text in self.query("SELECT row, entry FROM {s}.sources WHERE segment = %s")}

    def rows_with_text(self, text: str) -> list[int]:
        return [r for (r,) in self.query("SELECT row FROM {s}.chunks WHERE segment = %s AND text_key = %s", (text_key(text),))]

    def postings(self, part: int, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        import numpy as np

        fetched = self.store.fetched.get((part, term))
        if fetched is not None:
            return fetched.get(self.name)
        found = self.query("SELECT rows, tfs FROM {s}.postings WHERE segment = %s AND part = %s AND term = %s", (part, term))
        if not found:
            return None
        rows, tfs = (np.frombuffer(bytes(b), dtype="<i4") for b in found[0])
        if len(rows) != len(tfs):
            raise corrupt(f"{self.db_path} has postings of {term!r} of two lengths")
        return rows, tfs

    def posting_counts(self, part: int, terms: Sequence[str]) -> list[tuple[str, int]]:
        return self.query("SELECT term, length(rows) / 4 FROM {s}.postings WHERE segment = %s AND part = %s AND term = ANY(%s)", (part, list(terms)))  # type: ignore[return-value]

    def all_postings(self, part: int) -> list[tuple[str, bytes, bytes]]:
        return [(t, bytes(r), bytes(f)) for t, r, f in self.query("SELECT term, rows, tfs FROM {s}.postings WHERE segment = %s AND part = %s", (part,))]

    def lengths(self, part: int) -> np.ndarray:
        import numpy as np

        found = self.query("SELECT data FROM {s}.lengths WHERE segment = %s AND part = %s", (part,))
        if not found:
            raise corrupt(f"{self.db_path} has no term counts")
        return np.frombuffer(bytes(found[0][0]), dtype="<i4")

    def speakers(self) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        import numpy as np

        out = []
        for label, listed, rows, shares, sources in self.query("SELECT label, listed, rows, shares, sources FROM {s}.speakers WHERE segment = %s"):
            arrays = [np.frombuffer(bytes(b), kind) for b, kind in ((listed, "<i4"), (rows, "<i4"), (shares, "<f4"), (sources, "<i4"))]
            if len(arrays[1]) != len(arrays[2]):
                raise corrupt(f"{self.db_path} has a malformed speaker entry")
            out.append((label, *arrays))
        return out

    def speaker_sources(self) -> list[tuple[str, np.ndarray]]:
        import numpy as np

        return [(label, np.frombuffer(bytes(s), "<i4")) for label, s in self.query("SELECT label, sources FROM {s}.speakers WHERE segment = %s")]

    def meta(self) -> dict[str, Any]:
        return dict(self.query("SELECT key, value FROM {s}.meta WHERE segment = %s"))  # type: ignore[arg-type]

    def close(self) -> None:
        pass


class PostgresStore(LocalStore):
    """An index version in PostgreSQL, read inside one snapshot; dense search by pgvector (HNSW, or exact)."""

    kind = "postgres"

    def __init__(self, location: PgLocation, conn: psycopg.Connection, manifest: dict[str, Any], version: int) -> None:
        self.location, self.conn, self.version = location, conn, version
        self.schema = _quoted(location)
        self.lock = threading.RLock()  # a server's threads share the connection: a search's SET and SELECT go together
        self.fetched: dict[tuple[int, str], dict[str, tuple[np.ndarray, np.ndarray]]] = {}  # the last question's postings
        segments = {name: PgSegment(self, name, int(meta["rows"]), int(manifest["embedder"]["dim"])) for name, meta in manifest["segments"].items()}
        super().__init__(Path(str(location)), manifest, segments)  # type: ignore[arg-type]

    @property
    def where(self) -> str:
        return f"{self.location} manifest"

    def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        psycopg = _psycopg()
        try:
            return self.conn.execute(sql, args).fetchall()  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise database_error(self.location, exc, "reading the index") from None

    def check(self) -> None:
        """Every segment's counts (one query) agree with the manifest, and every source points at rows it has."""
        held: dict[str, dict[str, int]] = {}
        for segment, key, value in self.query(f"SELECT segment, key, value FROM {self.schema}.meta"):
            held.setdefault(segment, {})[key] = value
        for name, listed in self.manifest["segments"].items():
            expected = {"rows": listed["rows"], "sources": listed["sources"], "lex_rows": listed["lex_rows"], "dim": self.dim}
            if held.get(name) != expected:
                raise corrupt(f"{self.location} segment {name} holds {held.get(name)}, the manifest expects {expected}")
        self.check_sources()

    def open(self) -> None:
        pass

    def alive(self) -> bool:
        return not (self.conn.closed or self.conn.broken)

    def prefetch_postings(self, part: int, terms: set[str]) -> None:
        """One query for a question's terms in every segment, instead of one per term and segment."""
        import numpy as np

        fetched: dict[tuple[int, str], dict[str, tuple[np.ndarray, np.ndarray]]] = {(part, term): {} for term in terms}
        for segment, term, rows, tfs in self.query(f"SELECT segment, term, rows, tfs FROM {self.schema}.postings WHERE part = %s AND term = ANY(%s)", (part, sorted(terms))):
            pair = (np.frombuffer(bytes(rows), dtype="<i4"), np.frombuffer(bytes(tfs), dtype="<i4"))
            if len(pair[0]) != len(pair[1]):
                raise corrupt(f"{self.location} segment {segment} has postings of {term!r} of two lengths")
            fetched[(part, term)][segment] = pair
        self.fetched = fetched  # whole, in one step: another thread's question may be reading the previous one

    # ------------------------------------------------------------ vectors

    def search(self, query: np.ndarray, k: int, ids: Sequence[int] | None = None) -> list[tuple[int, float]]:
        """Top-k (id, inner product) by pgvector, best first (ties by id): HNSW unless the location asks for exact
        search; a search restricted to `ids` scans just those rows (exact)."""
        import numpy as np

        vector = np.asarray(query, dtype=np.float32).reshape(-1)
        k = min(int(k), len(self) if ids is None else len(ids))
        if k <= 0:
            return []
        s = self.schema
        args: tuple[Any, ...]
        if ids is None:
            exact = self.location.search == "exact"
            # ef_search covers the LIMIT (k and a few rows to break ties by id): a smaller one makes pgvector's
            # iterative scan go on for the missing rows (measured: 112 ms against 34 ms for an exact scan at 16,726 chunks).
            settings = ["SET LOCAL enable_indexscan = off"] if exact else [
                f"SET LOCAL hnsw.ef_search = {min(HNSW_EF_MAX, max(40, k + TIE_ROWS))}", "SET LOCAL hnsw.iterative_scan = relaxed_order"]
            sql, args = f"SELECT segment, row, embedding <#> %s FROM {s}.chunks ORDER BY 3 LIMIT %s", (vector, k + TIE_ROWS)
        else:
            settings = ["SET LOCAL enable_indexscan = off"]
            segments, rows = self._rows(ids)
            sql = (f"SELECT c.segment, c.row, c.embedding <#> %s FROM {s}.chunks c JOIN unnest(%s::text[], %s::int[]) AS u(segment, row) "
                   "ON c.segment = u.segment AND c.row = u.row ORDER BY 3 LIMIT %s")
            args = (vector, segments, rows, k + TIE_ROWS)
        with self.lock:
            for statement in settings:
                self._set(statement)
            try:
                found = self.query(sql, args)
            finally:
                if settings[0].startswith("SET LOCAL enable_indexscan"):
                    self._set("SET LOCAL enable_indexscan = on")  # the snapshot's other reads use the primary keys
        logical = self.logical()
        scored = [(int(logical[seg][row]), float(np.float32(-d))) for seg, row, d in found if logical[seg][row] >= 0]
        scored.sort(key=lambda p: (-p[1], p[0]))
        return scored[:k]

    def _set(self, statement: str) -> None:
        psycopg = _psycopg()
        try:
            self.conn.execute(statement)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise database_error(self.location, exc, "setting up the search") from None

    def _rows(self, ids: Sequence[int]) -> tuple[list[str], list[int]]:
        """(segment, row) of logical chunk ids."""
        segments, rows = [], []
        for i in ids:
            n, k = self.locate(int(i))
            e = self.entries[n]
            segments.append(e["segment"])
            rows.append(e["first_chunk"] + k)
        return segments, rows

    def vectors(self) -> np.ndarray:
        return self.vector_rows(range(len(self)))

    def vector_rows(self, ids: Sequence[int]) -> np.ndarray:
        import numpy as np

        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if not len(ids):
            return out
        segments, rows = self._rows(ids)
        where = {(s, r): j for j, (s, r) in enumerate(zip(segments, rows))}
        psycopg = _psycopg()
        try:
            with self.conn.cursor(binary=True) as cur:
                cur.execute(f"SELECT c.segment, c.row, c.embedding FROM {self.schema}.chunks c JOIN unnest(%s::text[], %s::int[]) AS u(segment, row) "
                            "ON c.segment = u.segment AND c.row = u.row", (segments, rows))
                found = cur.fetchall()
        except psycopg.Error as exc:
            raise database_error(self.location, exc, "reading vectors") from None
        for seg, row, vec in found:
            out[where[(seg, row)]] = vec.to_numpy()
        if len(found) != len(where):
            raise corrupt(f"{self.location} lacks the vectors of {len(where) - len(found)} chunks")
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def open_postgres(location: PgLocation) -> PostgresStore:
    """The index's current version, in a read-only snapshot held until the store is closed."""
    psycopg = _psycopg()
    conn = connect(location)
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        # A server's index stays open, idle in its snapshot between requests: the server must not end the session.
        conn.execute("SET idle_in_transaction_session_timeout = 0")
        try:
            row = conn.execute(f"SELECT version, body FROM {_quoted(location)}.manifest WHERE id = 1").fetchone()  # type: ignore[arg-type]
        except psycopg.errors.UndefinedTable:
            row = None
        except psycopg.Error as exc:
            raise database_error(location, exc, "reading the manifest") from None
        if row is None:
            raise MissingIndexError(f"{location}: no index here; build one with `ragkit index PATH -o {location}`")
        manifest = parse_manifest(row[1].encode("utf-8", "surrogatepass"), f"{location} manifest")
        _register_vector(conn, location)
        store = PostgresStore(location, conn, manifest, int(row[0]))
        store.check()
        return store
    except BaseException:
        conn.close()
        raise


class VersionWatch:
    """The published version number (None: no index), read outside any snapshot on a connection of its own: the
    server asks before each request whether to reload."""

    def __init__(self, location: PgLocation) -> None:
        self.location = location
        self.conn: psycopg.Connection | None = None
        self.lock = threading.Lock()

    def __call__(self) -> int | None:
        psycopg = _psycopg()
        with self.lock:
            for attempt in (1, 2):  # a dropped connection (server restart) is opened again once
                if self.conn is None or self.conn.closed:
                    self.conn = connect(self.location, autocommit=True)
                try:
                    row = self.conn.execute(f"SELECT version FROM {_quoted(self.location)}.manifest WHERE id = 1").fetchone()  # type: ignore[arg-type]
                    return None if row is None else int(row[0])
                except psycopg.errors.UndefinedTable:
                    return None
                except psycopg.OperationalError:
                    self.conn.close()
                    if attempt == 2:
                        raise
        return None


# ------------------------------------------------------------------ writing


@contextlib.contextmanager
def writer_lock(location: PgLocation) -> Iterator[psycopg.Connection]:
    """The index's writer lock (a session advisory lock on a connection of its own), failing fast if held."""
    conn = connect(location, autocommit=True)
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"ragkit:{location.schema}",)).fetchone()
        if not got or not got[0]:
            raise IndexLockedError(f"{location}: another `ragkit index` is writing this index; wait for it to finish, then run this again")
        yield conn
    finally:
        conn.close()  # ends the session, which releases the lock


def publish(conn: psycopg.Connection, location: PgLocation, folder: Path, manifest: dict[str, Any], timings: dict[str, float] | None = None) -> int:
    """Make the version in `folder` (its manifest; the segment files the database lacks) the index's current one,
    in one transaction; returns its version number. `conn` holds the writer lock. `timings` (if given) gets the
    seconds spent copying rows in, building the HNSW index and committing."""
    import time

    psycopg = _psycopg()
    clock = time.perf_counter()
    timings = {} if timings is None else timings
    dim, s = int(manifest["embedder"]["dim"]), _quoted(location)
    try:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '60s'")
            conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")  # type: ignore[arg-type]
            _ensure_extension(conn, location)
            held = _schema_dim(conn, location)
            if held is not None and held != dim:  # another embedder: the vector column changes type
                # Dropping waits for every open snapshot that read these tables. Indexes this process no longer
                # reaches may still hold one until the cycle collector runs (a store and its segments refer to each
                # other): collect them now rather than wait for the lock timeout.
                gc.collect()
                conn.execute(f"DROP SCHEMA {s} CASCADE")  # type: ignore[arg-type]
                held = None
            if held is None:
                conn.execute(_schema_sql(s, dim))  # type: ignore[arg-type]
            _register_vector(conn, location)
            present = {name for (name,) in conn.execute(f"SELECT DISTINCT segment FROM {s}.meta")}  # type: ignore[arg-type]
            wanted = set(manifest["segments"])
            # This run's segments are the ones written to the folder; a full rebuild reuses names, so replace those.
            written = sorted(name for name in wanted if (folder / (name + DB_SUFFIX)).is_file())
            if wanted - set(written) - present:
                raise corrupt(f"{location}: the new version keeps segments {sorted(wanted - set(written) - present)} the database does not hold")
            for name in written:
                if name in present:
                    for table in TABLES:
                        conn.execute(f"DELETE FROM {s}.{table} WHERE segment = %s", (name,))  # type: ignore[arg-type]
                _upload(conn, s, folder, name)
            gone = sorted(present - wanted)
            if gone:
                for table in TABLES:
                    conn.execute(f"DELETE FROM {s}.{table} WHERE segment = ANY(%s)", (gone,))  # type: ignore[arg-type]
            _drop_dead_rows(conn, s, manifest)
            timings["copy_s"] = time.perf_counter() - clock
            row = conn.execute(f"SELECT version FROM {s}.manifest WHERE id = 1 FOR UPDATE").fetchone()  # type: ignore[arg-type]
            version = (row[0] if row else 0) + 1
            body = json.dumps(manifest, ensure_ascii=False)
            conn.execute(f"INSERT INTO {s}.manifest VALUES (1, %s, %s) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, body = EXCLUDED.body",  # type: ignore[arg-type]
                         (version, body))
            # Built after the first load (far faster than growing it row by row); later versions insert into it.
            conn.execute(f"CREATE INDEX IF NOT EXISTS chunks_hnsw ON {s}.chunks USING hnsw (embedding vector_ip_ops)")  # type: ignore[arg-type]
            timings["hnsw_s"] = time.perf_counter() - clock - timings["copy_s"]
        timings["commit_s"] = time.perf_counter() - clock - timings["copy_s"] - timings["hnsw_s"]
    except psycopg.errors.LockNotAvailable:
        raise IndexLockedError(f"{location}: readers held the index for over 60 s while it had to be replaced; retry, or stop `ragkit serve` meanwhile") from None
    except psycopg.Error as exc:
        raise database_error(location, exc, "publishing the index") from None
    return version


def _ensure_extension(conn: psycopg.Connection, location: PgLocation) -> None:
    psycopg = _psycopg()
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.FeatureNotSupported:
        raise RagkitError(f"{location}: the pgvector extension is not available on this server; {EXTENSION_FIX}") from None
    except psycopg.Error as exc:
        raise RagkitError(f"{location}: cannot create the pgvector extension ({_first_line(exc)}); {EXTENSION_FIX}") from None


def _schema_dim(conn: psycopg.Connection, location: PgLocation) -> int | None:
    """The vector dimension of the index's tables, or None when the index has none yet."""
    row = conn.execute(
        "SELECT a.atttypmod FROM pg_attribute a JOIN pg_class c ON a.attrelid = c.oid JOIN pg_namespace n ON c.relnamespace = n.oid "
        "WHERE n.nspname = %s AND c.relname = 'chunks' AND a.attname = 'embedding'", (location.schema,),
    ).fetchone()
    if row is None:
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (location.schema,)).fetchone()
        if exists:
            raise IndexFormatError(f"{location}: schema {location.schema} exists but holds no ragkit index; drop it or choose another ?index= name")
        return None
    return int(row[0])


def _upload(conn: psycopg.Connection, s: str, folder: Path, name: str) -> None:
    """COPY one segment written in folder (its SQLite file and raw vectors) into the index's tables."""
    import numpy as np

    db = sqlite3.connect(f"file:{folder / (name + DB_SUFFIX)}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta"))
        vectors = np.fromfile(folder / (name + VEC_SUFFIX), dtype="<f4").reshape(int(meta["rows"]), int(meta["dim"]))
        cur = conn.cursor()
        copies: list[tuple[str, list[str], str]] = [
            ("meta (segment, key, value)", ["text", "text", "int8"], "SELECT key, value FROM meta"),
            ("sources (segment, row, source, entry, record)", ["text", "int4", "text", "text", "text"], "SELECT row, source, entry, record FROM sources ORDER BY row"),
            ("postings (segment, part, term, rows, tfs)", ["text", "int4", "text", "bytea", "bytea"], "SELECT part, term, rows, tfs FROM postings"),
            ("lengths (segment, part, data)", ["text", "int4", "bytea"], "SELECT part, data FROM lengths"),
            ("speakers (segment, label, listed, rows, shares, sources)", ["text", "text", "bytea", "bytea", "bytea", "bytea"],
             "SELECT label, listed, rows, shares, sources FROM speakers"),
        ]
        for target, types, select in copies:
            with cur.copy(f"COPY {s}.{target} FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[arg-type]
                copy.set_types(types)
                for row in db.execute(select):
                    copy.write_row((name, *row))
        with cur.copy(f"COPY {s}.chunks (segment, row, record, text_key, embedding) FROM STDIN (FORMAT BINARY)") as copy:  # type: ignore[arg-type]
            copy.set_types(["text", "int4", "text", "int8", "vector"])
            for row, record, key in db.execute("SELECT row, record, text_key FROM chunks ORDER BY row"):
                copy.write_row((name, row, record, key, vectors[row]))
    finally:
        db.close()


def _drop_dead_rows(conn: psycopg.Connection, s: str, manifest: dict[str, Any]) -> None:
    """Delete chunk rows no live source owns (a source replaced by an update), so dense search returns live rows only;
    their postings stay and are skipped by the logical mapping, as in a local index."""
    import numpy as np

    live = {name: np.zeros(int(meta["rows"]), dtype=bool) for name, meta in manifest["segments"].items()}
    for e in manifest["sources"]:
        live[e["segment"]][e["first_chunk"] : e["first_chunk"] + e["chunks"]] = True
    for name, mask in live.items():
        dead = np.flatnonzero(~mask).tolist()
        if dead:
            conn.execute(f"DELETE FROM {s}.chunks WHERE segment = %s AND row = ANY(%s)", (name, dead))  # type: ignore[arg-type]
