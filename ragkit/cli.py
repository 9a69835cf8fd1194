"""The ragkit command line: results on stdout, progress and errors on stderr, one place maps errors."""

from __future__ import annotations

import json
import logging
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


def build_index(paths: list[Path], output: Path, embedder: str | None, max_tokens: int | None, overlap: int | None) -> tuple[Index, dict[str, Any]]:
    from .chunking import ChunkSettings
    from .index import Index
    from .transcripts import read_corpus

    started = time.perf_counter()
    err(f"reading {', '.join(map(str, paths))}")
    docs = read_corpus(*paths)
    defaults = ChunkSettings()
    settings = ChunkSettings(max_tokens=max_tokens or defaults.max_tokens, overlap_turns=overlap if overlap is not None else defaults.overlap_turns)
    progress = Progress(f"embedding {sum(len(d.turns) for d in docs)} turns")
    try:
        index = Index.build(docs, embedder=embedder, settings=settings, progress=progress)
    finally:
        progress.close()
    index.save(output)
    seconds = time.perf_counter() - started
    summary = {"index": str(output), "chunks": len(index), "sources": len(docs), "seconds": round(seconds, 2)}
    return index, summary


def open_index(path: Path, embedder: str | None = None) -> Index:
    """Load an index; the default one is built from seeds/ on first use."""
    from .index import Index

    if path == DEFAULT_INDEX and not (path / "manifest.json").exists() and DEFAULT_CORPUS.is_dir():
        err(f"no index at {path} yet; building it from {DEFAULT_CORPUS}/ (first run only)")
        index, summary = build_index([DEFAULT_CORPUS], path, embedder, None, None)
        err(f"built {summary['chunks']} chunks from {summary['sources']} sources in {summary['seconds']} s")
        return index
    return Index.load(path, embedder=embedder)


@app.command()
def index(
    paths: list[Path] = typer.Argument(None, help="Transcript files or folders (default: seeds/)."),
    output: Path = typer.Option(DEFAULT_INDEX, "-o", "--output", "-i", "--index", help="Index folder to write."),
    embedder: str | None = EmbedderOpt,
    max_tokens: int | None = typer.Option(None, "--max-tokens", min=16, help="Chunk budget in tiktoken tokens (default 200)."),
    overlap: int | None = typer.Option(None, "--overlap", min=0, help="Turns repeated between neighbouring chunks (default 0)."),
    as_json: bool = JsonOpt,
) -> None:
    """Build an index from transcript files or folders."""
    _, summary = build_index(list(paths or [DEFAULT_CORPUS]), output, embedder, max_tokens, overlap)
    if as_json:
        emit_json(summary)
    else:
        typer.echo(f"indexed {summary['chunks']} chunks from {summary['sources']} sources into {output} in {summary['seconds']} s")


@app.command()
def search(
    query: str = typer.Argument(..., help="What to search for."),
    index_path: Path = IndexOpt,
    k: int = TopK,
    embedder: str | None = EmbedderOpt,
    speaker: str | None = SpeakerOpt,
    source: str | None = SourceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the passages most similar to QUERY, with scores."""
    check_text(query, "query")
    from .render import render_hits

    hits = open_index(index_path, embedder).search(query, k=k, speaker=speaker, source=source)
    if as_json:
        emit_json({"query": query, "k": k, "hits": [asdict(h) for h in hits]})
    else:
        typer.echo(render_hits(hits, query))


@app.command()
def ask(
    question: str = typer.Argument(..., help="A question about the corpus."),
    index_path: Path = IndexOpt,
    k: int = TopK,
    embedder: str | None = EmbedderOpt,
    speaker: str | None = SpeakerOpt,
    source: str | None = SourceOpt,
    answerer: str = typer.Option("extractive", "-a", "--answerer", help="extractive, llm[:model] or package.module:Class."),
    as_json: bool = JsonOpt,
) -> None:
    """Answer QUESTION from the corpus, citing the passages used."""
    check_text(question, "question")
    from .answer import ask as run_ask
    from .render import render_answer

    answer = run_ask(open_index(index_path, embedder), question, k=k, answerer=answerer, speaker=speaker, source=source)
    if as_json:
        emit_json(asdict(answer))
    else:
        typer.echo(render_answer(answer))


@app.command()
def info(index_path: Path = IndexOpt, as_json: bool = JsonOpt) -> None:
    """Show what an index holds and whether its sources changed since it was built."""
    from .index import Index
    from .render import render_info

    idx = Index.load(index_path)
    data = {"path": str(index_path), "manifest": idx.manifest, "status": [asdict(s) for s in idx.status()]}
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else render_info(data))


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(f"ragkit {__version__}")
        raise typer.Exit()


class _StderrHandler(logging.StreamHandler):
    """Library warnings as `warning: ...` lines; looks up sys.stderr each time so tests can capture it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))

    @property
    def stream(self):  # noqa: ANN201
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def _setup_logging() -> None:
    root = logging.getLogger("ragkit")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.addHandler(_StderrHandler())
    if root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)


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
