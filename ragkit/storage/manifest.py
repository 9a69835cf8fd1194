"""The index manifest: format version, shape checks and the counts verified before any data file is parsed."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..chunking import ChunkSettings
from ..datatypes import Document
from ..errors import IndexFormatError, RagkitError
from .diskio import read_with_sum

FORMAT_VERSION = 2
LEGACY_VERSION = 1  # JSON-lines records and one FAISS file, read whole; `ragkit index` upgrades it
LEGACY_FILES = ("chunks.jsonl", "sources.jsonl", "vectors.faiss")
REBUILD = "rebuild with `ragkit index --force`"
MANIFEST_LIMIT = 256 * 1024 * 1024
SEGMENT_NAME = re.compile(r"s\d{6}")


def corrupt(what: str) -> IndexFormatError:
    return IndexFormatError(f"index is corrupt: {what}; {REBUILD}")


def read_manifest(path: Path, legacy: bool = False) -> dict[str, Any]:
    """The manifest, parsed only after its bytes matched `manifest.json.sha256`, and checked for shape.

    A format-1 manifest is refused with the upgrade command unless `legacy` (the update that migrates it)."""
    return parse_manifest(read_with_sum(path, MANIFEST_LIMIT, REBUILD), path, legacy, path.parent)


def parse_manifest(data: bytes, path: Path | str, legacy: bool = False, location: Path | str = "") -> dict[str, Any]:
    """A manifest's bytes parsed and checked for shape; `path` names it in errors, `location` in the upgrade command."""
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise corrupt(f"{path} is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not _is_count(manifest.get("format_version"), 1):
        raise corrupt(f"{path} has no format_version")
    version = manifest["format_version"]
    if version > FORMAT_VERSION:
        raise IndexFormatError(
            f"{path}: index format version {version} is newer than this ragkit supports (version {FORMAT_VERSION}); "
            "upgrade ragkit, or rebuild the index with this version using `ragkit index --force`"
        )
    if version == LEGACY_VERSION:
        if not legacy:
            raise IndexFormatError(
                f"{path}: index format version 1 is from an older ragkit; upgrade it with `ragkit index -o {location}` "
                "(the same corpus; its vectors are reused, nothing is re-embedded), or rebuild with `ragkit index --force`"
            )
        check_common(manifest, path)
        if not isinstance(manifest.get("files"), dict) or not all(_file_entry(manifest["files"].get(n)) for n in LEGACY_FILES):
            raise corrupt(f"{path} lists no size and sha256 for its data files")
        return manifest
    check_shape(manifest, path)
    return manifest


def check_common(manifest: dict[str, Any], path: Path | str) -> None:
    """The fields every format has: embedder, chunking, counts, corpus."""
    for key, kind in (("embedder", dict), ("chunking", dict), ("counts", dict), ("sources", list)):
        if not isinstance(manifest.get(key), kind):
            raise corrupt(f"{path} lacks a valid {key!r}")
    emb = manifest["embedder"]
    if not isinstance(emb.get("spec"), str) or not _is_count(emb.get("dim"), 1):
        raise corrupt(f"{path} has no valid embedder spec and dim")
    if not isinstance(emb.get("backend", ""), str):
        raise corrupt(f"{path} has an embedder backend that is not a name")
    if not all(_is_count(manifest["counts"].get(k)) for k in ("chunks", "sources", "vectors")):
        raise corrupt(f"{path} has no valid chunk, source and vector counts")
    if not isinstance(manifest.setdefault("corpus", []), list) or not all(isinstance(c, str) for c in manifest["corpus"]):
        raise corrupt(f"{path} has an invalid 'corpus'")
    try:
        ChunkSettings(**manifest["chunking"])
    except (TypeError, RagkitError) as exc:
        raise corrupt(f"{path} has invalid chunking settings ({exc})") from exc


def _file_entry(meta: object) -> bool:
    return isinstance(meta, dict) and _is_count(meta.get("bytes")) and isinstance(meta.get("sha256"), str)


def check_shape(manifest: dict[str, Any], path: Path | str) -> None:
    """Every field load() relies on has the right type, so a bad manifest is an error, not a traceback."""
    check_common(manifest, path)
    segments = manifest.get("segments")
    if not isinstance(segments, dict):
        raise corrupt(f"{path} lacks a valid 'segments'")
    for name, seg in segments.items():
        if not (SEGMENT_NAME.fullmatch(name) and isinstance(seg, dict) and all(_is_count(seg.get(k)) for k in ("rows", "sources", "lex_rows"))
                and isinstance(seg.get("files"), dict) and all(_file_entry(m) and f.startswith(name + ".") and "/" not in f for f, m in seg["files"].items())):
            raise corrupt(f"{path} has a malformed segment entry {name!r}")
    seen: set[object] = set()
    for entry in manifest["sources"]:
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str) and isinstance(entry.get("segment"), str)
                and _is_count(entry.get("row")) and _is_count(entry.get("first_chunk")) and _is_count(entry.get("chunks"))
                and _is_count(entry.get("lex_row"), -1) and (entry["lex_row"] >= 0) == (entry["chunks"] > 0)):
            raise corrupt(f"{path} has a malformed source entry ({str(entry)[:60]})")
        place = (entry["segment"], entry["row"])
        if entry["path"] in seen or place in seen:
            raise corrupt(f"{path} lists source {entry['path']!r} twice")
        seen.update((entry["path"], place))
    if manifest["counts"]["vectors"] != manifest["counts"]["chunks"]:
        raise corrupt(f"{path} counts {manifest['counts']['chunks']} chunks but {manifest['counts']['vectors']} vectors")


def _is_count(value: object, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def canonical_spec(spec: str) -> str:
    """Specs that load the same model compare equal (`all-MiniLM-L6-v2` with or without prefixes)."""
    spec = spec if ":" in spec.split("/")[0] or spec.startswith("hash") else f"st:{spec}"
    return spec.replace("st:sentence-transformers/", "st:")


def reading(doc: Document) -> dict[str, Any]:
    """How a source was read, for `ragkit info`: format, speakers found, time span and repairs (informational)."""
    times = [t for turn in doc.turns for t in (turn.start, turn.end) if t is not None]
    return {
        "format": doc.format.lstrip("."),
        "speakers_found": len({t.speaker for t in doc.turns if t.speaker}),
        "span": [min(times), max(times)] if times else None,
        "repairs": len(doc.notes),
    }


def source_entry(doc: Document, chunks: int) -> dict[str, Any]:
    """What the manifest says of one source (shown by `ragkit info`; where it is stored is added by the writer)."""
    return {"path": doc.source, "title": doc.title, "sha256": doc.sha256, "turns": len(doc.turns), "chunks": chunks, "file": doc.path,
            "speakers": dict(doc.speaker_map), **reading(doc)}


def make_manifest(
    spec: str, dim: int, settings: ChunkSettings, corpus: Sequence[str | Path], backend: str | None,
    sources: list[dict[str, Any]], segments: dict[str, Any],
) -> dict[str, Any]:
    chunks = sum(int(e["chunks"]) for e in sources)
    return {
        "format_version": FORMAT_VERSION,
        "ragkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # backend: what embedded the vectors (onnx, onnx-int8, torch; "a+b" when a forced backend mixed int8 and fp32
        # in an incremental update); informational, never checked.
        "embedder": {"spec": canonical_spec(spec), "dim": int(dim), **({"backend": backend} if backend else {})},
        "chunking": asdict(settings),
        "corpus": [str(Path(p).resolve()) for p in corpus],
        "sources": sources,
        "segments": segments,
        "counts": {"chunks": chunks, "sources": len(sources), "vectors": chunks},
    }
