"""Index: chunks, vectors and embedder bound together; manifest, atomic save and verified load."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chunking import ChunkSettings, chunk_corpus
from ..datatypes import Chunk, Document, Hit, Turn, speaker_matches
from ..embed import Embedder, index_embedder, is_code_spec, load_embedder
from ..errors import EmbedderMismatchError, IndexFormatError, MissingIndexError, UsageError
from ..storage.diskio import (
    file_digest,
    publish_directory,
    read_verified,
    resolve_index,
    staging_directory,
    writable_target,
    write_file,
    write_with_sum,
)
from ..storage.lexical import LexicalIndex, load_lexical
from ..storage.lock import index_lock
from ..storage.manifest import (
    DATA_FILES,
    REBUILD,
    canonical_spec,
    check_before_parse,
    corrupt,
    make_manifest,
    parse_jsonl,
    read_manifest,
)
from ..storage.records import chunk_from_record, document_from_record, document_record, jsonl
from ..storage.vectors import VECTORS_FILE, FaissStore

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
SOURCES = "sources.jsonl"
LOAD_ATTEMPTS = 8

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How one indexed source compares with the file on disk now."""

    source: str
    state: str  # unchanged, changed, missing
    path: str


class Index:
    """A searchable index of transcript chunks; build, save, load, search."""

    def __init__(self, chunks: Sequence[Chunk], store: FaissStore, documents: Sequence[Document], manifest: dict[str, Any], embedder: Embedder | None = None,
                 lexical: LexicalIndex | None = None) -> None:
        self.chunks = list(chunks)
        self.store = store
        self.documents = {d.source: d for d in documents}
        self.manifest = manifest
        self._embedder = embedder
        self._lexical = lexical
        self.path: Path | None = None

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
        """Chunk and embed documents into a new in-memory index; `corpus` (the folders read) goes into the manifest."""
        import numpy as np

        settings = settings or ChunkSettings()
        emb = load_embedder(embedder, build=True)
        chunks = chunk_corpus(documents, settings)
        vectors = emb.embed([c.text for c in chunks], progress=progress) if chunks else np.zeros((0, emb.dim), np.float32)
        store = FaissStore.from_vectors(vectors)
        manifest = make_manifest(documents, chunks, emb.spec, emb.dim, settings, corpus, getattr(emb, "backend", None))
        return cls(chunks, store, documents, manifest, query_embedder(embedder, emb), LexicalIndex.build(chunks))

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
    def lexical(self) -> LexicalIndex:
        """BM25 over the chunks and sources: built with the index, or from the chunks on first use."""
        if self._lexical is None:
            self._lexical = LexicalIndex.build(self.chunks)
        return self._lexical

    @property
    def settings(self) -> ChunkSettings:
        return ChunkSettings(**self.manifest["chunking"])

    def __len__(self) -> int:
        return len(self.chunks)

    def turns(self, source: str) -> tuple[Turn, ...]:
        return self.documents[source].turns

    # ------------------------------------------------------------ search

    def embed_query(self, query: str) -> np.ndarray:
        return self.embedder.embed([query])[0]

    def select(self, speaker: str | None = None, source: str | None = None) -> list[int] | None:
        """Chunk ids allowed by the filters, or None for all."""
        if not speaker and not source:
            return None
        pattern = source.casefold() if source else None  # --source is case-insensitive, like --speaker
        ids = []
        for i, chunk in enumerate(self.chunks):
            if speaker and not any(speaker_matches(speaker, s) for s in chunk.speakers):
                continue
            if pattern and not fnmatch.fnmatchcase(chunk.source.casefold(), pattern):
                continue
            ids.append(i)
        return ids

    def search(self, query: str, k: int = 5, *, speaker: str | None = None, source: str | None = None, **options: Any) -> list[Hit]:
        """The k best passages for the query; options (mode, weight, budget, ...) are hybrid.SearchOptions fields."""
        check_query(query, k)
        from ..search.hybrid import retriever

        return retriever(self).search(query, k, speaker=speaker, source=source, **options)

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the index to a staging folder, then publish it at `path` in one atomic step (under the writer lock)."""
        target = writable_target(Path(path))
        with index_lock(target), staging_directory(target) as tmp:
            files = {}
            for name, data in self._payload():
                write_file(tmp / name, data)
                files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            manifest = {**self.manifest, "files": files}
            write_with_sum(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
            publish_directory(tmp, target)
        self.manifest, self.path = manifest, Path(path)
        return Path(path)

    def _payload(self) -> list[tuple[str, bytes]]:
        import faiss

        # serialize_index instead of faiss.write_index: one write path that fsyncs and reports OSErrors by file name.
        vectors = faiss.serialize_index(self.store.index).tobytes()
        return [
            (CHUNKS, jsonl(asdict(c) for c in self.chunks)),
            (SOURCES, jsonl(document_record(d) for d in self.documents.values())),
            (VECTORS_FILE, vectors),
            *self.lexical.to_files().items(),
        ]

    @classmethod
    def load(cls, path: str | Path, embedder: str | Embedder | None = None) -> Index:
        """Load and verify an index; refuse a query embedder other than the one it was built with."""
        root = Path(path)
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            folder = _index_folder(root)
            try:
                index = cls._from_folder(folder)
                break
            except IndexFormatError:
                # A writer may have published twice meanwhile and removed the version we pinned: read the new one.
                if attempt == LOAD_ATTEMPTS or resolve_index(root) == folder:
                    raise
                log.debug("%s: %s was replaced while loading; retrying", root, folder.name)
        index.path = root
        if embedder is not None:
            index._embedder = _matching_embedder(embedder, index.manifest)
        return index

    @classmethod
    def _from_folder(cls, folder: Path) -> Index:
        manifest = read_manifest(folder / MANIFEST)
        # Every file is size- and hash-checked, and its counts checked, before any parser or FAISS sees its bytes.
        blobs = {name: read_verified(folder / name, manifest["files"][name], REBUILD) for name in DATA_FILES}
        check_before_parse(manifest, blobs[CHUNKS], blobs[SOURCES], blobs[VECTORS_FILE], folder)
        chunks = [chunk_from_record(d, folder / CHUNKS) for d in parse_jsonl(blobs[CHUNKS], folder / CHUNKS)]
        documents = [document_from_record(d, folder / SOURCES) for d in parse_jsonl(blobs[SOURCES], folder / SOURCES)]
        by_source = {d.source: d for d in documents}
        for chunk in chunks:
            doc = by_source.get(chunk.source)
            if doc is None:
                raise corrupt(f"{folder / CHUNKS} has chunks of {chunk.source!r}, which {SOURCES} lacks")
            if chunk.last_turn >= len(doc.turns) or chunk.char_end > len(doc.text):
                raise corrupt(f"{folder / CHUNKS}: chunk {chunk.id!r} reaches past its source's turns or text")
        store = FaissStore.from_bytes(blobs[VECTORS_FILE])
        if len(store) != len(chunks) or store.dim != manifest["embedder"]["dim"]:
            raise corrupt(f"{folder / VECTORS_FILE} holds {len(store)} vectors of dim {store.dim}, expected {len(chunks)} of dim {manifest['embedder']['dim']}")
        return cls(chunks, store, documents, manifest, lexical=load_lexical(folder, manifest, len(chunks)))

    def status(self) -> list[SourceStatus]:
        """Each indexed source compared with its file now (by sha256)."""
        out = []
        for doc in self.documents.values():
            path = Path(doc.path)
            if not path.is_file():
                out.append(SourceStatus(doc.source, "missing", doc.path))
                continue
            state = "unchanged" if file_digest(path)["sha256"] == doc.sha256 else "changed"
            out.append(SourceStatus(doc.source, state, doc.path))
        return out


def _index_folder(root: Path) -> Path:
    folder = resolve_index(root)
    if folder is None:
        raise MissingIndexError(f"{root}: no index here; build one with `ragkit index PATH -o {root}`")
    if root.is_symlink() and not folder.exists():
        raise corrupt(f"{root} points to {folder.name}, which is missing")
    if folder.exists() and not folder.is_dir():
        raise MissingIndexError(f"{root}: is a file, not a ragkit index (an index is a folder); pass the index folder with -i")
    if folder.is_dir() and not any((folder / n).exists() for n in (MANIFEST, MANIFEST + ".sha256", *DATA_FILES)):
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
