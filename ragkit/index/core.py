"""Index: chunks, vectors and embedder bound together; manifest, atomic save and verified load."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chunking import ChunkSettings, chunk_document
from ..datatypes import Chunk, Document, Hit, Turn, speaker_matches
from ..embed import Embedder, index_embedder, is_code_spec, load_embedder
from ..errors import EmbedderMismatchError, IndexFormatError, MissingIndexError, UsageError
from ..storage.diskio import file_digest, publish_directory, resolve_index, staging_directory, writable_target, write_with_sum
from ..storage.local import Chunks, Documents, LocalStore, SegmentedBm25
from ..storage.location import Location, PgLocation, parse_location
from ..storage.lock import index_lock
from ..storage.manifest import canonical_spec, corrupt, make_manifest, read_manifest
from ..storage.verify import Verified
from ..storage.writer import VersionWriter, link_or_copy

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOAD_ATTEMPTS = 8
# Chunk texts embedded per call while building: large enough for the model's batching, small enough to stream.
EMBED_BATCH = 2048

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How one indexed source compares with the file on disk now."""

    source: str
    state: str  # unchanged, changed, missing
    path: str


@dataclass(frozen=True, slots=True)
class Lexical:
    """BM25 over the chunks, and over whole sources (each source's chunks joined) for source-level scores."""

    chunks: SegmentedBm25
    sources: SegmentedBm25
    names: tuple[str, ...]  # row i of `sources` is the source names[i]


@dataclass(frozen=True, slots=True)
class Pending:
    """One source of a version being written: kept from the previous version (entry), or new (document and chunks)."""

    entry: dict[str, Any] | None = None
    doc: Document | None = None
    chunks: tuple[Chunk, ...] = ()
    fingerprint: str = ""
    stamp: str = ""


class Index:
    """A searchable index of transcript chunks; build, save, load, search.

    Its records, vectors and postings live in a store folder (a published version, or a private folder for an index
    built in Python and not saved yet) and are read when used; `chunks` and `documents` read through to it.
    """

    def __init__(self, store: LocalStore, embedder: Embedder | None = None, owned: Path | None = None) -> None:
        self.store = store
        self.manifest = store.manifest
        self.chunks = Chunks(store)
        self.documents = Documents(store)
        self._embedder = embedder
        self._lexical: Lexical | None = None
        self.path: Location | None = None
        if owned is not None:  # a private folder: removed with the object
            weakref.finalize(self, shutil.rmtree, owned, True)

    # ------------------------------------------------------------ build

    @classmethod
    def build(
        cls,
        documents: Sequence[Document],
        embedder: str | Embedder | None = None,
        settings: ChunkSettings | None = None,
        progress: Progress | None = None,
        *,
        corpus: Sequence[str | Path] = (),
    ) -> Index:
        """Chunk and embed documents into a new index (in a private folder until saved); `corpus` goes into the manifest."""
        settings = settings or ChunkSettings()
        emb = load_embedder(embedder, build=True)
        folder = Path(tempfile.mkdtemp(prefix="ragkit-index-"))
        try:
            pending = [Pending(doc=d, chunks=tuple(chunk_document(d, settings))) for d in documents]
            manifest = write_version(folder, pending, emb, int(emb.dim), settings, corpus, getattr(emb, "backend", None), progress=progress)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return cls(open_store(folder, manifest), query_embedder(embedder, emb), owned=folder)

    # ------------------------------------------------------------ properties

    @property
    def embedder(self) -> Embedder:
        """The query embedder, loaded on first use and checked against the manifest."""
        if self._embedder is None:
            self._embedder = index_embedder(self.manifest["embedder"]["spec"], self.path or "this index")
        built, dim = self.manifest["embedder"]["spec"], int(self.manifest["embedder"]["dim"])
        if self._embedder.dim != dim:
            raise EmbedderMismatchError(
                f"index was built with embedder {built!r} ({dim} dims) but {self._embedder.spec!r} gives "
                f"{self._embedder.dim} dims; query with the index's embedder, or rebuild with `ragkit index --force -e {self._embedder.spec}`"
            )
        return self._embedder

    @property
    def lexical(self) -> Lexical:
        """BM25 over the chunks and sources, scored from the stored postings."""
        if self._lexical is None:
            self._lexical = Lexical(self.store.chunk_bm25, self.store.source_bm25, self.store.lex_names())
        return self._lexical

    @property
    def settings(self) -> ChunkSettings:
        return ChunkSettings(**self.manifest["chunking"])

    def __len__(self) -> int:
        return len(self.store)

    def turns(self, source: str) -> tuple[Turn, ...]:
        return self.documents[source].turns

    # ------------------------------------------------------------ search

    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed([query])[0]

    def select(self, speaker: str | None = None, source: str | None = None) -> list[int] | None:
        """Chunk ids allowed by the filters, or None for all."""
        import numpy as np

        if not speaker and not source:
            return None
        allowed = np.ones(len(self), dtype=bool)
        if source:
            pattern = source.casefold()  # --source is case-insensitive, like --speaker
            by_source = np.zeros(len(self), dtype=bool)
            for name in self.store.names:
                if fnmatch.fnmatchcase(name.casefold(), pattern):
                    a, b = self.store.source_range(name)
                    by_source[a:b] = True
            allowed &= by_source
        if speaker:
            by_speaker = np.zeros(len(self), dtype=bool)
            for label, (listed, _, _) in self.store.speaker_rows().items():
                if speaker_matches(speaker, label):
                    by_speaker[listed] = True
            allowed &= by_speaker
        return np.flatnonzero(allowed).tolist()

    def search(self, query: str, k: int = 5, *, speaker: str | None = None, source: str | None = None, **options: Any) -> list[Hit]:
        """The k best passages for the query; options (mode, weight, budget, ...) are hybrid.SearchOptions fields."""
        check_query(query, k)
        from ..search.hybrid import retriever

        return retriever(self).search(query, k, speaker=speaker, source=source, **options)

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path | PgLocation) -> Location:
        """Publish the index at `path` in one atomic step (under the writer lock): in a folder its segment files are
        hard-linked; in PostgreSQL (a `postgresql://` URL) they are copied in by one transaction."""
        location = parse_location(path)
        if isinstance(location, PgLocation):
            from ..storage.postgres import publish, writer_lock

            if self.store.kind != "local":
                raise UsageError(f"{self.path} is already in PostgreSQL; to copy it to {location}, build there with `ragkit index PATH -o {location}`")
            with writer_lock(location) as conn:
                publish(conn, location, self.store.folder, self.manifest)
            self.path = location
            return location
        if self.store.kind != "local":
            raise UsageError(f"{self.path} is in PostgreSQL; to have it in a folder, build there with `ragkit index PATH -o {location}`")
        target = writable_target(location)
        with index_lock(target), staging_directory(target) as tmp:
            for meta in self.manifest["segments"].values():
                for fname in meta["files"]:
                    link_or_copy(self.store.folder / fname, tmp / fname)
            write_manifest(tmp, self.manifest)
            publish_directory(tmp, target)
        self.path = location
        return location

    @classmethod
    def load(cls, path: str | Path | PgLocation, embedder: str | Embedder | None = None) -> Index:
        """Open an index (its manifest and the structure of its files; records are read when used); refuse a query
        embedder other than the one it was built with. `path` is a folder or a `postgresql://` URL."""
        location = parse_location(path)
        if isinstance(location, PgLocation):
            from ..storage.postgres import open_postgres

            index = cls(open_postgres(location))
        else:
            index = cls._load_folder(location)
        index.path = location
        if embedder is not None:
            index._embedder = _matching_embedder(embedder, index.manifest)
        return index

    @classmethod
    def _load_folder(cls, root: Path) -> Index:
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            folder = _index_folder(root)
            try:
                return cls(open_store(folder, read_manifest(folder / MANIFEST)))
            except IndexFormatError:
                # A writer may have published twice meanwhile and removed the version we pinned: read the new one.
                if attempt == LOAD_ATTEMPTS or resolve_index(root) == folder:
                    raise
                log.debug("%s: %s was replaced while loading; retrying", root, folder.name)
        raise AssertionError("unreachable")

    def verify(self) -> Verified:
        """Check every byte and record of the index (opening checks only its structure); raises if it is corrupt."""
        from ..storage.verify import verify_records, verify_version

        if self.store.kind != "local":
            return verify_records(self.store)  # the database server checksums its own pages
        return verify_version(self.store.folder, self.manifest)

    def source_entries(self) -> list[dict[str, Any]]:
        """What the index holds of each source (path, title, sha256, turns, chunks, speakers, format, ...), in corpus order."""
        return self.store.source_entries()

    def status(self, unchanged: Collection[str] = ()) -> list[SourceStatus]:
        """Each indexed source compared with its file now (by sha256); sources in `unchanged` are known to match
        (a corpus read found their fingerprints as indexed), so their files are not hashed again."""
        out = []
        for entry in self.source_entries():
            file = entry["file"]
            if entry["path"] in unchanged:
                state = "unchanged"
            elif not os.path.isfile(file):
                state = "missing"
            elif file_digest(Path(file))["sha256"] == entry["sha256"]:
                state = "unchanged"
            else:
                state = "changed"
            out.append(SourceStatus(entry["path"], state, file))
        return out


def open_store(folder: Path, manifest: dict[str, Any]) -> LocalStore:
    """The store of a version folder, its structure checked and its files opened (so a later cleanup cannot take them)."""
    store = LocalStore(folder, manifest)
    store.check()
    store.open()
    return store


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    write_with_sum(folder / MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False).encode())


def write_version(
    folder: Path, pending: Sequence[Pending], emb: Embedder, dim: int, settings: ChunkSettings, corpus: Sequence[str | Path],
    backend: str | None, previous: LocalStore | None = None, known: Callable[[str], np.ndarray | None] | None = None,
    progress: Progress | None = None, to_embed: int | None = None,
) -> dict[str, Any]:
    """Write a version into folder: kept sources linked, new ones embedded in batches (a text `known` returns a vector
    for, or one embedded earlier in this run, is not embedded again) and streamed to segments; returns its manifest.
    `to_embed` (the plan's count of texts to embed) is the progress total; without it, every distinct text."""
    from ..storage.segment import text_key

    writer = VersionWriter(folder, dim, previous)
    texts = [c.text for p in pending for c in p.chunks]
    repeats = {k for k, n in Counter(map(text_key, texts)).items() if n > 1}
    missing_total = len(set(texts)) if to_embed is None else to_embed
    done = 0
    remembered: dict[str, np.ndarray] = {}  # vectors of texts that occur more than once

    def vector_of(text: str) -> np.ndarray | None:
        found = remembered.get(text)
        if found is None and known is not None:
            found = known(text)
        return found

    try:
        batch: list[Pending] = []
        size = 0
        for item in pending:
            if item.entry is not None:
                done += _flush(writer, batch, emb, dim, vector_of, remembered, repeats, progress, done, missing_total)
                batch, size = [], 0
                writer.keep(item.entry)
                continue
            batch.append(item)
            size += len(item.chunks)
            if size >= EMBED_BATCH:
                done += _flush(writer, batch, emb, dim, vector_of, remembered, repeats, progress, done, missing_total)
                batch, size = [], 0
        done += _flush(writer, batch, emb, dim, vector_of, remembered, repeats, progress, done, missing_total)
        sources, segments = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return make_manifest(emb.spec, dim, settings, corpus, backend, sources, segments)


def _flush(
    writer: VersionWriter, batch: list[Pending], emb: Embedder, dim: int, vector_of: Callable[[str], np.ndarray | None],
    remembered: dict[str, np.ndarray], repeats: set[int], progress: Progress | None, done: int, total: int,
) -> int:
    """Embed the batch's unknown texts (each once) and write its sources; returns how many texts were embedded."""
    import numpy as np

    from ..errors import RagkitError
    from ..readers.corpus import text_sha
    from ..storage.segment import text_key

    if not batch:
        return 0
    missing = list(dict.fromkeys(c.text for p in batch for c in p.chunks if vector_of(c.text) is None))
    fresh = np.zeros((0, dim), np.float32)
    if missing:
        step = None if progress is None else (lambda a, b: progress(done + a, total))
        fresh = emb.embed(missing, progress=step)
        if fresh.shape[1] != dim:
            raise RagkitError(f"embedder {emb.spec!r} now gives {fresh.shape[1]}-dim vectors but the index holds {dim}-dim ones; rebuild with `ragkit index --force`")
    position = {t: i for i, t in enumerate(missing)}
    for item in batch:
        assert item.doc is not None
        vectors = np.zeros((len(item.chunks), dim), np.float32)
        for i, chunk in enumerate(item.chunks):
            row = position.get(chunk.text)
            vectors[i] = fresh[row] if row is not None else vector_of(chunk.text)
            if row is not None and text_key(chunk.text) in repeats:
                remembered[chunk.text] = fresh[row]
        writer.add(item.doc, item.chunks, vectors, {"fingerprint": item.fingerprint, "stamp": item.stamp, "text_sha": text_sha(item.doc.text)})
    return len(missing)


def _index_folder(root: Path) -> Path:
    folder = resolve_index(root)
    if folder is None:
        raise MissingIndexError(f"{root}: no index here; build one with `ragkit index PATH -o {root}`")
    if root.is_symlink() and not folder.exists():
        raise corrupt(f"{root} points to {folder.name}, which is missing")
    if folder.exists() and not folder.is_dir():
        raise MissingIndexError(f"{root}: is a file, not a ragkit index (an index is a folder); pass the index folder with -i")
    if folder.is_dir() and not any((folder / n).exists() for n in (MANIFEST, MANIFEST + ".sha256")):
        what = "empty folder, no index" if not any(folder.iterdir()) else "no ragkit index here (no manifest.json)"
        raise MissingIndexError(f"{root}: {what}; build one with `ragkit index PATH -o {root}`")
    return folder


def check_query(query: str, k: int) -> None:
    if not query or not query.strip():
        raise UsageError("the query is empty; pass a question, e.g. ragkit search \"why is data the bottleneck?\"")
    if k < 1:
        raise UsageError(f"-k/--top-k must be at least 1 (got {k})")


def _matching_embedder(embedder: str | Embedder, manifest: dict[str, Any]) -> Embedder:
    built, dim = manifest["embedder"]["spec"], manifest["embedder"]["dim"]
    spec = embedder if isinstance(embedder, str) else embedder.spec
    if canonical_spec(spec) != canonical_spec(built):
        raise EmbedderMismatchError(
            f"index was built with embedder {built!r} ({dim} dims) but {spec!r} was asked for; "
            f"query with -e {built}, or rebuild with `ragkit index --force -e {spec}`"
        )
    return load_embedder(embedder)


def query_embedder(asked: str | Embedder | None, built_with: Embedder) -> Embedder | None:
    """The embedder a freshly built index queries with: the caller's object, else None to load the query backend.

    A spec may build with the int8 export but queries use fp32 (see load_embedder), and an index searched
    right after its build must rank exactly like the same index loaded from disk.
    """
    # A code spec the caller passed is trusted for this run; reloading it from the manifest would not be.
    return None if asked is None or (isinstance(asked, str) and not is_code_spec(asked)) else built_with
