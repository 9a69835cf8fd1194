"""The index manifest: format version, shape checks and the counts verified before any data file is parsed."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..chunking import ChunkSettings
from ..datatypes import Chunk, Document
from ..errors import IndexFormatError, RagkitError
from .diskio import read_with_sum

FORMAT_VERSION = 1
REBUILD = "rebuild with `ragkit index --force`"
MANIFEST_LIMIT = 256 * 1024 * 1024
DATA_FILES = ("chunks.jsonl", "sources.jsonl", "vectors.faiss")
FAISS_FLAT_IP = b"IxFI"  # faiss fourcc of IndexFlatIP; the header then holds dim (int32) and count (int64)


def corrupt(what: str) -> IndexFormatError:
    return IndexFormatError(f"index is corrupt: {what}; {REBUILD}")


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, parsed only after its bytes matched `manifest.json.sha256`, and checked for shape."""
    data = read_with_sum(path, MANIFEST_LIMIT, REBUILD)
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
    check_shape(manifest, path)
    return manifest


def check_shape(manifest: dict[str, Any], path: Path) -> None:
    """Every field load() relies on has the right type, so a bad manifest is an error, not a traceback."""
    for key, kind in (("embedder", dict), ("chunking", dict), ("counts", dict), ("files", dict), ("sources", list)):
        if not isinstance(manifest.get(key), kind):
            raise corrupt(f"{path} lacks a valid {key!r}")
    emb = manifest["embedder"]
    if not isinstance(emb.get("spec"), str) or not _is_count(emb.get("dim"), 1):
        raise corrupt(f"{path} has no valid embedder spec and dim")
    if not isinstance(emb.get("backend", ""), str):
        raise corrupt(f"{path} has an embedder backend that is not a name")
    if not all(_is_count(manifest["counts"].get(k)) for k in ("chunks", "sources", "vectors")):
        raise corrupt(f"{path} has no valid chunk, source and vector counts")
    for name in DATA_FILES:
        meta = manifest["files"].get(name)
        if not (isinstance(meta, dict) and _is_count(meta.get("bytes")) and isinstance(meta.get("sha256"), str)):
            raise corrupt(f"{path} lists no size and sha256 for {name}")
    for entry in manifest["sources"]:
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("path", "title", "sha256", "file"))
                and _is_count(entry.get("turns")) and _is_count(entry.get("chunks")) and isinstance(entry.get("speakers", {}), dict)):
            raise corrupt(f"{path} has a malformed source entry ({str(entry)[:60]})")
    if not isinstance(manifest.setdefault("corpus", []), list) or not all(isinstance(c, str) for c in manifest["corpus"]):
        raise corrupt(f"{path} has an invalid 'corpus'")
    try:
        ChunkSettings(**manifest["chunking"])
    except (TypeError, RagkitError) as exc:
        raise corrupt(f"{path} has invalid chunking settings ({exc})") from exc


def _is_count(value: object, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_before_parse(manifest: dict[str, Any], chunks: bytes, sources: bytes, vectors: bytes, folder: Path) -> None:
    """Line counts and the FAISS header agree with the manifest, checked on raw bytes (no JSON parser, no FAISS)."""
    counts, dim = manifest["counts"], manifest["embedder"]["dim"]
    if counts["vectors"] != counts["chunks"]:
        raise corrupt(f"{folder / 'manifest.json'} counts {counts['chunks']} chunks but {counts['vectors']} vectors")
    for name, data, key in (("chunks.jsonl", chunks, "chunks"), ("sources.jsonl", sources, "sources")):
        lines = data.count(b"\n")  # json.dumps escapes newlines, so one record is one line
        if lines != counts[key] or (data and not data.endswith(b"\n")):
            raise corrupt(f"{folder / name} holds {lines} lines, manifest counts {counts[key]} {key}")
    if len(vectors) < 16 or vectors[:4] != FAISS_FLAT_IP:
        raise corrupt(f"{folder / 'vectors.faiss'} is not a FAISS IndexFlatIP file")
    got_dim, got_count = struct.unpack_from("<iq", vectors, 4)
    if (got_dim, got_count) != (dim, counts["vectors"]) or len(vectors) < 16 + 4 * got_dim * got_count:
        raise corrupt(
            f"{folder / 'vectors.faiss'} holds {got_count} vectors of dim {got_dim}, "
            f"manifest says {counts['vectors']} of dim {dim} (one per chunk)"
        )


def parse_jsonl(data: bytes, path: Path) -> Iterable[dict[str, Any]]:
    """Records of verified JSON-lines bytes; a bad line is an IndexFormatError naming the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise corrupt(f"{path} is not UTF-8 ({exc})") from exc
    out = []
    for n, line in enumerate(text.split("\n")[:-1], start=1):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise corrupt(f"{path} line {n} is not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise corrupt(f"{path} line {n} is not a JSON object")
        out.append(record)
    return out


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


def make_manifest(
    documents: Sequence[Document], chunks: Sequence[Chunk], spec: str, dim: int, settings: ChunkSettings, corpus: Sequence[str | Path] = (),
    backend: str | None = None,
) -> dict[str, Any]:
    per_source: dict[str, int] = {}
    for c in chunks:
        per_source[c.source] = per_source.get(c.source, 0) + 1
    return {
        "format_version": FORMAT_VERSION,
        "ragkit_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # backend: what embedded the vectors (onnx, onnx-int8, torch; "a+b" when a forced backend mixed int8 and fp32
        # in an incremental update); informational, never checked.
        "embedder": {"spec": canonical_spec(spec), "dim": int(dim), **({"backend": backend} if backend else {})},
        "chunking": asdict(settings),
        "corpus": [str(Path(p).resolve()) for p in corpus],
        "sources": [
            {"path": d.source, "title": d.title, "sha256": d.sha256, "turns": len(d.turns), "chunks": per_source.get(d.source, 0), "file": d.path,
             "speakers": dict(d.speaker_map), **reading(d)}
            for d in documents
        ],
        "counts": {"chunks": len(chunks), "sources": len(documents), "vectors": len(chunks)},
        "files": {},
    }
