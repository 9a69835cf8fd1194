"""The ragkit command line: results on stdout, progress and errors on stderr, one place maps errors."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from . import __version__
from .errors import RagkitError, UsageError

if TYPE_CHECKING:
    from .index import Index

DEFAULT_INDEX = Path("indexes/default")
DEFAULT_CORPUS = Path("seeds")
FIRST_BUILD_WAIT = 600.0  # seconds a first search waits for another process building the default index

app = typer.Typer(
    name="ragkit",
    help="Semantic search and cited answers over transcripts (podcasts, interviews, meetings).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

IndexOpt = typer.Option(DEFAULT_INDEX, "-i", "--index", help="Index folder.")
TopK = typer.Option(5, "-k", "--top-k", min=1, help="Number of passages to return.")
EmbedderOpt = typer.Option(None, "-e", "--embedder", help="Embedder spec: st:<model or path>, hash:<dim>, package.module:Class.")
JsonOpt = typer.Option(False, "--json", help="Print JSON on stdout.")
SpeakerOpt = typer.Option(None, "--speaker", help="Only passages where a speaker's name contains NAME (case-insensitive).")
SourceOpt = typer.Option(None, "--source", help="Only passages from sources matching this glob, e.g. 'ep1*'.")
LinkOpt = typer.Option(
    None, "--link-template",
    help="Deep link printed for each hit and citation, e.g. 'https://example.org/{source_stem}?t={start_int}'. "
    "Placeholders: {url} {source} {source_stem} {start} {start_int} {end} {end_int}. "
    "Default: the source's sidecar url with ?t=<start seconds>.",
)
ContextOpt = typer.Option(0, "--context", min=0, help="Show N turns before and after each hit and citation.")
ModeOpt = typer.Option(None, "--mode", help="Ranking: hybrid (default; dense + BM25 score fusion), rrf, dense or lexical.")
WeightOpt = typer.Option(None, "--weight", min=0.0, max=1.0, help="Dense share of the fused score, 0-1 (default 0.6; BM25 gets the rest).")
BudgetOpt = typer.Option(None, "--budget", min=0, help="Assemble the top hits into passages within TOKENS tokens, grown by neighbouring turns (default 0: plain chunks).")


def ranking(mode: str | None, weight: float | None, budget: int | None) -> dict[str, Any]:
    """--mode/--weight/--budget as Index.search options; unset ones keep the library defaults."""
    return {k: v for k, v in {"mode": mode, "weight": weight, "budget": budget}.items() if v is not None}


def err(message: str) -> None:
    typer.echo(message, err=True)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


class Progress:
    """A progress bar on stderr, created on the first update."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = typer.progressbar(length=total, label=self.label, file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def check_text(value: str, what: str) -> str:
    if not value or not value.strip():
        raise typer.BadParameter(f"the {what} is empty; pass some words, e.g. \"why is data the bottleneck?\"")
    return value


def check_links(template: str | None) -> None:
    """Fail on a bad --link-template before any index is loaded or built."""
    if template is not None:
        from .links import check_template

        check_template(template)


def decorate(result: Any, index: Index, link_template: str | None, context: int) -> Any:
    """Hits or an answer with deep links (from sidecar urls even without a template) and --context turns."""
    from .links import with_context, with_links

    return with_context(with_links(result, link_template, index.documents), context, index.documents)


def build_index(
    paths: list[Path] | None, output: Path, embedder: str | None, max_tokens: int | None, overlap: int | None,
    *, force: bool = False, dry_run: bool = False,
) -> tuple[Index | None, dict[str, Any]]:
    """Create or update the index at output; paths default to the folders it was built from, then seeds/."""
    from .incremental import recorded_corpus, refresh

    started = time.perf_counter()
    corpus = list(paths or []) or [Path(p) for p in recorded_corpus(output)] or [DEFAULT_CORPUS]
    err(f"reading {', '.join(map(str, corpus))}")
    progress = Progress("embedding chunks")
    try:
        index, report = refresh(
            output, corpus, embedder, max_tokens=max_tokens, overlap_turns=overlap, force=force, dry_run=dry_run, progress=progress
        )
    finally:
        progress.close()
    summary = {"index": str(output), **asdict(report), "dry_run": dry_run, "seconds": round(time.perf_counter() - started, 2)}
    return index, summary


def index_message(summary: dict[str, Any]) -> str:
    """One line: what `ragkit index` did (or would do), counted in chunks."""
    counts = f"{summary['added']} added, {summary['changed']} changed, {summary['removed']} removed, {summary['unchanged']} unchanged chunks"
    full = f" (full rebuild: {summary['reason']})" if summary["full"] else ""
    if summary["dry_run"]:
        return f"dry run, nothing written: {summary['index']} would get {counts}; {summary['embedded']} to embed{full}"
    if not summary["written"]:
        return f"{summary['index']} is up to date: {counts}; nothing written"
    return (
        f"updated {summary['index']}: {counts}; embedded {summary['embedded']}{full}; "
        f"{summary['chunks']} chunks from {summary['sources']} sources in {summary['seconds']} s"
    )


def open_index(path: Path, embedder: str | None = None) -> Index:
    """Load an index; the default one is built from seeds/ on first use."""
    from .index import Index

    if path == DEFAULT_INDEX and not (path / "manifest.json").exists() and DEFAULT_CORPUS.is_dir():
        from .lock import index_lock

        with index_lock(path, wait=FIRST_BUILD_WAIT):  # a concurrent first run may be building it: wait, then load
            if not (path / "manifest.json").exists():
                err(f"no index at {path} yet; building it from {DEFAULT_CORPUS}/ (first run only)")
                index, summary = build_index([DEFAULT_CORPUS], path, embedder, None, None)
                err(f"built {summary['chunks']} chunks from {summary['sources']} sources in {summary['seconds']} s")
                if index is not None:
                    return index
    return Index.load(path, embedder=embedder)


@app.command()
def index(
    paths: list[Path] = typer.Argument(None, help="Transcript files or folders (default: those the index was built from, else seeds/)."),
    output: Path = typer.Option(DEFAULT_INDEX, "-o", "--output", "-i", "--index", help="Index folder to write."),
    embedder: str | None = typer.Option(None, "-e", "--embedder", help="Embedder spec (default: the index's, else st:all-MiniLM-L6-v2); another one rebuilds fully."),
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=16, help="Chunk budget in tiktoken tokens (default: the index's, else 200)."),
    overlap: int | None = typer.Option(None, "--overlap", min=0, help="Turns repeated between neighbouring chunks (default: the index's, else 0)."),
    force: bool = typer.Option(False, "--force", help="Rebuild from scratch: re-embed everything, replace a corrupt or newer-format index."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be added, changed and removed; write nothing."),
    as_json: bool = JsonOpt,
) -> None:
    """Build an index, or update an existing one: only new and changed chunk texts are embedded."""
    _, summary = build_index(list(paths or []), output, embedder, max_tokens, overlap, force=force, dry_run=dry_run)
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2) if as_json else index_message(summary))


@app.command()
def search(
    query: str = typer.Argument(..., help="What to search for."),
    index_path: Path = IndexOpt,
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
    check_text(query, "query")
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
        from .render import safe

        if not self.started:
            typer.echo("Answer:\n  ", nl=False)
            self.started = True
        typer.echo(safe(piece), nl=False)

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


def make_answerer(spec: str, llm: dict[str, Any], on_token: Streamer | None) -> Any:
    """The answerer for -a: a spec string, or an LLM answerer built from the --llm-* options."""
    from .answer import load_answerer

    kind, _, model = spec.partition(":")
    if kind != "llm":
        if llm:
            raise typer.BadParameter(f"--llm-* options need -a llm (got -a {spec})")
        return spec
    wanted = llm.pop("model", None)
    if model and wanted and wanted != model:
        raise typer.BadParameter(f"-a {spec} and --llm-model {wanted} disagree; give the model once")
    return load_answerer(f"llm:{model or wanted or ''}".rstrip(":"), on_token=on_token, **llm)


@app.command()
def ask(
    question: str = typer.Argument(..., help="A question about the corpus."),
    index_path: Path = IndexOpt,
    k: int = TopK,
    embedder: str | None = EmbedderOpt,
    speaker: str | None = SpeakerOpt,
    source: str | None = SourceOpt,
    answerer: str = typer.Option("extractive", "-a", "--answerer", help="extractive, llm[:model] or package.module:Class."),
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
    check_text(question, "question")
    check_links(link_template)
    from .answer import ask as run_ask
    from .errors import AnswerError
    from .render import render_answer

    llm = {"base_url": llm_base_url, "model": llm_model, "timeout": llm_timeout, "temperature": llm_temperature,
           "max_tokens": llm_max_tokens, "context_tokens": llm_context, "retries": llm_retries}
    echo = Streamer() if stream and not as_json else None
    chosen = make_answerer(answerer, {name: v for name, v in llm.items() if v is not None}, echo)
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
def info(index_path: Path = IndexOpt, as_json: bool = JsonOpt) -> None:
    """Show what an index holds and what `ragkit index` would change against its corpus (writes nothing)."""
    from .incremental import pending_update
    from .index import Index
    from .render import render_info

    idx = Index.load(index_path)
    try:  # the same counts `ragkit index` would report, against the corpus folders the manifest records
        update: dict[str, Any] = asdict(pending_update(idx))
    except RagkitError as exc:
        update = {"error": str(exc)}
    data = {"path": str(index_path), "manifest": idx.manifest, "status": [asdict(s) for s in idx.status()], "update": update}
    if as_json:
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    typer.echo(render_info(data))
    if "error" in update:
        typer.echo(f"update:   cannot compare with the corpus: {update['error']}")
    else:
        typer.echo(f"update:   `ragkit index` would make {update['added']} added, {update['changed']} changed, {update['removed']} removed, {update['unchanged']} unchanged chunks")


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    backend: str | None = typer.Option(
        None, "--embedder-backend", help="auto (ONNX, else torch), onnx, onnx-int8 or torch; also RAGKIT_EMBEDDER_BACKEND."
    ),
) -> None:
    if backend is not None:
        from .embedders import BACKEND_ENV, BACKENDS

        if backend not in BACKENDS:
            raise typer.BadParameter(f"{backend!r}: choose one of {', '.join(BACKENDS)}", param_hint="--embedder-backend")
        os.environ[BACKEND_ENV] = backend
    if version:
        typer.echo(f"ragkit {__version__}")
        raise typer.Exit()


class _LineFormatter(logging.Formatter):
    """`warning: ...` for problems; info records (one-time model preparation) read like the CLI's progress lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        return message if record.levelno == logging.INFO else f"{record.levelname.lower()}: {message}"


class _StderrHandler(logging.StreamHandler):
    """Library warnings as `warning: ...` lines; looks up sys.stderr each time so tests can capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(_LineFormatter())

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


from . import cli_eval  # noqa: E402, F401  (registers `ragkit eval`)


def _setup_logging() -> None:
    root = logging.getLogger("ragkit")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.addHandler(_StderrHandler())
    if root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    # The one-time ONNX export and int8 copy take 20-30 s: say why the first build waits.
    prepare = logging.getLogger("ragkit.onnx_embedder")
    if prepare.level == logging.NOTSET:
        prepare.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map every error to a one-line message and an exit code."""
    _setup_logging()
    try:
        # Standalone mode: typer reports usage errors itself (exit 2) and exits after a command.
        app(args=argv, prog_name="ragkit")
        code = 0
    except UsageError as exc:
        err(f"usage error: {exc}")
        code = 2
    except RagkitError as exc:
        err(f"error: {exc}")
        code = exc.exit_code
    except KeyboardInterrupt:
        err("interrupted")
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
