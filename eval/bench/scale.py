"""How ragkit scales with the archive: cold search/ask/info, query memory, build time and memory, index size and
incremental update time on deterministic synthetic archives (issue 16's benchmark).

Run by hand (never from the tests; CI may run `--episodes 50` as a smoke test):
    python eval/bench/scale.py --episodes 50 500 [5000]
Archives are podcast-format episodes of 200 turns, words drawn from the seeds (eval/bench/serve_load.py writes them),
indexed with the hash embedder. Each cold command runs in a new process (median of --runs); a query process's heap
is its peak RssAnon from /proc (file-backed mapped pages do not count). Writes eval/results/scale.{json,md}.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QUESTION = "why does the model need more data than compute"


def _archive_writer():  # noqa: ANN202 - the generator lives beside the serve benchmark
    spec = importlib.util.spec_from_file_location("serve_load", Path(__file__).with_name("serve_load.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_archive


def run(args: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RssAnon and peak VmRSS (MB) of `ragkit ARGS` in a new process."""
    proc = subprocess.Popen([sys.executable, "-m", "ragkit.cli", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peak = {"RssAnon": 0, "VmRSS": 0}
    started = time.perf_counter()

    def watch() -> None:
        while proc.poll() is None:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                return
            for key in peak:
                found = re.search(rf"{key}:\s+(\d+)", status)
                if found:
                    peak[key] = max(peak[key], int(found.group(1)) // 1024)
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    watcher.join()
    if proc.returncode != 0:
        raise RuntimeError(f"ragkit {' '.join(args)} failed: {err[-500:]}")
    return seconds, peak["RssAnon"], peak["VmRSS"]


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.resolve().rglob("*") if p.is_file()) / 2**20


def measure(episodes: int, runs: int, tmp: Path) -> dict:
    corpus, index = tmp / f"archive-{episodes}", tmp / f"idx-{episodes}"
    _archive_writer()(corpus, episodes)
    build_s, build_anon, build_rss = run(["index", str(corpus), "-o", str(index), "-e", "hash:256"])
    manifest = json.loads((index / "manifest.json").read_text())
    cold: dict[str, list[float]] = {"search": [], "ask": [], "info": []}
    heap: dict[str, int] = {"search": 0, "ask": 0, "info": 0}
    for _ in range(runs):  # round-robin, so a burst of load hits every command alike
        for name, args in (("search", ["search", QUESTION, "-i", str(index)]), ("ask", ["ask", QUESTION, "-i", str(index)]),
                           ("info", ["info", "-i", str(index)])):
            seconds, anon, _ = run(args)
            cold[name].append(seconds)
            heap[name] = max(heap[name], anon)
    episode = corpus / "episode-0000.txt"
    episode.write_text(episode.read_text(encoding="utf-8") + "\nAna Ruiz (9:59:59): One more closing line for the update.\n", encoding="utf-8")
    update_s, _, _ = run(["index", str(corpus), "-o", str(index), "-e", "hash:256"])
    return {
        "episodes": episodes, "chunks": manifest["counts"]["chunks"], "build_s": round(build_s, 1), "build_peak_rss_mb": build_rss,
        "build_peak_anon_mb": build_anon, "index_mb": round(size_mb(index), 1), "update_s": round(update_s, 1),
        **{f"cold_{k}_s": round(statistics.median(v), 3) for k, v in cold.items()},
        **{f"{k}_heap_mb": v for k, v in heap.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, args.runs, Path(tmp)) for n in args.episodes]
    load = os.getloadavg()[0]
    base, big = rows[0], rows[-1]
    exponent = (math.log(big["cold_search_s"] / base["cold_search_s"]) / math.log(big["episodes"] / base["episodes"])
                if len(rows) > 1 else None)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps({"load_average": load, "rows": rows, "search_growth_exponent": exponent}, indent=2) + "\n")
    cols = ["episodes", "chunks", "build_s", "build_peak_rss_mb", "index_mb", "update_s", "cold_search_s", "cold_ask_s", "cold_info_s",
            "search_heap_mb", "ask_heap_mb", "info_heap_mb"]
    lines = [f"# Scale: synthetic podcast archives, hash:256 (load average {load:.2f}; median of {args.runs} cold runs)", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    if exponent is not None:
        lines += ["", f"Growth exponent of cold search time from {base['episodes']} to {big['episodes']} episodes: {exponent:.2f} "
                  f"(0 = constant time; 1 = linear in the archive). Ratios to {base['episodes']} episodes at {big['episodes']}: "
                  f"search {big['cold_search_s'] / base['cold_search_s']:.1f}x (target <= 1.5x), ask "
                  f"{big['cold_ask_s'] / base['cold_ask_s']:.1f}x (<= 1.5x), info {big['cold_info_s'] / base['cold_info_s']:.1f}x (<= 2x); "
                  f"query heap {big['search_heap_mb']} MB (<= 300 MB at 5,000 episodes)."]
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
