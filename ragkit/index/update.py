"""Incremental updates: re-embed only chunk texts the index lacks; the result equals a full rebuild."""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..chunking import ChunkSettings, chunk_corpus
from ..datatypes import Chunk, Document
from ..embed import DEFAULT_EMBEDDER, INT8_BACKEND, Embedder, load_embedder, refuse_code_spec
from ..errors import MissingIndexError, RagkitError
from ..storage.diskio import clean_leftovers, recover, resolve_index, writable_target
from ..storage.lock import index_lock
from ..storage.manifest import canonical_spec, make_manifest, read_manifest
from ..storage.vectors import FaissStore
from .core import MANIFEST, Index, query_embedder

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


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
    """The chunks an update will hold and which texts must be embedded."""

    chunks: list[Chunk]
    reuse: dict[str, int]  # chunk text -> row of the previous index's vectors
    missing: list[str]  # distinct texts to embed, in first-use order
    report: UpdateReport


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


def full_rebuild_reason(previous: Index | None, spec: str, settings: ChunkSettings, force: bool = False) -> str:
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


def plan_update(previous: Index | None, documents: Sequence[Document], spec: str, settings: ChunkSettings, force: bool = False) -> Plan:
    """Chunk the documents and decide, by exact chunk text, which vectors the previous index already holds."""
    chunks = chunk_corpus(documents, settings)
    reason = full_rebuild_reason(previous, spec, settings, force)
    reuse: dict[str, int] = {}
    if previous is not None and not reason:
        for row, chunk in enumerate(previous.chunks):
            reuse.setdefault(chunk.text, row)
    missing = list(dict.fromkeys(c.text for c in chunks if c.text not in reuse))
    added, changed, removed, unchanged = diff_chunks(previous.chunks if previous else [], chunks)
    report = UpdateReport(added, changed, removed, unchanged, len(missing), len(chunks), len(documents), bool(reason), reason)
    return Plan(chunks, reuse, missing, report)


def apply_plan(
    plan: Plan, previous: Index | None, documents: Sequence[Document], embedder: str | Embedder, settings: ChunkSettings,
    progress: Progress | None = None, corpus: Sequence[str | Path] = (),
) -> Index:
    """The new in-memory index: reused vectors where the text is known, fresh embeddings for the rest."""
    import numpy as np

    reused = previous.manifest["embedder"].get("backend") if plan.reuse and previous else None
    # Under "auto", new chunks join reused vectors at the same precision: int8 only beside int8 (an index from
    # before int8 builds records no backend and holds fp32 vectors).
    emb = load_embedder(embedder, build=not plan.reuse or reused == INT8_BACKEND)
    dim = int(previous.manifest["embedder"]["dim"]) if plan.reuse and previous else int(emb.dim)
    fresh = emb.embed(plan.missing, progress=progress) if plan.missing else np.zeros((0, dim), np.float32)
    if fresh.shape[1] != dim:
        raise RagkitError(f"embedder {emb.spec!r} now gives {fresh.shape[1]}-dim vectors but the index holds {dim}-dim ones; rebuild with `ragkit index --force`")
    vectors = _assemble(plan, previous.store.vectors() if plan.reuse and previous else None, fresh, dim)
    backend = getattr(emb, "backend", None)
    if plan.reuse:
        backend = merged_backend(reused, backend) if plan.missing else reused
    manifest = make_manifest(documents, plan.chunks, emb.spec, dim, settings, corpus, backend)
    return Index(plan.chunks, FaissStore.from_vectors(vectors), documents, manifest, query_embedder(embedder, emb))


def merged_backend(reused: str | None, new: str | None) -> str | None:
    """The manifest's backend once `new` vectors join `reused` ones: `new`, or "a+b" when a forced --embedder-backend
    put int8 and fp32 vectors side by side (an index from before the field records none and holds fp32)."""
    kinds = reused.split("+") if reused else [None]
    if all((kind == INT8_BACKEND) == (new == INT8_BACKEND) for kind in kinds):
        return new
    return "+".join(dict.fromkeys([*(kind or "fp32" for kind in kinds), new or "fp32"]))


def _assemble(plan: Plan, old: np.ndarray | None, fresh: np.ndarray, dim: int) -> np.ndarray:
    import numpy as np

    out = np.zeros((len(plan.chunks), dim), np.float32)
    position = {text: i for i, text in enumerate(plan.missing)}
    for i, chunk in enumerate(plan.chunks):
        row = plan.reuse.get(chunk.text)
        out[i] = old[row] if row is not None and old is not None else fresh[position[chunk.text]]
    return out


def update_index(
    previous: Index | None, documents: Sequence[Document], embedder: str | Embedder | None = None, settings: ChunkSettings | None = None,
    progress: Progress | None = None, *, corpus: Sequence[str | Path] = (), force: bool = False,
) -> tuple[Index, UpdateReport]:
    """An index of documents that reuses the previous index's vectors for unchanged chunk texts (in memory, nothing written)."""
    settings = settings or (previous.settings if previous else ChunkSettings())
    spec = _spec(embedder, previous.manifest if previous else None)
    plan = plan_update(previous, documents, spec, settings, force)
    return apply_plan(plan, previous, documents, embedder or spec, settings, progress, corpus), plan.report


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


def recorded_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest of the index at path when it is readable (for defaults even under --force), else None."""
    folder = resolve_index(Path(path))
    if folder is None:
        return None
    try:
        return read_manifest(folder / MANIFEST)
    except RagkitError:
        return None


def recorded_corpus(path: str | Path) -> list[str]:
    """The corpus folders the index at path was built from ([] when there is no readable index)."""
    manifest = recorded_manifest(path)
    return [str(p) for p in manifest["corpus"]] if manifest else []


def refresh(
    path: str | Path, corpus: Sequence[str | Path], embedder: str | Embedder | None = None, *, max_tokens: int | None = None,
    overlap_turns: int | None = None, force: bool = False, dry_run: bool = False, progress: Progress | None = None,
    follow_symlinks: bool = False, strict: bool = False,
) -> tuple[Index | None, UpdateReport]:
    """Bring the index at path up to date with the corpus under the writer lock; publish only when something changed.

    Embedder and chunk settings default to the existing index's (also under force); other ones rebuild fully. A corrupt or
    newer-format index is an error unless force. dry_run reports without writing (and returns no index). Files that
    cannot be read are skipped and counted; with strict they are an error and nothing is written.
    """
    from ..readers.corpus import read_corpus_report

    target = writable_target(Path(path))
    with contextlib.nullcontext() if dry_run else index_lock(target):
        if not dry_run:
            recover(target)
            clean_leftovers(target)  # the lock proves no writer uses them
        previous = _previous(target) if not force else None
        recorded = previous.manifest if previous else recorded_manifest(target)
        read = read_corpus_report(*corpus, follow_symlinks=follow_symlinks, strict=strict)
        documents = read.documents
        settings = _settings(recorded, max_tokens, overlap_turns)
        spec = _spec(embedder, recorded)
        plan = plan_update(previous, documents, spec, settings, force)
        report = replace(plan.report, skipped=len(read.skipped), repaired=len(read.repaired), unrecognised=len(read.unrecognised))
        plan = replace(plan, report=report)
        if dry_run:
            return None, plan.report
        corpus_now = [str(Path(p).resolve()) for p in corpus]
        if previous is not None and _same(previous, plan, documents, corpus_now):
            return previous, plan.report
        index = apply_plan(plan, previous, documents, embedder or spec, settings, progress, corpus)
        index.save(target)
        return index, replace(plan.report, written=True)


def _previous(target: Path) -> Index | None:
    if not os.path.lexists(target):
        return None
    try:
        return Index.load(target)
    except MissingIndexError:  # an empty folder: nothing to reuse
        return None


def _same(previous: Index, plan: Plan, documents: Sequence[Document], corpus: list[str]) -> bool:
    return (
        not plan.report.reason
        and previous.chunks == plan.chunks
        and list(previous.documents.values()) == list(documents)
        and previous.manifest.get("corpus") == corpus
    )


def pending_update(index: Index) -> UpdateReport:
    """What `ragkit index` would do to this index now, against the corpus recorded in its manifest (writes nothing)."""
    from ..errors import CorpusError
    from ..readers.corpus import read_corpus_report

    corpus = index.manifest.get("corpus") or []
    if not corpus:
        raise CorpusError("the index records no corpus folders (built from Python); run `ragkit index PATH` to compare")
    read = read_corpus_report(*corpus)
    report = plan_update(index, read.documents, index.manifest["embedder"]["spec"], index.settings).report
    new = tuple(d.source for d in read.documents if d.source not in index.documents)
    return replace(report, new_sources=new, skipped=len(read.skipped), repaired=len(read.repaired), unrecognised=len(read.unrecognised))
