"""Index: chunks, vectors and embedder bound together; manifest, atomic save and validated load."""

from __future__ import annotations

import fnmatch
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .chunking import ChunkSettings, chunk_corpus
from .datatypes import Chunk, Document, Hit, Turn
from .diskio import file_digest, publish_directory, read_verified, staging_directory, write_file
from .embedders import Embedder, load_embedder
from .errors import EmbedderMismatchError, IndexFormatError, MissingIndexError, UsageError
from .store import VECTORS_FILE, FaissStore

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNKS = "chunks.jsonl"
SOURCES = "sources.jsonl"
REBUILD = "rebuild with `ragkit index --force`"

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How one indexed source compares with the file on disk now."""

    source: str
    state: str  # unchanged, changed, missing
    path: str


class Index:
    """A searchable index of transcript chunks; build, save, load, search."""

    def __init__(self, chunks: Sequence[Chunk], store: FaissStore, documents: Sequence[Document], manifest: dict[str, Any], embedder: Embedder | None = None) -> None:
        self.chunks = list(chunks)
        self.store = store
        self.documents = {d.source: d for d in documents}
        self.manifest = manifest
        self._embedder = embedder
        self.path: Path | None = None

    # ------------------------------------------------------------ build

    @classmethod
    def build(cls, documents: Sequence[Document], embedder: str | Embedder | None = None, settings: ChunkSettings | None = None, progress: Progress | None = None) -> Index:
        """Chunk and embed documents into a new in-memory index."""
        import numpy as np

        settings = settings or ChunkSettings()
        emb = load_embedder(embedder)
        chunks = chunk_corpus(documents, settings)
        vectors = emb.embed([c.text for c in chunks], progress=progress) if chunks else np.zeros((0, emb.dim), np.float32)
        store = FaissStore.from_vectors(vectors)
        return cls(chunks, store, documents, make_manifest(documents, chunks, emb, settings), emb)

    # ------------------------------------------------------------ properties

    @property
    def embedder(self) -> Embedder:
        """The query embedder, loaded on first use and checked against the manifest."""
        if self._embedder is None:
            self._embedder = load_embedder(self.manifest["embedder"]["spec"])
        expected = int(self.manifest["embedder"]["dim"])
        if self._embedder.dim != expected:
            raise EmbedderMismatchError(
                f"embedder {self._embedder.spec!r} gives {self._embedder.dim}-dim vectors but the index "
                f"holds {expected}-dim vectors from {self.manifest['embedder']['spec']!r}; {REBUILD} -e {self._embedder.spec}"
            )
        return self._embedder

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
        wanted = speaker.casefold().strip() if speaker else None
        ids = []
        for i, chunk in enumerate(self.chunks):
            if wanted and not any(wanted in s.casefold() for s in chunk.speakers):
                continue
            if source and not fnmatch.fnmatchcase(chunk.source, source):
                continue
            ids.append(i)
        return ids

    def search(self, query: str, k: int = 5, *, speaker: str | None = None, source: str | None = None) -> list[Hit]:
        """The k chunks most similar to the query (all of them when k exceeds the count)."""
        check_query(query, k)
        ids = self.select(speaker, source)
        if ids is not None and not ids:
            return []
        found = self.store.search(self.embed_query(query), k, ids)
        return [Hit(self.chunks[i], score, rank) for rank, (i, score) in enumerate(found, start=1)]

    # ------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write the index to a staging folder, then publish it at `path` in one atomic step."""
        target = Path(path)
        with staging_directory(target) as tmp:
            write_file(tmp / CHUNKS, _jsonl(asdict(c) for c in self.chunks))
            write_file(tmp / SOURCES, _jsonl(_document_record(d) for d in self.documents.values()))
            self.store.save(tmp / VECTORS_FILE)
            files = {name: file_digest(tmp / name) for name in (CHUNKS, SOURCES, VECTORS_FILE)}
            manifest = {**self.manifest, "files": files}
            write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False).encode())
            publish_directory(tmp, target)
        self.manifest, self.path = manifest, target
        return target

    @classmethod
    def load(cls, path: str | Path, embedder: str | Embedder | None = None) -> Index:
        """Load and verify an index; refuse a query embedder other than the one it was built with."""
        root = Path(path)
        if not (root / MANIFEST).exists():
            if root.exists() and root.is_dir() and not any(root.iterdir()):
                raise MissingIndexError(f"{root}: empty folder, no index; build one with `ragkit index PATH -o {root}`")
            if not root.exists():
                raise MissingIndexError(f"{root}: no index here; build one with `ragkit index PATH -o {root}`")
            raise IndexFormatError(f"index is corrupt: {root / MANIFEST} is missing; {REBUILD}")
        real = root.resolve()  # pin one published version even if a rebuild swaps it meanwhile
        manifest = _read_manifest(real / MANIFEST)
        # Every file is hash-checked before any parser or FAISS sees its bytes.
        blobs = {name: read_verified(real / name, manifest["files"][name], REBUILD) for name in (CHUNKS, SOURCES, VECTORS_FILE)}
        chunks = [_chunk(d, real / CHUNKS) for d in _parse_jsonl(blobs[CHUNKS], real / CHUNKS)]
        documents = [_document_from_record(d) for d in _parse_jsonl(blobs[SOURCES], real / SOURCES)]
        store = FaissStore.from_bytes(blobs[VECTORS_FILE])
        _check_counts(manifest, chunks, store, real)
        index = cls(chunks, store, documents, manifest)
        index.path = root
        if embedder is not None:
            index._embedder = _matching_embedder(embedder, manifest)
        return index

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


def check_query(query: str, k: int) -> None:
    if not query or not query.strip():
        raise UsageError("the query is empty; pass a question, e.g. ragkit search \"why is data the bottleneck?\"")
    if k < 1:
        raise UsageError(f"-k/--top-k must be at least 1 (got {k})")


def canonical_spec(spec: str) -> str:
    """Specs that load the same model compare equal (`all-MiniLM-L6-v2` with or without prefixes)."""
    spec = spec if ":" in spec.split("/")[0] or spec.startswith("hash") else f"st:{spec}"
    return spec.replace("st:sentence-transformers/", "st:")


def _matching_embedder(embedder: str | Embedder, manifest: dict[str, Any]) -> Embedder:
    built = manifest["embedder"]["spec"]
    spec = embedder if isinstance(embedder, str) else embedder.spec
    if canonical_spec(spec) != canonical_spec(built):
        raise EmbedderMismatchError(
            f"index was built with embedder {built!r} ({manifest['embedder']['dim']} dims) but {spec!r} was asked for; "
            f"query with -e {built} or {REBUILD} -e {spec}"
        )
    return load_embedder(embedder)


def make_manifest(documents: Sequence[Document], chunks: Sequence[Chunk], emb: Embedder, settings: ChunkSettings) -> dict[str, Any]:
    per_source: dict[str, int] = {}
    for c in chunks:
        per_source[c.source] = per_source.get(c.source, 0) + 1
    return {
        "format_version": FORMAT_VERSION,
        "ragkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "embedder": {"spec": canonical_spec(emb.spec), "dim": int(emb.dim)},
        "chunking": asdict(settings),
        "sources": [
            {"path": d.source, "title": d.title, "sha256": d.sha256, "turns": len(d.turns), "chunks": per_source.get(d.source, 0), "file": d.path}
            for d in documents
        ],
        "counts": {"chunks": len(chunks), "sources": len(documents), "vectors": len(chunks)},
        "files": {},
    }


def _jsonl(records) -> bytes:  # noqa: ANN001
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()


def _document_record(doc: Document) -> dict[str, Any]:
    record = {k: v for k, v in asdict(doc).items() if k != "turns"}
    record["turns"] = [[t.speaker, t.start, t.end, t.section, t.char_start, t.char_end, t.line] for t in doc.turns]
    return record


def _document_from_record(data: dict[str, Any]) -> Document:
    text = data["text"]
    turns = tuple(Turn(sp, text[s:e], st, sec, s, e, line, end) for sp, st, end, sec, s, e, line in data["turns"])
    fields = {k: v for k, v in data.items() if k not in ("turns",)}
    return Document(**{**fields, "turns": turns})


def _chunk(data: dict[str, Any], path: Path) -> Chunk:
    try:
        return Chunk.from_dict(data)
    except TypeError as exc:
        raise IndexFormatError(f"index is corrupt: {path} holds a malformed chunk ({exc}); {REBUILD}") from exc


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > 64 * 1024 * 1024:
            raise IndexFormatError(f"index is corrupt: {path} is implausibly large; {REBUILD}")
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFormatError(f"index is corrupt: {path} is not valid JSON ({exc}); {REBUILD}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        raise IndexFormatError(f"index is corrupt: {path} has no format_version; {REBUILD}")
    version = manifest["format_version"]
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format version {version} is newer than this ragkit supports (version {FORMAT_VERSION}); "
            "upgrade ragkit or rebuild the index with this version"
        )
    for key in ("embedder", "chunking", "counts", "files", "sources"):
        if key not in manifest:
            raise IndexFormatError(f"index is corrupt: {path} lacks {key!r}; {REBUILD}")
    missing = {CHUNKS, SOURCES, VECTORS_FILE} - set(manifest["files"])
    if missing:
        raise IndexFormatError(f"index is corrupt: {path} lists no hash for {', '.join(sorted(missing))}; {REBUILD}")
    return manifest


def _parse_jsonl(data: bytes, path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise IndexFormatError(f"index is corrupt: {path} line {n} is not JSON; {REBUILD}") from exc
    return out


def _check_counts(manifest: dict[str, Any], chunks: list[Chunk], store: FaissStore, root: Path) -> None:
    count = manifest["counts"]["chunks"]
    if not (count == len(chunks) == len(store)):
        raise IndexFormatError(
            f"index is corrupt: {root} manifest counts {count} chunks, {CHUNKS} holds {len(chunks)}, "
            f"{VECTORS_FILE} holds {len(store)} vectors; {REBUILD}"
        )
    if store.dim != manifest["embedder"]["dim"]:
        raise IndexFormatError(f"index is corrupt: {root / VECTORS_FILE} has dim {store.dim}, manifest says {manifest['embedder']['dim']}; {REBUILD}")
