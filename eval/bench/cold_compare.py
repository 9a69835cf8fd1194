"""Cold-process wall time of `ragkit --help`, `search` and `ask`, for two source trees side by side (round-robin).

Run by hand (never from the tests):
    git worktree add /tmp/base <commit> && python eval/bench/cold_compare.py /tmp/base . --index indexes/default
Writes eval/results/cold_compare.{json,md}. Both trees run with this interpreter and the same index, so the
difference is the code alone; the first round is a warm-up and is not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QUESTION = "Why is data the bottleneck?"
ENTRY = "import sys; from ragkit.cli import main; sys.argv[0] = 'ragkit'; main()"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--index", type=Path, default=ROOT / "indexes" / "default")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    commands = {"--help": ["--help"], "search": ["search", QUESTION, "-i", str(args.index)], "ask": ["ask", QUESTION, "-i", str(args.index)]}
    times: dict[str, dict[str, list[float]]] = {c: {t: [] for t in trees} for c in commands}
    for run in range(args.runs + 1):
        for command, argv in commands.items():
            for tree, path in trees.items():
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", ENTRY, *argv], env={**os.environ, "PYTHONPATH": str(path)}, capture_output=True)
                took = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(f"{tree}: ragkit {' '.join(argv)} failed: {proc.stderr.decode()[-300:]}")
                if run:
                    times[command][tree].append(took)
    medians = {c: {t: round(statistics.median(v), 3) for t, v in per.items()} for c, per in times.items()}
    report = {"trees": {k: str(v) for k, v in trees.items()}, "runs": args.runs, "load_average": os.getloadavg(), "median_s": medians}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cold_compare.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"# Cold start, two trees round-robin ({args.runs} runs each, median; load average {report['load_average'][0]:.2f})", "",
             "| command | before | after |", "|---|---|---|"]
    lines += [f"| `ragkit {c}` | {m['before']} s | {m['after']} s |" for c, m in medians.items()]
    (RESULTS / "cold_compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
