"""Index-build embedding speed: bare sentence-transformers vs ragkit's torch and ONNX backends, plus equivalence.

Run by hand (never from the tests):  python eval/bench/build_speed.py [--qmsum DIR] [--skip-qmsum]
Measures, in one run on this machine: chunks/s and tokens/s (tokens = the model's word pieces after its
256-piece truncation) for a bare `SentenceTransformer.encode`, ragkit's torch backend and ragkit's ONNX backend
(fp32 and int8) on the seeds and the QMSum test meetings; the one-time export time; import times and cold
single-query latency per backend; cosine agreement of the vectors; top-5 retrieval agreement on QMSum queries.
The export goes to a fresh temporary cache. Writes eval/results/build_speed.json and build_speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QMSUM = Path("/work/shared/datasets/qmsum/test")
PACKAGES = ("torch", "sentence-transformers", "transformers", "onnxruntime", "onnx", "tokenizers", "numpy")
QUERY = "why is data the bottleneck rather than compute?"
sys.path.insert(0, str(ROOT))


def machine() -> dict[str, object]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")), "")
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu": cpu, "platform": platform.platform(),
        "python": platform.python_version(), "versions": versions, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run_child(code: str, env: dict[str, str]) -> tuple[float, dict]:
    """Wall seconds of a fresh interpreter running `code` (which prints one JSON line) and that JSON."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def import_times(env: dict[str, str], runs: int) -> dict[str, float]:
    """Median cold import seconds of each heavy module, each in its own fresh process."""
    out = {}
    for module in ("numpy", "tokenizers", "onnxruntime", "torch", "sentence_transformers"):
        code = f"import time, json; t = time.perf_counter(); import {module}; print(json.dumps({{'s': time.perf_counter() - t}}))"
        out[module] = round(statistics.median(run_child(code, env)[1]["s"] for _ in range(runs)), 3)
    return out


QUERY_CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from ragkit.embed import load_embedder
emb = load_embedder('st:all-MiniLM-L6-v2', backend=sys.argv[1] if len(sys.argv) > 1 else '{backend}')
t1 = time.perf_counter()
emb.embed([{query!r}])
t2 = time.perf_counter()
warm = []
for _ in range(20):
    s = time.perf_counter(); emb.embed([{query!r}]); warm.append(time.perf_counter() - s)
warm.sort()
print(json.dumps({{'load_s': t1 - t0, 'first_query_s': t2 - t1, 'warm_query_ms': warm[10] * 1000,
                  'torch_imported': 'torch' in sys.modules, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def query_latency(backend: str, env: dict[str, str], runs: int) -> dict[str, object]:
    """Cold single-query numbers of one backend: process wall (interpreter included), phases, warm latency, RSS."""
    rows = [run_child(QUERY_CHILD.format(backend=backend, query=QUERY), env) for _ in range(runs)]
    med = lambda key: round(statistics.median(r[1][key] for r in rows), 3)  # noqa: E731
    return {
        "process_wall_s": round(statistics.median(r[0] for r in rows), 3), "load_embedder_s": med("load_s"),
        "first_query_s": med("first_query_s"), "warm_query_ms": med("warm_query_ms"), "peak_rss_mb": med("rss_mb"),
        "torch_imported": rows[0][1]["torch_imported"], "runs": runs,
    }


def export_time(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json, time; t = time.perf_counter()\n"
        "from ragkit.embed.onnx_embedder import OnnxEmbedder\n"
        "e = OnnxEmbedder(); p = e.ensure_export(); t1 = time.perf_counter()\n"
        "q = OnnxEmbedder(quantize=True); q.ensure_export(); t2 = time.perf_counter()\n"
        "print(json.dumps({'export_s': t1 - t, 'quantize_s': t2 - t1, 'meta': json.loads((p.parent / 'export.json').read_text()), 'int8': q.int8_check()}))"
    )
    wall, data = run_child(code, env)
    return {"process_wall_s": round(wall, 2), "export_s": round(data["export_s"], 2), "quantize_s": round(data["quantize_s"], 2), "meta": data["meta"],
            "int8_check": data["int8"]}


def corpora(qmsum: Path | None) -> dict[str, list]:
    """Chunks of the seeds and of the QMSum test meetings, chunked with ragkit's default settings."""
    from ragkit import read_corpus, read_document
    from ragkit.chunking import chunk_corpus

    out = {"seeds": chunk_corpus(read_corpus(ROOT / "seeds"))}
    if qmsum is not None:
        out["qmsum"] = chunk_corpus([read_document(p) for p in sorted(qmsum.glob("*.json"))])
    return out


def embedders() -> dict[str, object]:
    """name -> function(texts) -> normalized vectors; model loading happens here, outside the timings."""
    from sentence_transformers import SentenceTransformer

    from ragkit.embed import SentenceTransformerEmbedder, resolve_model
    from ragkit.embed.onnx_embedder import OnnxEmbedder

    bare = SentenceTransformer(resolve_model("all-MiniLM-L6-v2"), device="cpu")
    torch_backend, fp32, int8 = SentenceTransformerEmbedder(), OnnxEmbedder(), OnnxEmbedder(quantize=True)
    return {
        "bare SentenceTransformer.encode": lambda texts: bare.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True),
        "ragkit torch backend": torch_backend.embed,
        "ragkit onnx fp32": fp32.embed,
        "ragkit onnx int8": int8.embed,
    }


def _cpu_seconds() -> float:
    """CPU time of this process, all threads: a busy machine stretches wall time far more than this."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def interleaved(fns: dict[str, object], texts: list[str], tokens: int, rounds: int, split: bool) -> tuple[dict, dict]:
    """Time every variant round-robin (rotating who goes first) so a busy shared machine slows all of them alike.

    split: each round embeds the next 1/rounds of the corpus (times summed); else each round embeds it all (median).
    """
    import numpy as np

    for fn in fns.values():
        fn(texts[:8])  # warm-up: first-call allocations and lazy sessions stay out of the timings
    names = list(fns)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    cpu_seconds: dict[str, list[float]] = {n: [] for n in names}
    parts = {n: [] for n in names}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        piece = texts[r * len(texts) // rounds : (r + 1) * len(texts) // rounds] if split else texts
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started, cpu = time.perf_counter(), _cpu_seconds()
            vectors = fns[name](piece)
            seconds[name].append(time.perf_counter() - started)
            cpu_seconds[name].append(_cpu_seconds() - cpu)
            if split or r == 0:
                parts[name].append(vectors)
        loads.append(os.getloadavg()[0])
    rows = {}
    for name in names:
        s = sum(seconds[name]) if split else statistics.median(seconds[name])
        c = sum(cpu_seconds[name]) if split else statistics.median(cpu_seconds[name])
        rows[name] = {"seconds": round(s, 2), "chunks_per_s": round(len(texts) / s, 1), "tokens_per_s": round(tokens / s),
                      "cpu_seconds": round(c, 2), "tokens_per_cpu_s": round(tokens / c)}
    load = {"rounds": rounds, "split": split, "loadavg_1min_min_max": [round(min(loads), 2), round(max(loads), 2)]}
    return {"variants": rows, "timing": load}, {n: np.concatenate(parts[n]) for n in names}


def cosine_stats(a, b) -> dict[str, float]:  # noqa: ANN001
    import numpy as np

    cos = (a * b).sum(axis=1)
    return {"min": round(float(cos.min()), 8), "p1": round(float(np.percentile(cos, 1)), 8), "p5": round(float(np.percentile(cos, 5)), 8),
            "mean": round(float(cos.mean()), 8), "n": int(len(cos))}


def qmsum_queries(qmsum: Path) -> list[tuple[str, str]]:
    out = []
    for path in sorted(qmsum.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out += [(path.name, q["query"]) for q in data.get("specific_query_list", []) + data.get("general_query_list", [])]
    return out


def retrieval_agreement(chunks: list, vectors: dict[str, object], fns: dict[str, object], queries: list[tuple[str, str]], k: int = 5) -> dict[str, object]:
    """Per-meeting top-k of each variant (its own index and query vectors) against bare sentence-transformers."""
    import numpy as np

    texts = [q for _, q in queries]
    qvecs = {name: fn(texts) for name, fn in fns.items()}
    combos = {name: (name, name) for name in fns} | {"int8 index, fp32 queries": ("ragkit onnx int8", "ragkit onnx fp32")}
    ref_name = "bare SentenceTransformer.encode"

    def top(index_name: str, query_name: str, i: int, source: str) -> list[int]:
        ids = [j for j, c in enumerate(chunks) if c.source == source]
        scores = vectors[index_name][ids] @ qvecs[query_name][i]
        return [ids[j] for j in np.argsort(-scores, kind="stable")[:k]]

    out = {}
    for label, (index_name, query_name) in combos.items():
        overlaps, same = [], 0
        for i, (source, _) in enumerate(queries):
            ref, got = top(ref_name, ref_name, i, source), top(index_name, query_name, i, source)
            overlaps.append(len(set(ref) & set(got)) / k)
            same += ref == got
        out[label] = {f"mean_overlap_at_{k}": round(float(np.mean(overlaps)), 4), f"identical_top_{k}": round(same / len(queries), 4)}
    return {"queries": len(queries), "k": k, "vs": ref_name, "variants": out}


def equivalence(fns: dict[str, object]) -> dict[str, object]:
    """Cosine of each variant's vectors against bare sentence-transformers (and int8 against fp32) on 1100 varied texts."""
    from tests.test_onnx import varied_texts

    texts = varied_texts()
    vecs = {name: fn(texts) for name, fn in fns.items()}
    ref = vecs["bare SentenceTransformer.encode"]
    out = {f"{name} vs bare": cosine_stats(v, ref) for name, v in vecs.items() if v is not ref}
    out["ragkit onnx int8 vs ragkit onnx fp32"] = cosine_stats(vecs["ragkit onnx int8"], vecs["ragkit onnx fp32"])
    return out


def speeds(chunks_by_corpus: dict[str, list], fns: dict[str, object]) -> tuple[dict, dict]:
    from ragkit.embed.onnx_embedder import OnnxEmbedder, layout_tokenizer

    tokenizer = layout_tokenizer(OnnxEmbedder().layout)
    results, vectors = {}, {}
    for corpus, chunks in chunks_by_corpus.items():
        texts = [c.text for c in chunks]
        tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts))
        print(f"  {corpus}: {len(texts)} chunks ...", file=sys.stderr, flush=True)
        big = len(texts) > 500
        result, vectors[corpus] = interleaved(fns, texts, tokens, rounds=12 if big else 5, split=big)
        bare = result["variants"]["bare SentenceTransformer.encode"]
        for row in result["variants"].values():
            row["speedup_vs_bare"] = round(row["tokens_per_s"] / bare["tokens_per_s"], 2)
            row["cpu_speedup_vs_bare"] = round(row["tokens_per_cpu_s"] / bare["tokens_per_cpu_s"], 2)
        results[corpus] = {"chunks": len(texts), "word_pieces": tokens, **result}
    return results, vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=QMSUM)
    parser.add_argument("--skip-qmsum", action="store_true")
    parser.add_argument("--runs", type=int, default=5, help="cold processes per query/import measurement")
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="ragkit-bench-cache-"))
    os.environ["RAGKIT_CACHE_DIR"] = str(cache)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        report: dict[str, object] = {"machine": machine()}
        print("export ...", file=sys.stderr, flush=True)
        report["export"] = export_time(env)
        print("imports and cold queries ...", file=sys.stderr, flush=True)
        report["import_s"] = import_times(env, args.runs)
        report["query"] = {b: query_latency(b, env, args.runs) for b in ("onnx", "torch")}
        qmsum = None if args.skip_qmsum else args.qmsum
        fns = embedders()
        report["build"], vectors = speeds(corpora(qmsum), fns)
        print("equivalence ...", file=sys.stderr, flush=True)
        report["cosine"] = equivalence(fns)
        if qmsum is not None:
            chunks = corpora(qmsum)["qmsum"]
            report["retrieval_agreement"] = retrieval_agreement(chunks, vectors["qmsum"], fns, qmsum_queries(qmsum))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "build_speed.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "build_speed.md").write_text(render(report), encoding="utf-8")
    print(render(report))


def render(r: dict) -> str:
    m, e = r["machine"], r["export"]
    lines = [
        "# Build speed: sentence-transformers vs ragkit torch and ONNX backends", "",
        f"{m['date']} · {m['usable_cores']} cores · {m['cpu']} · Python {m['python']} · "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v), "",
        "Produced by `python eval/bench/build_speed.py`. tokens = the model's word pieces after its 256-piece truncation. "
        "The machine is shared with other jobs; the load average during each run is recorded.", "",
        "## Embedding throughput (index build)", "",
        "Variants run round-robin in the same process (rotating which goes first), so background load hits all alike. "
        "`ragkit onnx int8` (smoothed int8, see ragkit/quantize.py) is what `ragkit index` embeds with by default; "
        "queries use `ragkit onnx fp32`. Retrieval quality of that default against sentence-transformers: eval/results/backend_quality.md.", "",
        "tokens/CPU-s divides by the CPU time of all the process's threads: less sensitive to other jobs than wall time.", "",
        "| corpus | variant | chunks/s | tokens/s | speed-up vs bare | seconds | tokens/CPU-s | CPU speed-up |", "|---|---|---|---|---|---|---|---|",
    ]
    for corpus, data in r["build"].items():
        for name, row in data["variants"].items():
            lines.append(f"| {corpus} ({data['chunks']} chunks, {data['word_pieces']} pieces) | {name} | {row['chunks_per_s']} | "
                         f"{row['tokens_per_s']} | {row['speedup_vs_bare']}x | {row['seconds']} | {row['tokens_per_cpu_s']} | {row['cpu_speedup_vs_bare']}x |")
    for corpus, data in r["build"].items():
        t = data["timing"]
        how = f"{t['rounds']} slices, times summed" if t["split"] else f"median of {t['rounds']} full passes"
        lines.append(f"\n{corpus}: {how}; 1-minute load average during the run {t['loadavg_1min_min_max'][0]}-{t['loadavg_1min_min_max'][1]}.")
    lines += ["", "## One-time export and imports", "",
              f"- export (fresh cache, includes importing torch): {e['export_s']} s in-process, {e['process_wall_s']} s process wall; "
              f"int8 quantization {e['quantize_s']} s; fused ops {e['meta'].get('fused')}; max |onnx - torch| {e['meta']['max_abs_error']:.2g}",
              f"- int8 accuracy check on the calibration text: cosine to fp32 mean {e['int8_check']['cosine_mean']}, min {e['int8_check']['cosine_min']} "
              f"over {e['int8_check']['texts']} texts; passed: {e['int8_check']['passed']} (`ragkit index` builds with int8 only when it passes)",
              "- cold import, median: " + ", ".join(f"`{k}` {v} s" for k, v in r["import_s"].items()), "",
              "## Single query, cold process (median)", "",
              "| backend | process wall | load_embedder | first query | warm query | peak RSS | torch imported |", "|---|---|---|---|---|---|---|"]
    for backend, q in r["query"].items():
        lines.append(f"| {backend} | {q['process_wall_s']} s | {q['load_embedder_s']} s | {q['first_query_s']} s | {q['warm_query_ms']:.1f} ms | "
                     f"{q['peak_rss_mb']:.0f} MB | {q['torch_imported']} |")
    lines += ["", "## Vector agreement (cosine, 1100 varied texts incl. >256-piece, unicode, punctuation-only, empty)", "",
              "| pair | min | p1 | p5 | mean |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['min']} | {v['p1']} | {v['p5']} | {v['mean']} |" for k, v in r["cosine"].items()]
    if "retrieval_agreement" in r:
        ra = r["retrieval_agreement"]
        lines += ["", f"## Retrieval agreement with bare sentence-transformers ({ra['queries']} QMSum queries, per meeting, top {ra['k']})", "",
                  "| variant | mean overlap@5 | identical top 5 |", "|---|---|---|"]
        lines += [f"| {k} | {v['mean_overlap_at_5']} | {v['identical_top_5']} |" for k, v in ra["variants"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
