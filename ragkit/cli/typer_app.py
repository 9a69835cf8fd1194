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

from .. import __version__
from ..errors import RagkitError, UsageError
from ..storage.location import parse_location, shown
from .terminal import decoded_argument, safe

if TYPE_CHECKING:
    from ..index.core import Index

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

IndexOpt = typer.Option(str(DEFAULT_INDEX), "-i", "--index", help="Index folder, or postgresql://USER@HOST/DB[?index=NAME].")
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
    typer.echo(safe(message), err=True)


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
    value, replaced = decoded_argument(value)
    if replaced:
        err(f"warning: the {what} held bytes that are not valid UTF-8; they were replaced by U+FFFD")
    if not value or not value.strip():
        raise typer.BadParameter(f"the {what} is empty; pass some words, e.g. \"why is data the bottleneck?\"")
    return value


def check_links(template: str | None) -> None:
    """Fail on a bad --link-template before any index is loaded or built."""
    if template is not None:
        from ..search.deep_links import check_template

        check_template(template)


def decorate(result: Any, index: Index, link_template: str | None, context: int) -> Any:
    """Hits or an answer with deep links (from sidecar urls even without a template) and --context turns."""
    from ..search import with_context, with_links

    return with_context(with_links(result, link_template, index.documents), context, index.documents)


def build_index(
    paths: list[Path] | None, output: str | Path, embedder: str | None, max_tokens: int | None, overlap: int | None,
    *, force: bool = False, dry_run: bool = False, follow_symlinks: bool = False, strict: bool = False,
) -> tuple[Index | None, dict[str, Any]]:
    """Create or update the index at output; paths default to the folders it was built from, then seeds/."""
    from ..index.update import recorded_corpus, refresh

    started = time.perf_counter()
    corpus = list(paths or []) or [Path(p) for p in recorded_corpus(output)] or [DEFAULT_CORPUS]
    err(f"reading {', '.join(map(str, corpus))}")
    progress = Progress("embedding chunks")
    try:
        index, report = refresh(
            output, corpus, embedder, max_tokens=max_tokens, overlap_turns=overlap, force=force, dry_run=dry_run, progress=progress,
            follow_symlinks=follow_symlinks, strict=strict,
        )
    finally:
        progress.close()
    summary = {"index": shown(output), **asdict(report), "dry_run": dry_run, "seconds": round(time.perf_counter() - started, 2)}
    return index, summary


def index_message(summary: dict[str, Any]) -> str:
    """One line: what `ragkit index` did (or would do), counted in chunks."""
    counts = f"{summary['added']} added, {summary['changed']} changed, {summary['removed']} removed, {summary['unchanged']} unchanged chunks"
    full = f" (full rebuild: {summary['reason']})" if summary["full"] else ""
    problems = "".join(
        f"; {summary[key]} {'file' if summary[key] == 1 else 'files'} {what}"
        for key, what in (("skipped", "skipped"), ("repaired", "repaired"), ("unrecognised", "read as plain prose"))
        if summary.get(key)
    )
    if summary["dry_run"]:
        return f"dry run, nothing written: {summary['index']} would get {counts}; {summary['embedded']} to embed{full}{problems}"
    if not summary["written"]:
        return f"{summary['index']} is up to date: {counts}; nothing written{problems}"
    return (
        f"updated {summary['index']}: {counts}; embedded {summary['embedded']}{full}; "
        f"{summary['chunks']} chunks from {summary['sources']} sources in {summary['seconds']} s{problems}"
    )


def open_index(location: str | Path, embedder: str | None = None) -> Index:
    """Load an index; the default one is built from seeds/ on first use."""
    from ..index.core import Index

    path = parse_location(location)
    if path == DEFAULT_INDEX and not (path / "manifest.json").exists() and DEFAULT_CORPUS.is_dir():
        from ..storage.lock import index_lock

        with index_lock(path, wait=FIRST_BUILD_WAIT):  # a concurrent first run may be building it: wait, then load
            if not (path / "manifest.json").exists():
                err(f"no index at {path} yet; building it from {DEFAULT_CORPUS}/ (first run only)")
                index, summary = build_index([DEFAULT_CORPUS], path, embedder, None, None)
                err(f"built {summary['chunks']} chunks from {summary['sources']} sources in {summary['seconds']} s")
                if index is not None:
                    return index
    return Index.load(path, embedder=embedder)


@app.callback(invoke_without_command=True)
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    backend: str | None = typer.Option(
        None, "--embedder-backend", help="auto (ONNX, else torch), onnx, onnx-int8 or torch; also RAGKIT_EMBEDDER_BACKEND."
    ),
) -> None:
    if backend is not None:
        from ..embed import BACKEND_ENV, BACKENDS

        if backend not in BACKENDS:
            raise typer.BadParameter(f"{backend!r}: choose one of {', '.join(BACKENDS)}", param_hint="--embedder-backend")
        os.environ[BACKEND_ENV] = backend
    if version:
        typer.echo(f"ragkit {__version__}")
        raise typer.Exit()


class _LineFormatter(logging.Formatter):
    """`warning: ...` for problems; info records (one-time model preparation) read like the CLI's progress lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = safe(record.getMessage())
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




def _setup_logging() -> None:
    root = logging.getLogger("ragkit")
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        root.addHandler(_StderrHandler())
    if root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
    # The one-time ONNX export and int8 copy take 20-30 s: say why the first build waits.
    prepare = logging.getLogger("ragkit.embed.onnx_embedder")
    if prepare.level == logging.NOTSET:
        prepare.setLevel(logging.INFO)


# Options that name the one index a command works on; click keeps only the last of repeated ones, silently.
_ONE_INDEX = {"search": ("-i", "--index"), "ask": ("-i", "--index"), "info": ("-i", "--index"), "index": ("-i", "--index", "-o", "--output")}


def _check_single_index(args: list[str]) -> None:
    """Refuse `-i a -i b`: searching only the last index while the user expects both would be a silent wrong answer."""
    rest = list(args)
    while rest and rest[0].startswith("-"):  # root options before the command
        rest = rest[2:] if rest[0] == "--embedder-backend" else rest[1:]
    if not rest or rest[0] not in _ONE_INDEX:
        return
    names = _ONE_INDEX[rest[0]]
    given = []
    for token in rest[1:]:
        if token == "--":
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token[:2]
        if name in names:
            given.append(name)
    if len(given) > 1:
        raise UsageError(
            f"{'/'.join(names)} given {len(given)} times; ragkit {rest[0]} works on one index: pass it once "
            "(to search several corpora, index them together: ragkit index FOLDER1 FOLDER2 -o BOTH)"
        )


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and map every error to a one-line message and an exit code."""
    _setup_logging()
    try:
        _check_single_index(sys.argv[1:] if argv is None else argv)
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

