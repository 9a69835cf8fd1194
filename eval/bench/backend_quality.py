"""Retrieval quality of each embedder backend against the sentence-transformers path, on QMSum.

Run by hand (never from the tests):  python eval/bench/backend_quality.py [--qmsum DIR]
Runs `ragkit eval qmsum DIR` once per backend in a fresh process (RAGKIT_EMBEDDER_BACKEND set): torch (the
sentence-transformers path, the reference), onnx (fp32 build and queries), auto (the default: int8 build when its
export passed its accuracy check, fp32 queries) and onnx-int8 (int8 build and queries). Writes
eval/results/backend_quality.json and .md with every metric's difference to torch and whether all stay within
TOLERANCE (issue 5's rule for the build path).

With --draws N it also re-makes the int8 export N-1 more times, each calibrated on the same passages joined in
another (seeded, arbitrary) order, and evaluates `auto` on each: how far the rule's verdict depends on that
arbitrary choice. Draw 0 is the shipped order (the `auto` row).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def run(backend: str, qmsum: Path, out_dir: Path, cache: Path | None = None) -> dict[str, object]:
    out = out_dir / f"{backend}.json"
    env = {**os.environ, "RAGKIT_EMBEDDER_BACKEND": backend, **({"RAGKIT_CACHE_DIR": str(cache)} if cache else {})}
    cmd = [str(Path(sys.executable).with_name("ragkit")), "eval", "qmsum", str(qmsum), "--summary-only", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{backend}: ragkit eval failed:\n{proc.stderr[-3000:]}")
    data = json.loads(out.read_text(encoding="utf-8"))
    return {
        "backend": backend, "embedded_with": data["manifest"]["embedder"].get("backend"), "build_seconds": data["build_seconds"], "queries": data["queries"],
        "summary": {r["setting"]: {m: r["summary"][m] for m in METRICS} for r in data["results"]},
    }


def calibration_draw(k: int, tmp: Path) -> tuple[Path, dict[str, object]]:
    """A cache folder whose int8 export is calibrated on the passages joined in the k-th seeded order."""
    import numpy as np

    from ragkit.embed.calibration import PASSAGES
    from ragkit.embed.onnx_embedder import INT8_FILE, INT8_META_FILE, META_FILE, MODEL_FILE, OnnxEmbedder
    from ragkit.embed.quantize import quantize_model

    source = OnnxEmbedder()
    source.ensure_export()
    order = [PASSAGES[i] for i in np.random.default_rng(k).permutation(len(PASSAGES))]
    texts = [*PASSAGES, *(" ".join((order + order)[i : i + 3]) for i in range(len(order)))]
    cache = tmp / f"draw{k}"
    folder = cache / "onnx" / source.export_dir.name
    folder.mkdir(parents=True)
    for name in (MODEL_FILE, META_FILE):
        (folder / name).symlink_to(source.export_dir / name)
    check = quantize_model(source.layout, folder / MODEL_FILE, folder / INT8_FILE, texts)
    (folder / INT8_META_FILE).write_text(json.dumps(check, indent=2), encoding="utf-8")
    return cache, {"cosine_mean": check["cosine_mean"], "cosine_min": check["cosine_min"], "passed": check["passed"]}


def draws_summary(ref: dict, draws: list[dict]) -> dict[str, object]:
    """Per metric: mean, min and max difference to torch over the draws; and how many draws keep every metric in TOLERANCE."""
    deltas = [{s: {m: d["summary"][s][m] - ref[s][m] for m in METRICS} for s in ref} for d in draws]
    stats = {s: {m: {f: round(fn([d[s][m] for d in deltas]), 4) for f, fn in (("mean", statistics.fmean), ("min", min), ("max", max))} for m in METRICS} for s in ref}
    worst = [max(abs(v) for s in d.values() for v in s.values()) for d in deltas]
    return {"draws": len(draws), "within_tolerance": sum(w <= TOLERANCE for w in worst), "worst_abs_delta": [round(w, 4) for w in worst],
            "worst_drop": round(-min(min(v for s in d.values() for v in s.values()) for d in deltas), 4), "deltas": stats}


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
    if draws := report.get("calibration_draws"):
        lines += [
            f"## The same int8 recipe, {draws['draws']} calibration orders", "",
            "`auto` (int8 build, fp32 queries) with the int8 export calibrated on the same passages joined in "
            f"{draws['draws']} seeded orders (draw 0 is the shipped order, the `auto` row above). Draws within the rule: "
            f"{draws['within_tolerance']} of {draws['draws']}; worst abs. difference per draw: "
            + ", ".join(f"{w:.4f}" for w in draws["worst_abs_delta"]) + f"; largest drop of any metric in any draw: {draws['worst_drop']:.4f}.", "",
            "| setting | metric | mean difference | min | max |", "|---|---|---|---|---|",
        ]
        for setting, metrics in draws["deltas"].items():
            lines += [f"| {setting} | {m} | {v['mean']:+.4f} | {v['min']:+.4f} | {v['max']:+.4f} |" for m, v in metrics.items()]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qmsum", type=Path, default=QMSUM)
    parser.add_argument("--draws", type=int, default=1, help="calibration orders to evaluate under auto (1: only the shipped one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragkit-quality-") as tmp:
        rows = {}
        for backend in BACKENDS:
            print(f"{backend} ...", file=sys.stderr, flush=True)
            rows[backend] = run(backend, args.qmsum, Path(tmp))
        draws = [{"draw": 0, **rows["auto"]}]
        for k in range(1, args.draws):
            print(f"calibration draw {k} ...", file=sys.stderr, flush=True)
            cache, check = calibration_draw(k, Path(tmp))
            draws.append({"draw": k, "check": check, **run("auto", args.qmsum, Path(tmp), cache)})
    queries = rows["torch"]["queries"]
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "qmsum": str(args.qmsum), "queries": queries,
              "tolerance": TOLERANCE, "backends": rows, "comparison": compare(rows)}
    if args.draws > 1:
        report["calibration_draws"] = {**draws_summary(rows["torch"]["summary"], draws), "runs": draws}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "backend_quality.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "backend_quality.md").write_text(render(report), encoding="utf-8")
    print(render(report))


if __name__ == "__main__":
    main()
