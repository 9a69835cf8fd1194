"""Answer quality of `ragkit ask` (extractive) on both gold sets, for one or more source trees side by side.

Run by hand (never from the tests):
    git worktree add /tmp/base <commit> && python eval/bench/answers.py --tree /tmp/base --tree .
Each tree runs in its own process with this interpreter, against indexes built here with the default model
(seeds/ and eval/corpora/real/, which eval/gold/heldout.jsonl asks about too). Writes eval/results/answers.{json,md}: per tree and gold set, the share of
answerable questions whose answer cites gold evidence, the share answered, abstention precision and recall on
the unanswerable ones, whether every citation is verbatim, and the in-process ask time (p50 over the questions).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
REAL = ROOT / "eval" / "corpora" / "real"
# heldout.jsonl asks about the same real transcripts; it was written after the answerer was tuned on the other two
# and is only measured, never tuned on.
SETS = {"seeds": (ROOT / "seeds", ROOT / "eval" / "gold" / "seeds.jsonl"), "real": (REAL, ROOT / "eval" / "gold" / "real.jsonl"),
        "heldout": (REAL, ROOT / "eval" / "gold" / "heldout.jsonl")}

CHILD = r"""
import json, statistics, sys, time
from ragkit.index.core import Index
from ragkit.answer import ask
from ragkit.evaluation.gold import load_gold
from ragkit.evaluation.run import check_answer
index, gold, k = Index.load(sys.argv[1]), sys.argv[2], int(sys.argv[3])
questions = load_gold(gold, index)
ask(index, "warm up", k=k)
rows, times = [], []
for q in questions:
    t = time.perf_counter()
    answer = ask(index, q.question, k=k)
    times.append(time.perf_counter() - t)
    rows.append((q.answerable, check_answer(q, answer, index.documents)))
ans = [r for a, r in rows if a]
una = [r for a, r in rows if not a]
abstained = [a for a, r in rows if r["abstained"]]
verbatim = [r["citations_verbatim"] for a, r in rows if r["citations_verbatim"] is not None]
print(json.dumps({
    "questions": len(rows), "answerable": len(ans), "unanswerable": len(una),
    "cites_evidence": sum(bool(r["cites_evidence"]) for r in ans) / len(ans),
    "answered": sum(not r["abstained"] for r in ans) / len(ans),
    "abstention_recall": sum(r["abstained"] for r in una) / len(una) if una else None,
    "abstention_precision": sum(not a for a in abstained) / len(abstained) if abstained else None,
    "verbatim": all(verbatim), "ask_p50_ms": round(1000 * statistics.median(times), 1),
}))
"""


def build(corpus: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(out)], check=True, cwd=ROOT,
                   capture_output=True)


def measure(tree: Path, index: Path, gold: Path, k: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    # cwd=tree: with -c the current folder comes first on sys.path
    proc = subprocess.run([sys.executable, "-c", CHILD, str(index), str(gold), str(k)], env=env, capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tree", type=Path, action="append", help="source tree to measure (repeatable; default: this one)")
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args()
    trees = args.tree or [ROOT]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        built: dict[Path, Path] = {}
        for name, (corpus, gold) in SETS.items():
            if corpus not in built:
                built[corpus] = Path(tmp) / name
                build(corpus, built[corpus])
            index = built[corpus]
            for tree in trees:
                results.append({"tree": str(tree), "set": name, "k": args.k, **measure(tree, index, gold, args.k)})
    RESULTS.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    (RESULTS / "answers.json").write_text(json.dumps({"load_average": load, "results": results}, indent=2) + "\n")
    lines = [f"# Extractive answers on the gold sets (k={args.k}, default model; load average {load:.2f})", "",
             "| tree | gold set | questions | cites gold evidence | answered | abstention recall | abstention precision | verbatim | ask p50 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"
        lines.append(f"| {r['tree']} | {r['set']} | {r['answerable']}+{r['unanswerable']} | {pct(r['cites_evidence'])} | {pct(r['answered'])} "
                     f"| {pct(r['abstention_recall'])} | {pct(r['abstention_precision'])} | {r['verbatim']} | {r['ask_p50_ms']} ms |")
    (RESULTS / "answers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
