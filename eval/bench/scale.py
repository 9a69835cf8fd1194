"""How ragkit scales with the archive: cold search/ask/info, query memory, build time and memory, index size and
incremental update time on deterministic synthetic archives (issue 16's benchmark).

Run by hand (never from the tests; CI may run `--episodes 50 --model-episodes` as a smoke test):
    python eval/bench/scale.py --episodes 50 500 5000 --model-episodes 50 500
Archives are podcast-format episodes of 200 turns, words drawn from the seeds (eval/bench/serve_load.py writes them),
indexed with the hash embedder (and some with the default model). Each cold command runs in a new process (median of --runs); a query process's heap
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
BEFORE = "## Before: format 1"
RACY_SECONDS = 2.0  # ragkit.readers.corpus.RACY_SECONDS


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


def measure(episodes: int, runs: int, tmp: Path, embedder: str = "hash:256") -> dict:
    corpus, index = tmp / f"archive-{episodes}", tmp / f"idx-{episodes}-{embedder.replace(':', '-')}"
    _archive_writer()(corpus, episodes)  # rewritten each time: the update below edits one episode
    # A real archive's files are older than the racy window in which a file gets no stamp (and info must hash it).
    time.sleep(RACY_SECONDS)
    build_s, build_anon, build_rss = run(["index", str(corpus), "-o", str(index), "-e", embedder])
    manifest = json.loads((index / "manifest.json").read_text())
    cold: dict[str, list[float]] = {"search": [], "ask": [], "info": []}
    heap: dict[str, int] = {"search": 0, "ask": 0, "info": 0}
    for _ in range(runs):  # round-robin, so a burst of load hits every command alike
        for name, args in (("search", ["search", QUESTION, "-i", str(index)]), ("ask", ["ask", QUESTION, "-i", str(index)]),
                           ("info", ["info", "-i", str(index)])):
            seconds, anon, _ = run(args)
            cold[name].append(seconds)
            heap[name] = max(heap[name], anon)
    verify_s, _, _ = run(["verify", "-i", str(index)])
    episode = corpus / "episode-0000.txt"
    episode.write_text(episode.read_text(encoding="utf-8") + "\nAna Ruiz (9:59:59): One more closing line for the update.\n", encoding="utf-8")
    before = {os.stat(f).st_ino: f.name for f in index.resolve().iterdir() if f.suffix in (".db", ".f32")}
    update_s, _, _ = run(["index", str(corpus), "-o", str(index), "-e", embedder])
    after = [f for f in index.resolve().iterdir() if f.suffix in (".db", ".f32")]
    # Unchanged segments are hard links to the previous version's files (same inode): written once, never again.
    linked = sum(1 for f in after if os.stat(f).st_ino in before)
    return {
        "embedder": embedder, "episodes": episodes, "chunks": manifest["counts"]["chunks"], "build_s": round(build_s, 1), "build_peak_rss_mb": build_rss,
        "build_peak_anon_mb": build_anon, "index_mb": round(size_mb(index), 1), "update_s": round(update_s, 1),
        "verify_s": round(verify_s, 1), "update_files_linked": f"{linked}/{len(after)}",
        **{f"cold_{k}_s": round(statistics.median(v), 3) for k, v in cold.items()},
        **{f"{k}_heap_mb": v for k, v in heap.items()},
    }


COLUMNS = ["episodes", "chunks", "build_s", "build_peak_rss_mb", "index_mb", "update_s", "update_files_linked", "verify_s", "cold_search_s",
           "cold_ask_s", "cold_info_s", "search_heap_mb", "ask_heap_mb", "info_heap_mb"]


def table(rows: list[dict]) -> list[str]:
    return ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS), *("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows)]


def exponent(a: dict, b: dict) -> float:
    """d log(cold search time) / d log(episodes) between two rows: 0 is constant time, 1 linear in the archive."""
    return math.log(b["cold_search_s"] / a["cold_search_s"]) / math.log(b["episodes"] / a["episodes"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--model-episodes", type=int, nargs="*", default=[50, 500], help="Also built with the default model.")
    parser.add_argument("--model", default="st:all-MiniLM-L6-v2")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(n, args.runs, Path(tmp)) for n in args.episodes]
        model_rows = [measure(n, args.runs, Path(tmp), args.model) for n in args.model_episodes]
    load = os.getloadavg()[0]
    RESULTS.mkdir(parents=True, exist_ok=True)
    growth = {f"{a['episodes']}-{b['episodes']}": round(exponent(a, b), 3) for a, b in zip(rows, rows[1:])}
    (RESULTS / "scale.json").write_text(json.dumps({"load_average": load, "rows": rows, "model_rows": model_rows,
                                                    "search_growth_exponent": growth}, indent=2) + "\n")
    lines = [f"# Scale: synthetic podcast archives (load average {load:.2f} at the end; median of {args.runs} cold runs)", "",
             "## hash:256", "", *table(rows)]
    if len(rows) > 1:
        base, big = rows[0], rows[-1]
        lines += ["", "Growth exponent of cold search time (0 = constant time; 1 = linear in the archive): "
                  + ", ".join(f"{k} episodes {v:.2f}" for k, v in growth.items()) + f". Ratios to {base['episodes']} episodes at "
                  f"{big['episodes']}: search {big['cold_search_s'] / base['cold_search_s']:.2f}x (target <= 1.5x), ask "
                  f"{big['cold_ask_s'] / base['cold_ask_s']:.2f}x (<= 1.5x), info {big['cold_info_s'] / base['cold_info_s']:.2f}x (<= 2x); "
                  f"query heap {big['search_heap_mb']} MB (<= 300 MB); build peak RSS {big['build_peak_rss_mb']} MB (<= 2 GB); "
                  f"update after editing one episode {big['update_s']} s (<= 10 s)."]
    if model_rows:
        lines += ["", f"## {args.model}", "", *table(model_rows)]
    old = (RESULTS / "scale.md").read_text() if (RESULTS / "scale.md").exists() else ""
    if BEFORE in old:  # the measurement from before the storage change stays beside the new one
        lines += ["", old[old.index(BEFORE) :].rstrip()]
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
