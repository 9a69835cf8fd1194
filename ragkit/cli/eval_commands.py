"""`ragkit eval`: a gold file against an index, or the QMSum benchmark on a folder of meetings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from ..errors import RagkitError, UsageError
from .typer_app import EmbedderOpt, IndexOpt, JsonOpt, app, emit_json, err, open_index, ranking


def search_options(mode: str | None, weight: float | None, budget: int | None) -> dict[str, Any]:
    """Retrieval options given on the command line; unset ones keep the library defaults, except the context
    budget, which defaults to the metric's (R@1k): eval measures the context an answer stage would be given."""
    from ..evaluation import BUDGET

    return ranking(mode, weight, BUDGET if budget is None else budget)


@app.command("eval")
def eval_command(
    target: str = typer.Argument(..., help="A gold .jsonl file, or the word qmsum followed by a folder of QMSum meetings."),
    folder: Path | None = typer.Argument(None, help="With qmsum: the folder of meeting .json files."),
    index_path: str = IndexOpt,
    k: int = typer.Option(5, "-k", "--top-k", min=1, help="Passages per question (hit@k, recall@k)."),
    embedder: str | None = EmbedderOpt,
    setting: str = typer.Option("both", "--setting", help="qmsum: per-meeting, pooled or both."),
    mode: str | None = typer.Option(None, "--mode", help="Retrieval mode (default: the library's best measured)."),
    weight: float | None = typer.Option(None, "--weight", help="Dense weight in score fusion (0-1)."),
    budget: int | None = typer.Option(None, "--budget", min=0, help="Context budget in tokens for passage assembly (default 1000, the R@1k budget; 0 = plain chunks)."),
    store: str | None = typer.Option(None, "--store", help="qmsum: save the benchmark's index here (a folder or postgresql:// URL) and answer every query from it."),
    out: Path | None = typer.Option(None, "--out", help="Also write the full JSON result to this file."),
    fail_under: list[str] = typer.Option([], "--fail-under", help="METRIC=VALUE, e.g. hit@k=0.8; exit 1 if below (repeatable)."),
    per_question: bool = typer.Option(True, "--per-question/--summary-only", help="Show one row per question."),
    as_json: bool = JsonOpt,
) -> None:
    """Measure retrieval and answers against gold questions, or run the QMSum benchmark."""
    from ..evaluation import failed_thresholds, parse_threshold

    thresholds = [parse_threshold(s) for s in fail_under]
    options = search_options(mode, weight, budget)
    if target == "qmsum":
        data, text, summaries = _qmsum(folder, embedder, setting, k, options, store)
    else:
        if folder is not None:
            raise typer.BadParameter(f"unexpected extra argument {folder}; only `ragkit eval qmsum DIR` takes a folder")
        data, text, summaries = _gold(Path(target), index_path, embedder, k, options, per_question)
    if out is not None:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        except OSError as exc:
            raise RagkitError(f"{out}: cannot write ({exc.strerror}); choose another --out") from exc
    if as_json:
        emit_json(data)
    else:
        typer.echo(text)
    failures = [f"{name}: {msg}" if name else msg for name, s in summaries for msg in failed_thresholds(s, thresholds)]
    if failures:
        for line in failures:
            err(f"fail-under: {line}")
        raise typer.Exit(1)


def _gold(gold: Path, index_path: str, embedder: str | None, k: int, options: dict[str, Any], per_question: bool) -> tuple[dict[str, Any], str, list]:
    from ..evaluation import evaluate, render_report

    if not gold.is_file():
        raise UsageError(f"{gold}: no such gold file; pass a .jsonl gold file or `qmsum DIR`")
    index = open_index(index_path, embedder)

    def search(question: str, n: int) -> list:
        return index.search(question, k=n, **options)

    report = evaluate(index, gold, k=k, search=search if options else None, settings=options)
    return asdict(report), render_report(report, per_question=per_question), [("", report.summary)]


def _qmsum(folder: Path | None, embedder: str | None, setting: str, k: int, options: dict[str, Any], store: str | None = None) -> tuple[dict[str, Any], str, list]:
    from ..evaluation.qmsum import parse_settings, render_qmsum, run_qmsum
    from .typer_app import Progress

    if folder is None:
        raise UsageError("ragkit eval qmsum needs a folder of QMSum meeting files, e.g. ragkit eval qmsum ../shared/datasets/qmsum/test")
    names = parse_settings(setting)

    def factory(index):  # noqa: ANN001, ANN202 - the per-meeting scope comes in as `source`
        return lambda question, n, source=None: index.search(question, k=n, source=source, **options)

    progress = Progress("embedding meetings")
    try:
        report = run_qmsum(folder, embedder=embedder, settings=names, k=k, search=factory, progress=progress, options=options, store=store)
    finally:
        progress.close()
    return asdict(report), render_qmsum(report), [(r.setting, r.summary) for r in report.results]
