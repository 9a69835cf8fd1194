"""The `ragkit index`, `search`, `ask`, `verify` and `info` commands."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from ..errors import RagkitError
from ..storage.location import shown
from .typer_app import (
    DEFAULT_INDEX,
    BudgetOpt,
    ContextOpt,
    EmbedderOpt,
    IndexOpt,
    JsonOpt,
    LinkOpt,
    ModeOpt,
    SourceOpt,
    SpeakerOpt,
    TopK,
    WeightOpt,
    app,
    build_index,
    check_links,
    check_text,
    decorate,
    emit_json,
    err,
    index_message,
    open_index,
    ranking,
)


@app.command()
def index(
    paths: list[Path] = typer.Argument(None, help="Transcript files or folders (default: those the index was built from, else seeds/)."),
    output: str = typer.Option(str(DEFAULT_INDEX), "-o", "--output", "-i", "--index", help="Index folder, or postgresql://USER@HOST/DB[?index=NAME], to write."),
    embedder: str | None = typer.Option(None, "-e", "--embedder", help="Embedder spec (default: the index's, else st:all-MiniLM-L6-v2); another one rebuilds fully."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=16, help="Chunk budget in tiktoken tokens (default: the index's, else 200)."),
    overlap: int | None = typer.Option(None, "--overlap", min=0, help="Turns repeated between neighbouring chunks (default: the index's, else 0)."),
    force: bool = typer.Option(False, "--force", help="Rebuild from scratch: re-embed everything, replace a corrupt or newer-format index."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be added, changed and removed; write nothing."),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="Also index files that symbolic links lead to outside the corpus folder."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 1, index untouched) when any file cannot be read, instead of skipping it."),
    as_json: bool = JsonOpt,
) -> None:
    """Build an index, or update an existing one: only new and changed chunk texts are embedded.

    A file that cannot be read is skipped with a warning naming file, line and reason; the build goes on.
    """
    _, summary = build_index(
        list(paths or []), output, embedder, max_tokens, overlap, force=force, dry_run=dry_run, follow_symlinks=follow_symlinks, strict=strict,
    )
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2) if as_json else index_message(summary))


@app.command()
def search(
    query: str = typer.Argument(..., help="What to search for."),
    index_path: str = IndexOpt,
    k: int = TopK,
    embedder: str | None = EmbedderOpt,
    speaker: str | None = SpeakerOpt,
    source: str | None = SourceOpt,
    link_template: str | None = LinkOpt,
    context: int = ContextOpt,
    mode: str | None = ModeOpt,
    weight: float | None = WeightOpt,
    budget: int | None = BudgetOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the passages most similar to QUERY, with scores."""
    query = check_text(query, "query")
    check_links(link_template)
    from .render import render_hits

    idx = open_index(index_path, embedder)
    hits = decorate(idx.search(query, k=k, speaker=speaker, source=source, **ranking(mode, weight, budget)), idx, link_template, context)
    if as_json:
        emit_json({"query": query, "k": k, "hits": [asdict(h) for h in hits]})
    else:
        typer.echo(render_hits(hits, query, idx.documents if context else None))


class Streamer:
    """Prints an LLM answer's pieces on stdout as they arrive, under the `Answer:` heading."""

    def __init__(self) -> None:
        self.started = False

    def __call__(self, piece: str) -> None:
        from .terminal import safe_block

        if not self.started:
            typer.echo("Answer:\n  ", nl=False)
            self.started = True
        typer.echo(safe_block(piece), nl=False)

    def end(self) -> None:
        if self.started:
            typer.echo("")

    def finish(self, answer: Any) -> None:
        """After the streamed text: the unsupported flag and the resolved citations."""
        from .render import UNSUPPORTED, render_sources

        self.end()
        typer.echo("")
        if not answer.supported:
            typer.echo(UNSUPPORTED)
        if answer.citations:
            typer.echo(render_sources(answer))


def make_answerer(spec: str, llm: dict[str, Any], on_token: Streamer | None, max_words: int = 80) -> Any:
    """The answerer for -a: a spec string, or an answerer built from the --llm-* options or --max-words."""
    from ..answer import load_answerer

    kind, _, model = spec.partition(":")
    if kind != "llm":
        if llm:
            raise typer.BadParameter(f"--llm-* options need -a llm (got -a {spec})")
        if kind == "extractive":
            from ..answer.extractive import ExtractiveAnswerer

            return ExtractiveAnswerer(max_words=max_words)
        return spec
    wanted = llm.pop("model", None)
    if model and wanted and wanted != model:
        raise typer.BadParameter(f"-a {spec} and --llm-model {wanted} disagree; give the model once")
    return load_answerer(f"llm:{model or wanted or ''}".rstrip(":"), on_token=on_token, **llm)


@app.command()
def ask(
    question: str = typer.Argument(..., help="A question about the corpus."),
    index_path: str = IndexOpt,
    k: int = TopK,
    embedder: str | None = EmbedderOpt,
    speaker: str | None = SpeakerOpt,
    source: str | None = SourceOpt,
    answerer: str = typer.Option("extractive", "-a", "--answerer", help="extractive, llm[:model] or package.module:Class."),
    max_words: int = typer.Option(80, "--max-words", min=10, help="-a extractive: longest answer in words (a span and at most one more)."),
    llm_base_url: str | None = typer.Option(None, "--llm-base-url", help="-a llm: OpenAI-compatible base URL (env RAGKIT_LLM_BASE_URL; default Ollama's http://127.0.0.1:11434/v1)."),
    llm_model: str | None = typer.Option(None, "--llm-model", help="-a llm: model name, same as -a llm:MODEL (env RAGKIT_LLM_MODEL)."),
    llm_timeout: float | None = typer.Option(None, "--llm-timeout", min=0.001, help="-a llm: seconds to wait for the server (env RAGKIT_LLM_TIMEOUT; default 120)."),
    llm_temperature: float | None = typer.Option(None, "--llm-temperature", min=0.0, max=2.0, help="-a llm: sampling temperature (env RAGKIT_LLM_TEMPERATURE; default 0)."),
    llm_max_tokens: int | None = typer.Option(None, "--llm-max-tokens", min=1, help="-a llm: longest answer in tokens (env RAGKIT_LLM_MAX_TOKENS; default 512)."),
    llm_context: int | None = typer.Option(None, "--llm-context-tokens", min=128, help="-a llm: prompt + answer budget in tokens (env RAGKIT_LLM_CONTEXT_TOKENS; default 4096)."),
    llm_retries: int | None = typer.Option(None, "--llm-retries", min=0, help="-a llm: retries after timeouts, 429 and 5xx (env RAGKIT_LLM_RETRIES; default 2)."),
    stream: bool = typer.Option(True, "--stream/--no-stream", help="-a llm: print the answer as it arrives (never with --json)."),
    link_template: str | None = LinkOpt,
    context: int = ContextOpt,
    mode: str | None = ModeOpt,
    weight: float | None = WeightOpt,
    budget: int | None = BudgetOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Answer QUESTION from the corpus, citing the passages used."""
    question = check_text(question, "question")
    check_links(link_template)
    from ..answer import ask as run_ask
    from ..errors import AnswerError
    from .render import render_answer

    llm = {"base_url": llm_base_url, "model": llm_model, "timeout": llm_timeout, "temperature": llm_temperature,
           "max_tokens": llm_max_tokens, "context_tokens": llm_context, "retries": llm_retries}
    echo = Streamer() if stream and not as_json else None
    chosen = make_answerer(answerer, {name: v for name, v in llm.items() if v is not None}, echo, max_words)
    idx = open_index(index_path, embedder)
    try:
        answer = run_ask(idx, question, k=k, answerer=chosen, speaker=speaker, source=source, **ranking(mode, weight, budget))
    except AnswerError as exc:
        failed = getattr(exc, "answer", None)  # the passages the answerer had: shown before main() reports the error
        if failed is not None:
            failed = decorate(failed, idx, link_template, context)
            if echo:
                echo.end()
            if as_json:
                emit_json(asdict(failed))
            else:
                typer.echo(render_answer(failed, idx.documents if context else None))
        raise
    answer = decorate(answer, idx, link_template, context)
    if as_json:
        emit_json(asdict(answer))
    elif echo and echo.started:
        echo.finish(answer)
    else:
        typer.echo(render_answer(answer, idx.documents if context else None))
    for warning in answer.warnings:
        err(f"warning: {warning}")


@app.command()
def verify(index_path: str = IndexOpt, as_json: bool = JsonOpt) -> None:
    """Check every byte of an index against its checksums and every record against its source (slow on big indexes;
    opening an index checks only its structure). Exit 1 if anything is damaged."""
    import time

    from ..index.core import Index

    started = time.perf_counter()
    result = Index.load(index_path).verify()
    data = {"path": shown(index_path), "ok": True, **asdict(result), "seconds": round(time.perf_counter() - started, 2)}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(f"{shown(index_path)}: ok: {result.files} files ({result.bytes / 2**20:.1f} MB) match their checksums; "
               f"{result.sources} sources and {result.chunks} chunks read and checked in {data['seconds']} s")


@app.command()
def info(index_path: str = IndexOpt, as_json: bool = JsonOpt) -> None:
    """Show what an index holds and what `ragkit index` would change against its corpus (writes nothing)."""
    from ..index.core import Index
    from ..index.update import compare_with_corpus
    from .render import render_info

    idx = Index.load(index_path)
    try:  # the same counts `ragkit index` would report, against the corpus folders the manifest records
        report, status = compare_with_corpus(idx)
        update: dict[str, Any] = asdict(report)
    except RagkitError as exc:
        update, status = {"error": str(exc)}, idx.status()
    manifest = {**idx.manifest, "sources": idx.source_entries()}
    rows = [{"source": s.source, "state": s.state, "path": s.path} for s in status]  # asdict deep-copies: slow on big archives
    data = {"path": shown(index_path), "manifest": manifest, "status": rows, "update": update}
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    typer.echo(render_info(data))
    if "error" in update:
        typer.echo(f"update:   cannot compare with the corpus: {update['error']}")
    else:
        typer.echo(f"update:   `ragkit index` would make {update['added']} added, {update['changed']} changed, {update['removed']} removed, {update['unchanged']} unchanged chunks")


