"""Incremental update vs full rebuild on the QMSum test set, with the real model, through the CLI.

Run by hand (never from the tests):  python eval/bench/incremental.py [--qmsum DIR] [-e SPEC]
Copies the corpus to a temp folder, builds an index, edits one turn of one meeting, then times
`ragkit index` (incremental) against a full rebuild of the edited corpus, and checks both give the
same chunks, vectors and search results. Writes eval/results/incremental.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QMSUM = Path("/work/shared/datasets/qmsum/test")
QUERIES = ["what did the group decide about the remote control design", "budget and cost of the project", "speech recognition error rates"]


def ragkit(*args: str) -> tuple[float, dict]:
    """Wall seconds of one `ragkit ... --json` process (interpreter start and model load included) and its JSON."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ragkit.cli", *args, "--json"], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ragkit {' '.join(args)} failed:\n{proc.stderr}")
    return round(seconds, 2), json.loads(proc.stdout)


def edit_one_turn(corpus: Path) -> dict[str, object]:
    """Append a sentence to the middle turn of the first meeting, editing the JSON text in place."""
    path = sorted(corpus.glob("*.json"))[0]
    text = path.read_text(encoding="utf-8")
    turns = json.loads(text)["meeting_transcripts"]
    turn = len(turns) // 2
    old = json.dumps(turns[turn]["content"], ensure_ascii=False)[1:-1]
    new = old + " And one more thing about the budget for the remote."
    assert old in text, "the turn's JSON text was not found verbatim"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return {"file": path.name, "turn": turn, "turns_in_file": len(turns)}


def compare(incremental: Path, full: Path) -> dict[str, object]:
    import numpy as np

    from ragkit.index.core import Index

    a, b = Index.load(incremental), Index.load(full)
    same_hits = all([h.chunk.id for h in a.search(q, k=10)] == [h.chunk.id for h in b.search(q, k=10)] for q in QUERIES)
    return {
        "same_chunks": a.chunks == b.chunks,
        "same_documents": list(a.documents.values()) == list(b.documents.values()),
        "max_abs_vector_difference": float(np.abs(a.store.vectors() - b.store.vectors()).max()),
        "same_top10_for_queries": same_hits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=QMSUM)
    parser.add_argument("-e", "--embedder", default="st:all-MiniLM-L6-v2")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus, idx, full = Path(tmp) / "qmsum", Path(tmp) / "idx", Path(tmp) / "full"
        shutil.copytree(args.qmsum, corpus)
        build_s, build = ragkit("index", str(corpus), "-o", str(idx), "-e", args.embedder)
        noop_s, noop = ragkit("index", "-o", str(idx))
        edit = edit_one_turn(corpus)
        dry_s, dry = ragkit("index", "-o", str(idx), "--dry-run")
        update_s, update = ragkit("index", "-o", str(idx))
        rebuild_s, rebuild = ragkit("index", str(corpus), "-o", str(full), "-e", args.embedder)
        identical = compare(idx, full)
    keys = ("added", "changed", "removed", "unchanged", "embedded", "chunks", "sources")
    result = {
        "what": "ragkit index after editing one turn of one QMSum test meeting: incremental update vs full rebuild",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "corpus": {"path": str(args.qmsum), "files": build["sources"], "chunks": build["chunks"]},
        "embedder": args.embedder,
        "edit": edit,
        "seconds": {
            "note": "wall time of one CLI process (interpreter start and model load included); in_process excludes start-up",
            "first_full_build": build_s,
            "incremental_update": update_s,
            "full_rebuild_after_edit": rebuild_s,
            "unchanged_corpus_update": noop_s,
            "dry_run": dry_s,
            "in_process": {"first_full_build": build["seconds"], "incremental_update": update["seconds"], "full_rebuild_after_edit": rebuild["seconds"]},
        },
        "speedup_incremental_vs_full_rebuild": round(rebuild_s / update_s, 1),
        "incremental_counts": {k: update[k] for k in keys},
        "dry_run_counts": {k: dry[k] for k in keys},
        "unchanged_corpus_counts": {k: noop[k] for k in keys} | {"written": noop["written"]},
        "incremental_equals_full_rebuild": identical,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "incremental.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
