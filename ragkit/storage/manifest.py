"""The index manifest: format version, shape checks and the counts verified before any data file is parsed."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .chunking import ChunkSettings
from .diskio import read_with_sum
from .errors import IndexFormatError, RagkitError

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
    if not isinstance(manifest.setdefault("corpus", []), list):
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
