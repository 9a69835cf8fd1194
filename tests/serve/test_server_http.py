"""`ragkit serve` over HTTP: a real uvicorn server on loopback, the CLI's --json shapes, errors, auth, reload."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from conftest import live_server, run_main

from ragkit.serve.app import create_app
from ragkit.serve.state import Served

FIXTURES = Path(__file__).parents[1] / "fixtures"
SEEDS = Path(__file__).parents[2] / "seeds"
XSS = ('Mallory (00:01): <script>window.__xss = 1</script> Look at <img src=x onerror="window.__xss=2"> the gardens, '
       'javascript:alert(1) and more about compost bins.\n\nBob (00:05): The compost bins in the gardens need turning weekly.\n')


@pytest.fixture(scope="module")
def mixed_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mixed-format corpus (Otter, Descript, Zoom VTT, hostile text) indexed with the hash embedder."""
    root = tmp_path_factory.mktemp("served")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ("otter_ladybug_nextjs.txt", "descript_workingcode_049.md", "podscript_oxide_compliance.txt"):
        shutil.copy(FIXTURES / "real" / name, corpus / name)
    shutil.copy(FIXTURES / "formats" / "zoom.vtt", corpus / "zoom.vtt")
    (corpus / "xss.txt").write_text(XSS, encoding="utf-8")
    (corpus / "xss.meta.json").write_text(json.dumps({"title": "<b>bold</b> title", "url": "javascript:alert(1)"}), encoding="utf-8")
    index = root / "idx"
    subprocess.run([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(index), "-e", "hash:256"], check=True, capture_output=True)
    return index


@pytest.fixture(scope="module")
def url(mixed_index: Path) -> str:
    with live_server(create_app(Served(mixed_index))) as base:
        yield base


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    code, out, err = run_main([*argv, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_search_returns_exactly_the_cli_json(url: str, mixed_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    got = httpx.get(f"{url}/api/search", params={"q": "compost bins", "k": 3, "speaker": "bob"}).json()
    assert got == cli_json(["search", "compost bins", "-i", str(mixed_index), "-k", "3", "--speaker", "bob"], capsys)
    assert got["hits"] and {h["speaker"] for h in got["hits"]} == {"Bob"}


def test_ask_get_and_post_return_the_cli_answer(url: str, mixed_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = cli_json(["ask", "How often do the compost bins need turning?", "-i", str(mixed_index)], capsys)
    assert httpx.get(f"{url}/api/ask", params={"q": "How often do the compost bins need turning?"}).json() == expected
    assert httpx.post(f"{url}/api/ask", json={"q": "How often do the compost bins need turning?"}).json() == expected
    assert "weekly" in expected["text"]


def test_ask_streams_server_sent_events(url: str) -> None:
    with httpx.stream("POST", f"{url}/api/ask", json={"q": "How often do the compost bins need turning?"},
                      headers={"Accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert events[-1] == "answer"


def test_ask_streams_llm_tokens_then_the_answer(mixed_index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "answer"))
    from llm_server import ChatServer, Reply

    monkeypatch.setenv("RAGKIT_LLM_MODEL", "test-model")
    with ChatServer(Reply("The bins need turning weekly [1].")) as chat:
        monkeypatch.setenv("RAGKIT_LLM_BASE_URL", chat.url)
        with live_server(create_app(Served(mixed_index, answerer="llm"))) as base:
            with httpx.stream("POST", f"{base}/api/ask", json={"q": "How often do the compost bins need turning?"},
                              headers={"Accept": "text/event-stream"}, timeout=60) as response:
                lines = list(response.iter_lines())
    kinds = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    assert kinds.count("token") >= 2 and kinds[-1] == "answer", kinds
    answer = json.loads(lines[lines.index("event: answer") + 1].removeprefix("data: "))
    assert answer["text"] == "The bins need turning weekly [1]." and answer["citations"]


def test_sources_passages_info_and_health(url: str) -> None:
    sources = httpx.get(f"{url}/api/sources").json()["sources"]
    assert {s["path"] for s in sources} >= {"xss.txt", "zoom.vtt", "otter_ladybug_nextjs.txt"}
    assert all("file" not in s for s in sources)  # the server does not reveal local paths
    hit = httpx.get(f"{url}/api/search", params={"q": "Gatsby headless commerce", "k": 1}).json()["hits"][0]
    passage = httpx.get(f"{url}/api/passages/{quote(hit['chunk']['id'], safe='')}", params={"before": 1, "after": 1}).json()
    assert passage["chunk"] == hit["chunk"] and len(passage["before"]) <= 1 and len(passage["after"]) <= 1
    info = httpx.get(f"{url}/api/info").json()
    assert info["manifest"]["counts"]["sources"] == len(sources) and "corpus" not in info["manifest"]
    assert httpx.get(f"{url}/healthz").json() == {"ok": True}


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/api/search", {"q": ""}, 400, "q is empty"),
    ("/api/search", {"q": "x", "k": "0"}, 400, "k=0: must be between 1 and 50"),
    ("/api/search", {"q": "x", "k": "many"}, 400, "k='many'"),
    ("/api/search", {"q": "x", "mode": "psychic"}, 400, "--mode 'psychic': choose one of hybrid, rrf, dense, lexical"),
    ("/api/search", {"q": "x" * 1001}, 400, "at most 1000"),
    ("/api/passages/no-such-chunk", {}, 404, "no passage 'no-such-chunk'"),
])
def test_bad_requests_are_json_errors_with_the_cli_message(url: str, path: str, params: dict, status: int, message: str) -> None:
    response = httpx.get(f"{url}{path}", params=params)
    body = response.json()
    assert response.status_code == status and body["code"] == status and message in body["error"], body
    assert "Traceback" not in response.text


def test_unknown_endpoints_and_methods_are_json_errors(url: str) -> None:
    missing = httpx.get(f"{url}/api/nothing")
    assert missing.status_code == 404 and missing.json()["code"] == 404
    wrong = httpx.delete(f"{url}/api/search")
    assert wrong.status_code == 405 and wrong.json()["code"] == 405


@pytest.mark.integration
def test_seeds_with_the_real_model_answer_as_the_cli_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ragkit

    index = tmp_path / "seeds-idx"
    ragkit.Index.build(ragkit.read_corpus(SEEDS)).save(index)
    expected = cli_json(["ask", "Why is data the bottleneck?", "-i", str(index)], capsys)
    with live_server(create_app(Served(index))) as base:
        got = httpx.get(f"{base}/api/ask", params={"q": "Why is data the bottleneck?"}, timeout=60).json()
        page = httpx.get(f"{base}/", params={"q": "Why is data the bottleneck?", "mode": "ask"}, timeout=60).text
    assert got == expected and got["citations"]
    assert "https://www.accel.com/spotlighton/scale-alexandr-wang?t=" in page  # the seeds' deep links, at the quote's second


def test_oversized_and_malformed_bodies(url: str) -> None:
    big = httpx.post(f"{url}/api/ask", content=b"{" + b" " * 70_000 + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["code"] == 413
    bad = httpx.post(f"{url}/api/ask", content=b"not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]


def test_html_escapes_hostile_transcripts(url: str) -> None:
    page = httpx.get(f"{url}/", params={"q": "compost gardens"}).text
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in page and "<script>window.__xss" not in page
    assert "<img src=x" not in page and "&lt;b&gt;bold&lt;/b&gt; title" in page
    assert 'href="javascript:' not in page and "/source/xss.txt#t=" in page  # the sidecar's javascript: url is no link
    source = httpx.get(f"{url}/source/xss.txt").text
    assert "&lt;script&gt;" in source and "<script>window" not in source and 'id="t=1"' in source


def test_token_is_required_and_cors_is_opt_in(mixed_index: Path) -> None:
    with live_server(create_app(Served(mixed_index), token="s3cret", cors="https://app.example")) as base:
        assert httpx.get(f"{base}/api/search", params={"q": "compost"}).status_code == 401
        ok = httpx.get(f"{base}/api/search", params={"q": "compost"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example"
        page = httpx.get(f"{base}/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login"
        with httpx.Client(base_url=base) as browser:
            assert browser.post("/login", data={"token": "wrong"}).status_code == 401
            assert browser.post("/login", data={"token": "s3cret"}, follow_redirects=True).status_code == 200
            assert browser.get("/", params={"q": "compost"}).status_code == 200  # the cookie carries the token
    with live_server(create_app(Served(mixed_index))) as base:
        assert "access-control-allow-origin" not in httpx.get(f"{base}/healthz").headers


def test_a_new_published_version_is_served_without_restart(tmp_path: Path) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(FIXTURES / "real" / "otter_radical_ai.txt", corpus / "a.txt")
    index = tmp_path / "idx"
    build = [sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(index), "-e", "hash:64"]
    subprocess.run(build, check=True, capture_output=True)
    with live_server(create_app(Served(index))) as base:
        assert [s["path"] for s in httpx.get(f"{base}/api/sources").json()["sources"]] == ["a.txt"]
        shutil.copy(FIXTURES / "real" / "podscript_oxide_cad.txt", corpus / "b.txt")
        subprocess.run(build, check=True, capture_output=True)
        assert sorted(s["path"] for s in httpx.get(f"{base}/api/sources").json()["sources"]) == ["a.txt", "b.txt"]


def test_serve_command_prints_its_url_and_stops_cleanly_on_ctrl_c(mixed_index: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ragkit.cli", "serve", "-i", str(mixed_index), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 60
        while "serving" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()  # type: ignore[union-attr]
        base = line.split(" at ", 1)[1].split("/", 3)[:3]
        assert httpx.get("/".join(base) + "/healthz").json() == {"ok": True}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_other_addresses_need_a_token(mixed_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(["serve", "-i", str(mixed_index), "--host", "0.0.0.0"], capsys)
    assert code == 2 and "pass --token" in err and err.count("\n") == 1


def test_cli_commands_do_not_import_the_server_stack() -> None:
    probe = ("import sys\nfrom ragkit.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in ('starlette', 'uvicorn', 'jinja2', 'mcp') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
