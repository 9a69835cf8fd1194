"""Format 1 (JSON-lines records, one FAISS file, BM25 arrays), read whole and only to upgrade it: `ragkit index`
turns such an index into the current format and reuses its vectors, so nothing is re-embedded."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..datatypes import Chunk, Document
from .diskio import read_verified
from .manifest import LEGACY_FILES, REBUILD, corrupt
from .records import chunk_from_record, document_from_record

if TYPE_CHECKING:
    import numpy as np

FAISS_FLAT_IP = b"IxFI"  # faiss fourcc of IndexFlatIP; the header then holds dim (int32) and count (int64)


def read_legacy(folder: Path, manifest: dict[str, Any]) -> tuple[list[Chunk], list[Document], np.ndarray]:
    """Chunks, documents and vectors of a format-1 index, every file hash-checked before it is parsed."""
    import numpy as np

    blobs = {name: read_verified(folder / name, manifest["files"][name], REBUILD) for name in LEGACY_FILES}
    counts, dim, vectors = manifest["counts"], manifest["embedder"]["dim"], blobs["vectors.faiss"]
    for name, key in (("chunks.jsonl", "chunks"), ("sources.jsonl", "sources")):
        if blobs[name].count(b"\n") != counts[key]:
            raise corrupt(f"{folder / name} does not hold the {counts[key]} {key} the manifest counts")
    if len(vectors) < 16 or vectors[:4] != FAISS_FLAT_IP:
        raise corrupt(f"{folder / 'vectors.faiss'} is not a FAISS IndexFlatIP file")
    got_dim, got_count = struct.unpack_from("<iq", vectors, 4)
    if (got_dim, got_count) != (dim, counts["chunks"]) or len(vectors) < 16 + 4 * got_dim * got_count:
        raise corrupt(f"{folder / 'vectors.faiss'} holds {got_count} vectors of dim {got_dim}, expected {counts['chunks']} of dim {dim}")
    chunks = [chunk_from_record(d, folder / "chunks.jsonl") for d in parse_jsonl(blobs["chunks.jsonl"], folder / "chunks.jsonl")]
    documents = [document_from_record(d, folder / "sources.jsonl") for d in parse_jsonl(blobs["sources.jsonl"], folder / "sources.jsonl")]
    # IndexFlatIP ends with its raw float32 matrix (after the header and the matrix's length), so no FAISS is needed.
    size = 4 * got_dim * got_count
    matrix = np.frombuffer(vectors, dtype="<f4", count=got_dim * got_count, offset=len(vectors) - size).reshape(got_count, got_dim)
    return chunks, documents, np.array(matrix)


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
