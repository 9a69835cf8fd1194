"""Retrieval quality of each embedder backend against the sentence-transformers path, on QMSum.

Run by hand (never from the tests):  python eval/bench/backend_quality.py [--qmsum DIR]
Runs `ragkit eval qmsum DIR` once per backend in a fresh process (RAGKIT_EMBEDDER_BACKEND set): torch (the
sentence-transformers path, the reference), onnx (fp32 build and queries), auto (the default: int8 build when its
export passed its accuracy check, fp32 queries) and onnx-int8 (int8 build and queries). Writes
eval/results/backend_quality.json and .md with every metric's difference to torch and whether all stay within
TOLERANCE (issue 5's rule for the build path).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "eval" / "results"
QMSUM = Path("/work/shared/datasets/qmsum/test")
BACKENDS = ("torch", "onnx", "auto", "onnx-int8")
METRICS = ("hit_at_5", "mrr_at_10", "recall_at_budget", "recall_at_k", "ndcg_at_10")
TOLERANCE = 0.005


def run(backend: str, qmsum: Path, out_dir: Path) -> dict[str, object]:
    out = out_dir / f"{backend}.json"
    env = {**os.environ, "RAGKIT_EMBEDDER_BACKEND": backend}
    cmd = [str(Path(sys.executable).with_name("ragkit")), "eval", "qmsum", str(qmsum), "--summary-only", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{backend}: ragkit eval failed:\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text(encoding="utf-8"))
    return {
        "backend": backend, "embedded_with": data["manifest"]["embedder"].get("backend"), "build_seconds": data["build_seconds"], "queries": data["queries"],
        "summary": {r["setting"]: {m: r["summary"][m] for m in METRICS} for r in data["results"]},
    }


def compare(rows: dict[str, dict]) -> dict[str, object]:
    ref = rows["torch"]["summary"]
    out = {}
    for backend, row in rows.items():
        deltas = {s: {m: round(v - ref[s][m], 4) for m, v in metrics.items()} for s, metrics in row["summary"].items()}
        worst = max(abs(d) for metrics in deltas.values() for d in metrics.values())
        out[backend] = {"deltas": deltas, "worst_abs_delta": worst, "within_tolerance": worst <= TOLERANCE}
    return out


def render(report: dict) -> str:
    lines = [
        "# Retrieval quality by embedder backend (QMSum test, `ragkit eval qmsum` defaults)", "",
        f"{report['date']} · produced by `python eval/bench/backend_quality.py`. Reference: the torch backend "
        f"(sentence-transformers). Rule: every metric within {TOLERANCE} of it. One query of {report['queries']} moves hit@5 by "
        f"{1 / report['queries']:.4f}.", "",
        "| backend | index embedded with | setting | hit@5 | MRR@10 | R@1k | R@5 | nDCG@10 | worst abs. difference | within rule |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, row in report["backends"].items():
        cmp = report["comparison"][backend]
        for setting, metrics in row["summary"].items():
            d = cmp["deltas"][setting]
            cells = " | ".join(f"{metrics[m]:.3f} ({d[m]:+.4f})" for m in METRICS)
            lines.append(f"| {backend} | {row['embedded_with']} | {setting} | {cells} | {cmp['worst_abs_delta']:.4f} | {cmp['within_tolerance']} |")
    lines += ["", "Queries are embedded with fp32 ONNX under `auto` and `onnx`, with int8 under `onnx-int8`, with torch under `torch`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=QMSUM)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragkit-quality-") as tmp:
        rows = {}
        for backend in BACKENDS:
            print(f"{backend} ...", file=sys.stderr, flush=True)
            rows[backend] = run(backend, args.qmsum, Path(tmp))
    queries = rows["torch"]["queries"]
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "qmsum": str(args.qmsum), "queries": queries,
              "tolerance": TOLERANCE, "backends": rows, "comparison": compare(rows)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backend_quality.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "backend_quality.md").write_text(render(report), encoding="utf-8")
    print(render(report))


if __name__ == "__main__":
    main()
