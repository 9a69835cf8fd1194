"""Query benchmarks: in-process latency, cold-process wall time and peak memory.

Run by hand (never from the tests):  python eval/bench/query_speed.py [--runs 5] [--queries 30]
Writes eval/results/query_speed.json and eval/results/query_speed.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QUESTIONS = [
    "Why is data the bottleneck?",
    "What will Alex be for Halloween?",
    "What did Dan Levine say about Dropbox?",
    "How does Scale help the US government?",
    "What is algo-raving?",
    "Where did Alex grow up?",
    "What is frontier data?",
    "Why are per-seat pricing models ending?",
]


def machine() -> dict[str, object]:
    from dataclasses import asdict

    import ragkit
    from ragkit.evaluation import machine_info, now

    return {**asdict(machine_info()), "ragkit": ragkit.__version__, "date": now()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def in_process(index_path: Path, n: int) -> dict[str, object]:
    import ragkit

    index = ragkit.Index.load(index_path)
    ragkit.ask(index, "warm up the model")
    out: dict[str, object] = {}
    for name, fn in (("search", lambda q: index.search(q, k=5)), ("ask", lambda q: ragkit.ask(index, q, k=5))):
        times = []
        for i in range(n):
            q = QUESTIONS[i % len(QUESTIONS)]
            t = time.perf_counter()
            fn(q)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = {"p50_ms": round(percentile(times, 0.5), 2), "p95_ms": round(percentile(times, 0.95), 2), "n": n}
    return out


def cold(args: list[str], runs: int, cwd: Path) -> dict[str, object]:
    """Median wall time and peak RSS of fresh `ragkit ...` processes."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "wall = time.perf_counter() - t\n"
        "print(wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)\n"
    )
    exe = shutil.which("ragkit") or "ragkit"
    walls, rss = [], []
    for _ in range(runs):
        res = subprocess.run([sys.executable, "-c", probe, exe, *args], cwd=cwd, capture_output=True, text=True, check=True)
        wall, peak, code = res.stdout.split()
        if code != "0":
            raise SystemExit(f"ragkit {' '.join(args)} failed with exit {code}")
        walls.append(float(wall))
        rss.append(int(peak) / 1024)
    return {"args": " ".join(a if " " not in a else repr(a) for a in args), "median_s": round(statistics.median(walls), 3), "runs_s": [round(w, 3) for w in walls], "peak_rss_mb": round(max(rss), 1)}


def build_peak(seeds: Path, out: Path) -> dict[str, object]:
    t = time.perf_counter()
    subprocess.run([shutil.which("ragkit") or "ragkit", "index", str(seeds), "-o", str(out)], check=True, capture_output=True)
    wall = time.perf_counter() - t
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ragkit-bench-"))
    index_path = work / "indexes" / "seeds"
    result: dict[str, object] = {"machine": machine()}
    result["build_seeds"] = build_peak(ROOT / "seeds", index_path)
    result["in_process"] = in_process(index_path, args.queries)
    result["cold"] = {
        "help": cold(["--help"], args.runs, work),
        "search": cold(["search", QUESTIONS[0], "-i", str(index_path)], args.runs, work),
        "ask": cold(["ask", QUESTIONS[0], "-i", str(index_path)], args.runs, work),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "query_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "query_speed.md").write_text(render(result))
    print(render(result))
    shutil.rmtree(work, ignore_errors=True)


def render(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Query speed",
        "",
        f"{m['date']} · {m['cores']} cores · {m['cpu']} · Python {m['python']} · ragkit {m['ragkit']}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| build seeds (cold process, wall) | {r['build_seeds']['wall_s']} s, peak RSS {r['build_seeds']['peak_rss_mb']} MB |",
    ]
    for name, v in r["in_process"].items():
        lines.append(f"| in-process {name} p50 / p95 | {v['p50_ms']} / {v['p95_ms']} ms (n={v['n']}) |")
    for v in r["cold"].values():
        lines.append(f"| cold `ragkit {v['args']}` median of {len(v['runs_s'])} | {v['median_s']} s, peak RSS {v['peak_rss_mb']} MB |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
