"""Load on loopback against `ragkit serve`: 8 concurrent search clients for 30 s, then 1 client asking while
`ragkit index` rebuilds the index under it.

Run by hand (never from the tests):
    python eval/bench/serve_load.py [--episodes 500] [--seconds 30] [--clients 8]
It writes a deterministic synthetic archive (podcast-format episodes of 200 turns, words drawn from the seeds so
BM25 is realistic), indexes it with the hash embedder, starts `ragkit serve` in its own process and measures:
requests/s, p50/p99 latency, errors, and the server's memory (VmRSS and RssAnon from /proc). Writes
eval/results/serve_load.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
SPEAKERS = ["Ana Ruiz", "Bo Chen", "Carla Diaz", "Dev Patel", "Eli Stone", "Fay Wong"]


def write_archive(folder: Path, episodes: int, seed: int = 7) -> None:
    words = re.findall(r"[A-Za-z']+", " ".join(p.read_text(encoding="utf-8") for p in (ROOT / "seeds").glob("*.*") if p.suffix in (".txt", ".md")))
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for ep in range(episodes):
        lines, t = [], 0
        for _ in range(200):
            t += rng.randint(5, 40)
            text = " ".join(rng.choice(words) for _ in range(rng.randint(8, 40))).capitalize() + "."
            lines.append(f"{rng.choice(SPEAKERS)} ({t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}): {text}")
        (folder / f"episode-{ep:04d}.txt").write_text("\n\n".join(lines) + "\n", encoding="utf-8")


def memory(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) // 1024 for key in ("VmRSS", "RssAnon")}  # type: ignore[union-attr]


def start_server(index: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "ragkit.cli", "serve", "-i", str(index), "--port", "0"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    line = ""
    while "serving" not in line:
        line = proc.stderr.readline()  # type: ignore[union-attr]
        if not line and proc.poll() is not None:
            raise RuntimeError("ragkit serve did not start")
    return proc, "/".join(line.split(" at ", 1)[1].split("/", 3)[:3])


def hammer(base: str, path: str, queries: list[str], seconds: float, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            i = n
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    ok = http.get(path, params={"q": queries[i % len(queries)]}).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    latencies.append(time.perf_counter() - t)
                    errors[0] += not ok
                i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    latencies.sort()
    return {"requests": len(latencies), "requests_per_s": round(len(latencies) / seconds, 1), "errors": errors[0],
            "p50_ms": round(1000 * statistics.median(latencies), 1), "p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    rng = random.Random(1)
    queries = [" ".join(rng.choice(["data", "compute", "model", "Scale", "costume", "founders", "government", "labeling",
                                    "physics", "Halloween", "China", "enterprise", "chips", "video"]) for _ in range(3)) for _ in range(50)]
    with tempfile.TemporaryDirectory() as tmp:
        corpus, index = Path(tmp) / "archive", Path(tmp) / "idx"
        write_archive(corpus, args.episodes)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(index), "-e", "hash:256"], check=True, capture_output=True, cwd=ROOT)
        build = time.perf_counter() - started
        chunks = json.loads((index / "manifest.json").read_text())["counts"]["chunks"]
        proc, base = start_server(index)
        try:
            httpx.get(f"{base}/api/search", params={"q": "warm up"}, timeout=120)
            loaded = memory(proc.pid)
            search = hammer(base, "/api/search", queries, args.seconds, args.clients)
            after = memory(proc.pid)
            # One client asking while the index is rebuilt from scratch and published under the server.
            episode = corpus / "episode-0000.txt"
            episode.write_text(episode.read_text(encoding="utf-8") + "\nAna Ruiz (9:59:59): A new closing line.\n", encoding="utf-8")
            rebuild = subprocess.Popen([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(index), "--force", "-e", "hash:256"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
            asked = {"requests": 0, "errors": 0}
            with httpx.Client(base_url=base, timeout=120) as http:
                while rebuild.poll() is None:
                    ok = http.get("/api/ask", params={"q": queries[asked["requests"] % len(queries)]}).status_code == 200
                    asked["requests"] += 1
                    asked["errors"] += not ok
                for _ in range(3):  # and after the new version is published
                    ok = http.get("/api/ask", params={"q": queries[0]}).status_code == 200
                    asked["requests"] += 1
                    asked["errors"] += not ok
            rebuild_code = rebuild.wait()
        finally:
            proc.terminate()
            proc.wait(30)
    load = os.getloadavg()[0]
    result = {"episodes": args.episodes, "chunks": chunks, "build_s": round(build, 1), "clients": args.clients, "seconds": args.seconds,
              "search": search, "memory_mb_after_load": loaded, "memory_mb_after_load_test": after,
              "ask_during_rebuild": {**asked, "rebuild_exit": rebuild_code}, "load_average": load}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serve_load.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# `ragkit serve` under load ({args.episodes} synthetic episodes, {chunks} chunks, hash:256; load average {load:.2f})", "",
        f"- {args.clients} clients for {args.seconds:.0f} s on `/api/search`: {search['requests']} requests, {search['requests_per_s']} req/s, "
        f"p50 {search['p50_ms']} ms, p99 {search['p99_ms']} ms, {search['errors']} errors",
        f"- server memory after loading: VmRSS {loaded['VmRSS']} MB (RssAnon {loaded['RssAnon']} MB); after the load test: "
        f"VmRSS {after['VmRSS']} MB (RssAnon {after['RssAnon']} MB)",
        f"- 1 client asking while `ragkit index --force` rebuilt and published the index: {asked['requests']} asks, {asked['errors']} errors "
        f"(rebuild exit {rebuild_code})",
        f"- index build: {build:.1f} s",
    ]
    (RESULTS / "serve_load.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
