"""Same answers from a storage change: `ragkit eval` on the gold sets and QMSum, run on this tree and on an older
commit (checked out as a git worktree), compared question by question.

    python eval/bench/storage_equivalence.py 15dcab1

Every field of every question (ranks, hits, recall, citations) must be equal; only timings, dates and the manifest
(paths, file lists) may differ. Writes eval/results/storage_equivalence.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QMSUM = ROOT.parent / "shared" / "datasets" / "qmsum" / "test"
VOLATILE = {"manifest", "date", "seconds", "build_seconds", "machine", "corpus", "index"}


def evaluate(tree: Path, out: Path) -> dict[str, dict]:
    """The eval results of the tree: gold sets on an index built from their corpus, and QMSum."""
    def ragkit(*args: str) -> None:
        # cwd is the tree, so `-m ragkit.cli` imports that tree's package
        subprocess.run([sys.executable, "-m", "ragkit.cli", *args], cwd=tree, check=True, capture_output=True, text=True)

    results = {}
    for name, corpus in (("seeds", "seeds"), ("real", "eval/corpora/real")):
        ragkit("index", corpus, "-o", str(out / f"{name}-idx"))
        ragkit("eval", f"eval/gold/{name}.jsonl", "-i", str(out / f"{name}-idx"), "--out", str(out / f"{name}.json"))
        results[name] = json.loads((out / f"{name}.json").read_text())
    ragkit("eval", "qmsum", str(QMSUM), "--out", str(out / "qmsum.json"))
    results["qmsum"] = json.loads((out / "qmsum.json").read_text())
    return results


def stable(value: object) -> object:
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE and "seconds" not in k and not k.endswith("_ms")}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("commit", help="The commit before the change.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old_tree), args.commit], cwd=ROOT, check=True, capture_output=True)
        try:
            (Path(tmp) / "a").mkdir()
            (Path(tmp) / "b").mkdir()
            before, after = evaluate(old_tree, Path(tmp) / "a"), evaluate(ROOT, Path(tmp) / "b")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    lines = [f"# Storage equivalence: `ragkit eval` at {args.commit} and on this tree", "",
             "| eval | questions | summary equal | every question equal | summary (this tree) |", "|---|---|---|---|---|"]
    for name in before:
        a, b = stable(before[name]), stable(after[name])
        count = len(b["questions"]) if "questions" in b else b.get("queries")
        key = "summary" if "summary" in b else "results"
        lines.append(f"| {name} | {count} | {a.get(key) == b.get(key)} | {a == b} | {json.dumps(b.get(key))[:400]} |")
    (ROOT / "eval" / "results" / "storage_equivalence.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
