"""Incremental updates: an update reads only changed files, embeds only chunk texts the index lacks, writes only new
segments (kept ones are hard-linked), and the result equals a full rebuild."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chunking import ChunkSettings, chunk_document
from ..datatypes import Chunk, Document
from ..embed import DEFAULT_EMBEDDER, INT8_BACKEND, Embedder, load_embedder, refuse_code_spec
from ..errors import IndexFormatError, MissingIndexError, RagkitError
from ..readers.corpus import CorpusRead
from ..storage.diskio import clean_leftovers, publish_directory, recover, resolve_index, staging_directory, writable_target
from ..storage.location import Location, PgLocation, parse_location
from ..storage.lock import index_lock
from ..storage.manifest import LEGACY_VERSION, canonical_spec, read_manifest
from ..storage.segment import SEGMENT_ROWS
from ..storage.verify import verify_version
from ..storage.writer import LOCATION
from .core import MANIFEST, Index, Pending, SourceStatus, open_store, query_embedder, write_manifest, write_version

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
# Small segments (each update writes one) are merged into the next update's new segment once there are more than this.
MAX_SMALL_SEGMENTS = 4

@dataclass(frozen=True, slots=True)
class UpdateReport:
    """What an update did or would do, in chunks of the old and new index.

    unchanged: a new chunk with the same source and text as an old one (its vector is reused);
    changed: a new chunk whose id an old chunk had, with other text; added / removed: the other new / old chunks.
    So unchanged + changed + added = chunks now, and unchanged + changed + removed = chunks before.
    embedded counts the distinct texts sent to the embedder (fewer than added + changed when a text moved).
    """

    added: int
    changed: int
    removed: int
    unchanged: int
    embedded: int
    chunks: int
    sources: int
    full: bool  # nothing reused: a new index, --force, or another embedder or chunk settings
    reason: str  # why the rebuild was full ("" when incremental)
    written: bool = False  # a new version was published (False for --dry-run and when nothing changed)
    skipped: int = 0  # corpus files that could not be read (each reported as a warning)
    repaired: int = 0  # files read after repairing defects such as a cue that ends before it starts
    unrecognised: int = 0  # long files read as plain prose although they look like transcripts
    new_sources: tuple[str, ...] = ()  # corpus files not in the index (filled by pending_update, for `ragkit info`)

    def summary(self) -> str:
        return f"{self.added} added, {self.changed} changed, {self.removed} removed, {self.unchanged} unchanged"



@dataclass(frozen=True, slots=True)
class Plan:
    """The sources a new version will hold, in corpus order, and how it compares with the previous one."""

    pending: list[Pending]
    report: UpdateReport
    known: Callable[[str], np.ndarray | None] | None  # the previous index's vector of a chunk text
    compacted: int = 0  # kept sources rewritten because their segment was mostly dead or small


class Previous:
    """What an update needs of the index it replaces: per-source chunks and entries, and vectors by chunk text."""

    def __init__(self, index: Index | None = None, legacy: tuple[list[Chunk], list[Document], np.ndarray] | None = None,
                 manifest: dict[str, Any] | None = None) -> None:
        self.index = index
        self.manifest: dict[str, Any] = index.manifest if index is not None else manifest or {}
        self.entries: dict[str, dict[str, Any]] = {e["path"]: e for e in index.source_entries()} if index is not None else {}
        self._legacy_chunks: dict[str, list[Chunk]] = {}
        self._legacy_rows: dict[str, int] = {}
        self._legacy_vectors: np.ndarray | None = None
        if legacy is not None:
            chunks, docs, vectors = legacy
            for row, chunk in enumerate(chunks):
                self._legacy_chunks.setdefault(chunk.source, []).append(chunk)
                self._legacy_rows.setdefault(chunk.text, row)
            self.entries = {d.source: {"path": d.source, "chunks": len(self._legacy_chunks.get(d.source, []))} for d in docs}
            self._legacy_vectors = vectors
        self._near: dict[str, np.ndarray] = {}
        self._unknown: set[str] = set()

    @property
    def settings(self) -> ChunkSettings:
        return ChunkSettings(**self.manifest["chunking"])

    def chunks_of(self, source: str) -> list[Chunk]:
        if source not in self.entries:
            return []
        if self.index is None:
            return self._legacy_chunks.get(source, [])
        return [c for _, c in self.index.store.chunks_of(source)]

    def all_chunks(self) -> list[Chunk]:
        return [c for source in self.entries for c in self.chunks_of(source)]

    def prefetch(self, source: str) -> None:
        """Remember the vectors of one source's old chunks by text: an edited episode mostly repeats its own texts."""
        if self.index is None or source not in self.entries:
            return
        pairs = self.index.store.chunks_of(source)
        vectors = self.index.store.vector_rows([i for i, _ in pairs])
        for (_, chunk), vector in zip(pairs, vectors):
            self._near.setdefault(chunk.text, vector)

    def vector(self, text: str) -> np.ndarray | None:
        if self._legacy_vectors is not None:
            row = self._legacy_rows.get(text)
            return None if row is None else self._legacy_vectors[row]
        found = self._near.get(text)
        if found is None and self.index is not None and text not in self._unknown:
            i = self.index.store.find_text(text)
            if i is None:
                self._unknown.add(text)  # asked again when the plan is written: one database lookup is enough
            else:
                found = self._near[text] = self.index.store.vector_rows([i])[0]
        return found


def diff_chunks(old: Sequence[Chunk], new: Sequence[Chunk]) -> tuple[int, int, int, int]:
    """(added, changed, removed, unchanged) as defined on UpdateReport; duplicates count as a multiset."""
    left = Counter((c.source, c.text) for c in old)
    rest_new = []
    for c in new:
        if left[(c.source, c.text)] > 0:
            left[(c.source, c.text)] -= 1
        else:
            rest_new.append(c)
    rest_old = []
    for c in old:
        if left[(c.source, c.text)] > 0:
            left[(c.source, c.text)] -= 1
            rest_old.append(c)
    changed = len({c.id for c in rest_new} & {c.id for c in rest_old})
    unchanged = len(new) - len(rest_new)
    return len(rest_new) - changed, changed, len(rest_old) - changed, unchanged



def full_rebuild_reason(previous: Previous | None, spec: str, settings: ChunkSettings, force: bool = False) -> str:
    """Why no vector of the previous index can be reused ("" when they can)."""
    if force:
        return "--force"
    if previous is None:
        return "new index"
    old_spec = previous.manifest["embedder"]["spec"]
    if canonical_spec(spec) != canonical_spec(old_spec):
        return f"embedder changed from {old_spec} to {canonical_spec(spec)}"
    if previous.settings != settings:
        return f"chunk settings changed from {asdict(previous.settings)} to {asdict(settings)}"
    return ""


def plan_update(previous: Previous | None, read: CorpusRead, spec: str, settings: ChunkSettings, force: bool = False) -> Plan:
    """Chunk the documents read and compare them, source by source, with the previous index; kept sources stay put."""
    reason = full_rebuild_reason(previous, spec, settings, force)
    docs = {d.source: d for d in read.documents}
    order = read.order or tuple(docs)
    pending: list[Pending] = []
    added = changed = removed = unchanged = 0
    new_all: list[Chunk] = []
    compact = _compactable(previous) if previous is not None and not reason else set()
    compacted = 0
    for source in order:
        doc = docs.get(source)
        if doc is None:  # kept: the file is as indexed
            assert previous is not None and previous.index is not None
            entry = previous.entries[source]
            if entry["segment"] in compact:
                store = previous.index.store
                chunks = tuple(c for _, c in store.chunks_of(source))
                pending.append(Pending(doc=store.document(source), chunks=chunks, fingerprint=entry.get("fingerprint", ""), stamp=entry.get("stamp", "")))
                previous.prefetch(source)
                compacted += 1
            else:
                pending.append(Pending(entry=entry))
            unchanged += int(entry["chunks"])
            continue
        chunks = tuple(chunk_document(doc, settings))
        fingerprint, stamp = read.fingerprints.get(source, ""), read.stamps.get(source, "")
        if reason:
            new_all.extend(chunks)
            pending.append(Pending(doc=doc, chunks=chunks, fingerprint=fingerprint, stamp=stamp))
            continue
        assert previous is not None
        old = previous.chunks_of(source)
        a, c, r, u = diff_chunks(old, chunks)
        added, changed, removed, unchanged = added + a, changed + c, removed + r, unchanged + u
        previous.prefetch(source)  # a source read again (its fingerprint changed) is rewritten, its vectors reused
        pending.append(Pending(doc=doc, chunks=chunks, fingerprint=fingerprint, stamp=stamp))
    if reason:
        added, changed, removed, unchanged = diff_chunks(previous.all_chunks() if previous is not None else [], new_all)
    elif previous is not None:
        listed = set(order)
        removed += sum(int(e["chunks"]) for name, e in previous.entries.items() if name not in listed)
    known = previous.vector if previous is not None and not reason else None
    texts = {c.text for p in pending for c in p.chunks}
    embedded = len({t for t in texts if known is None or known(t) is None})
    total = sum(int(p.entry["chunks"]) if p.entry is not None else len(p.chunks) for p in pending)
    report = UpdateReport(added, changed, removed, unchanged, embedded, total, len(pending), bool(reason), reason)
    return Plan(pending, report, known, compacted)


def _compactable(previous: Previous) -> set[str]:
    """Segments to rewrite: those mostly dead (under half their rows live), and the small ones once there are many."""
    if previous.index is None:
        return set()
    live: dict[str, int] = {}
    for e in previous.entries.values():
        live[e["segment"]] = live.get(e["segment"], 0) + int(e["chunks"])
    segments = previous.manifest["segments"]
    out = {name for name, meta in segments.items() if meta["rows"] and live.get(name, 0) * 2 < meta["rows"]}
    small = [name for name, meta in segments.items() if meta["rows"] < SEGMENT_ROWS // 4]
    if len(small) > MAX_SMALL_SEGMENTS:
        out.update(small)
    return out


def apply_plan(
    plan: Plan, previous: Previous | None, folder: Path, embedder: str | Embedder, settings: ChunkSettings,
    progress: Progress | None = None, corpus: Sequence[str | Path] = (),
) -> tuple[dict[str, Any], Embedder]:
    """Write the new version into folder: reused vectors where the text is known, fresh embeddings for the rest."""
    reuse = plan.known is not None and previous is not None
    reused = previous.manifest["embedder"].get("backend") if reuse and previous else None
    # Under "auto", new chunks join reused vectors at the same precision: int8 only beside int8 (an index from
    # before int8 builds records no backend and holds fp32 vectors).
    emb = load_embedder(embedder, build=not reuse or reused == INT8_BACKEND)
    dim = int(previous.manifest["embedder"]["dim"]) if reuse and previous else int(emb.dim)
    backend = getattr(emb, "backend", None)
    if reuse:
        backend = merged_backend(reused, backend) if plan.report.embedded else reused
    store = previous.index.store if reuse and previous and previous.index is not None else None
    manifest = write_version(folder, plan.pending, emb, dim, settings, corpus, backend, store, plan.known, progress, plan.report.embedded)
    return manifest, emb


def merged_backend(reused: str | None, new: str | None) -> str | None:
    """The manifest's backend once `new` vectors join `reused` ones: `new`, or "a+b" when a forced --embedder-backend
    put int8 and fp32 vectors side by side (an index from before the field records none and holds fp32)."""
    kinds = reused.split("+") if reused else [None]
    if all((kind == INT8_BACKEND) == (new == INT8_BACKEND) for kind in kinds):
        return new
    return "+".join(dict.fromkeys([*(kind or "fp32" for kind in kinds), new or "fp32"]))



def _spec(embedder: str | Embedder | None, manifest: dict[str, Any] | None) -> str:
    if embedder is not None:
        return embedder if isinstance(embedder, str) else embedder.spec
    if manifest is None:
        return DEFAULT_EMBEDDER
    refuse_code_spec(manifest["embedder"]["spec"], "the index")
    return manifest["embedder"]["spec"]


def _settings(manifest: dict[str, Any] | None, max_tokens: int | None, overlap_turns: int | None) -> ChunkSettings:
    base = ChunkSettings(**manifest["chunking"]) if manifest else ChunkSettings()
    return replace(
        base,
        max_tokens=base.max_tokens if max_tokens is None else max_tokens,
        overlap_turns=base.overlap_turns if overlap_turns is None else overlap_turns,
    )


def recorded_manifest(path: str | Path | PgLocation) -> dict[str, Any] | None:
    """The manifest of the index at path when it is readable (for defaults even under --force), else None."""
    location = parse_location(path)
    if isinstance(location, PgLocation):
        from ..storage.postgres import open_postgres

        try:
            store = open_postgres(location)
        except RagkitError:
            return None
        store.close()
        return store.manifest
    folder = resolve_index(location)
    if folder is None:
        return None
    try:
        return read_manifest(folder / MANIFEST, legacy=True)
    except RagkitError:
        return None


def recorded_corpus(path: str | Path | PgLocation) -> list[str]:
    """The corpus folders the index at path was built from ([] when there is no readable index)."""
    manifest = recorded_manifest(path)
    return [str(p) for p in manifest["corpus"]] if manifest else []


def update_index(
    previous: Index | None, documents: Sequence[Document], embedder: str | Embedder | None = None, settings: ChunkSettings | None = None,
    progress: Progress | None = None, *, corpus: Sequence[str | Path] = (), force: bool = False,
) -> tuple[Index, UpdateReport]:
    """An index of documents that reuses the previous index's vectors for unchanged chunk texts (a new, unsaved index)."""
    settings = settings or (previous.settings if previous else ChunkSettings())
    spec = _spec(embedder, previous.manifest if previous else None)
    old = Previous(previous) if previous is not None else None
    plan = plan_update(old, CorpusRead(list(documents)), spec, settings, force)
    folder = Path(tempfile.mkdtemp(prefix="ragkit-index-"))
    try:
        manifest, emb = apply_plan(plan, old, folder, embedder or spec, settings, progress, corpus)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Index(open_store(folder, manifest), query_embedder(embedder or spec, emb), owned=folder), plan.report


def refresh(
    path: str | Path, corpus: Sequence[str | Path], embedder: str | Embedder | None = None, *, max_tokens: int | None = None,
    overlap_turns: int | None = None, force: bool = False, dry_run: bool = False, progress: Progress | None = None,
    follow_symlinks: bool = False, strict: bool = False,
) -> tuple[Index | None, UpdateReport]:
    """Bring the index at path up to date with the corpus under the writer lock; publish only when something changed.

    Embedder and chunk settings default to the existing index's (also under force); other ones rebuild fully. A corrupt or
    newer-format index is an error unless force; a format-1 index is upgraded (its vectors reused). dry_run reports
    without writing (and returns no index). Files that cannot be read are skipped and counted; with strict they are an
    error and nothing is written. Files whose fingerprint the index recorded are not read again.
    """
    from ..readers.corpus import read_corpus_report

    location = parse_location(path)
    remote = isinstance(location, PgLocation)
    target: Location = location if isinstance(location, PgLocation) else writable_target(location)
    with contextlib.nullcontext() if dry_run else _writer_lock(target) as held:
        if not dry_run and isinstance(target, Path):
            recover(target)
            clean_leftovers(target)  # the lock proves no writer uses them
        previous = _previous(target) if not force else None
        recorded = previous.manifest if previous else recorded_manifest(target)
        settings = _settings(recorded, max_tokens, overlap_turns)
        spec = _spec(embedder, recorded)
        reason = full_rebuild_reason(previous, spec, settings, force)
        known = _known(previous) if previous is not None and not reason else None
        read = read_corpus_report(*corpus, follow_symlinks=follow_symlinks, strict=strict, known=known)
        plan = plan_update(previous, read, spec, settings, force)
        report = replace(plan.report, skipped=len(read.skipped), repaired=len(read.repaired), unrecognised=len(read.unrecognised))
        if dry_run:
            return None, report
        corpus_now = [str(Path(p).resolve()) for p in corpus]
        if previous is not None and previous.index is not None and _same(previous, plan, corpus_now):
            return previous.index, report
        with tempfile.TemporaryDirectory(prefix="ragkit-staging-") if remote else staging_directory(target) as staged:  # type: ignore[arg-type]
            tmp = Path(staged)
            manifest, _ = apply_plan(plan, previous, tmp, embedder or spec, settings, progress, corpus)
            kept = previous.manifest.get("segments", {}) if previous is not None and previous.index is not None else {}
            verify_version(tmp, manifest, [n for n in manifest["segments"] if n not in kept], records=False)  # what this run wrote
            if isinstance(target, PgLocation):
                from ..storage.postgres import publish

                if previous is not None and previous.index is not None:
                    previous.index.store.close()  # its snapshot would hold back a change of the vector column
                publish(held, target, tmp, manifest)  # type: ignore[arg-type]
            else:
                write_manifest(tmp, manifest)
                publish_directory(tmp, target)
        return Index.load(target, embedder if isinstance(embedder, Embedder) else None), replace(report, written=True)


@contextlib.contextmanager
def _writer_lock(target: Location) -> Any:
    """The writer lock of a folder index (yields its lock file) or of a PostgreSQL one (yields the locked connection)."""
    if isinstance(target, PgLocation):
        from ..storage.postgres import writer_lock

        with writer_lock(target) as conn:
            yield conn
    else:
        with index_lock(target) as path:
            yield path


def _known(previous: Previous) -> dict[str, tuple[str, str]]:
    """Indexed sources' (fingerprint, text sha256), so an update reads only files that changed."""
    return {name: (e.get("fingerprint", ""), e.get("text_sha", "")) for name, e in previous.entries.items() if e.get("fingerprint")}


def _previous(target: Location) -> Previous | None:
    """The index at target for reuse: a current one, or a format-1 one read whole to be upgraded."""
    from ..storage.legacy import read_legacy

    if isinstance(target, PgLocation):
        try:
            return Previous(Index.load(target))
        except MissingIndexError:
            return None
    if not os.path.lexists(target):
        return None
    try:
        return Previous(Index.load(target))
    except MissingIndexError:  # an empty folder: nothing to reuse
        return None
    except IndexFormatError:
        folder = resolve_index(target)
        manifest = read_manifest(folder / MANIFEST, legacy=True) if folder is not None else None
        if folder is None or manifest is None or manifest["format_version"] != LEGACY_VERSION:
            raise
        return Previous(legacy=read_legacy(folder, manifest), manifest=manifest)


def _same(previous: Previous, plan: Plan, corpus: list[str]) -> bool:
    """Nothing to write: every source kept as it was, in the same order, from the same corpus folders."""
    kept = [p.entry for p in plan.pending]
    return (
        not plan.report.reason
        and all(e is not None for e in kept)
        and [{k: e[k] for k in LOCATION} for e in kept if e is not None] == previous.manifest["sources"]
        and previous.manifest.get("corpus") == corpus
    )


def pending_update(index: Index) -> UpdateReport:
    """What `ragkit index` would do to this index now, against the corpus recorded in its manifest (writes nothing)."""
    return compare_with_corpus(index)[0]


def compare_with_corpus(index: Index) -> tuple[UpdateReport, list[SourceStatus]]:
    """pending_update's report, and each source's status, from one read of the corpus (each file hashed once)."""
    from ..errors import CorpusError
    from ..readers.corpus import read_corpus_report

    corpus = index.manifest.get("corpus") or []
    if not corpus:
        raise CorpusError("the index records no corpus folders (built from Python); run `ragkit index PATH` to compare")
    previous = Previous(index)
    # A file whose size, times and inode are as recorded is not hashed (an update hashes every file to be sure).
    stamps = {name: (e["stamp"], e["fingerprint"]) for name, e in previous.entries.items() if e.get("stamp") and e.get("fingerprint")}
    read = read_corpus_report(*corpus, known=_known(previous), stamps=stamps)
    report = plan_update(previous, read, index.manifest["embedder"]["spec"], index.settings).report
    new = tuple(s for s in read.order if s not in index.documents)
    report = replace(report, new_sources=new, skipped=len(read.skipped), repaired=len(read.repaired), unrecognised=len(read.unrecognised))
    return report, index.status(unchanged=set(read.kept))
