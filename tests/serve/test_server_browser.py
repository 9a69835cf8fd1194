"""The web page in a real headless Chromium (Debian's, driven by Playwright; no browser is downloaded)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from conftest import live_server
from playwright.sync_api import Browser, Page, sync_playwright

from ragkit.serve.app import create_app
from ragkit.serve.state import Served

CHROMIUM = "/usr/bin/chromium"  # apt-get install -y chromium (done by .ci/run)
ROOT = Path(__file__).parents[2]
RESULTS = ROOT / "eval" / "results"
XSS = ('Mallory (00:01): <script>window.__xss = 1</script> Look at <img src=x onerror="window.__xss=2"> the gardens and '
       'the compost bins by the shed.\n\nBob (00:05): The compost bins in the gardens need turning every week, Mallory.\n')


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("browser")
    corpus = root / "corpus"
    corpus.mkdir()
    for path in (ROOT / "eval" / "corpora" / "real").iterdir():
        shutil.copy(path, corpus / path.name)
    (corpus / "garden-club.txt").write_text(XSS, encoding="utf-8")
    (corpus / "garden-club.meta.json").write_text(json.dumps({"title": "Garden club <i>minutes</i>", "url": "javascript:alert(1)"}), encoding="utf-8")
    index = root / "idx"
    subprocess.run([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(index)], check=True, capture_output=True)
    with live_server(create_app(Served(index))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs  # type: ignore[attr-defined]
    yield page
    context.close()


def search(page: Page, base: str, query: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=q]", query)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_search_shows_highlighted_passages_and_a_time_opens_the_transcript(page: Page, base: str) -> None:
    search(page, base, "tailwind CSS bumper bowling")
    hits = page.locator("li.hit")
    assert hits.count() >= 3
    assert page.locator("li.hit mark").count() >= 3  # the query's words are marked
    first = page.locator("li.hit a.time").first
    href = first.get_attribute("href")
    assert href and href.startswith("/source/") and "#t=" in href
    first.click()
    page.wait_for_load_state()
    second = int(href.split("#t=")[1])
    assert page.url.endswith(f"#t={second}")
    target = page.locator(":target")
    assert target.count() == 1 and target.get_attribute("id") == f"t={second}"  # the turn at that second is shown
    page.screenshot(path=str(RESULTS / "serve_transcript.png"))


def test_ask_shows_an_answer_with_numbered_citations(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=q]", "How long did Carol spend mentoring the new engineer?")
    page.check("input[value=ask]")
    with page.expect_response("**/api/ask") as response:
        page.click("button[type=submit]")
    assert response.value.headers["content-type"].startswith("text/event-stream")  # streamed, not a page load
    page.wait_for_selector("#live ol.citations li")
    assert "10 solid working days" in page.inner_text("#live .text") and "[1]" in page.inner_text("#live .text")
    assert page.locator("#live ol.citations li a.time").count() >= 1
    page.screenshot(path=str(RESULTS / "serve_page.png"), full_page=True)


def test_speaker_filter_keeps_only_that_speaker(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=q]", "compiler")
    page.select_option("select[name=speaker]", "Rob Pike")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    wheres = page.locator("li.hit .where").all_inner_texts()
    assert wheres and all("Rob Pike" in w for w in wheres)


def test_hostile_transcript_renders_inert(page: Page, base: str) -> None:
    search(page, base, "compost bins gardens")
    assert "<script>window.__xss = 1</script>" in page.inner_text("ol.hits")  # shown as text
    assert page.evaluate("typeof window.__xss") == "undefined" and page.dialogs == []  # type: ignore[attr-defined]
    assert page.locator("ol.hits img").count() == 0 and page.locator("a[href^='javascript:']").count() == 0
    assert "Garden club <i>minutes</i>" in page.inner_text("ol.hits")


def test_search_works_without_javascript_and_on_a_phone(browser: Browser, base: str) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 740})
    page = context.new_page()
    search(page, base, "ferrite tiles chamber")
    assert page.locator("li.hit").count() >= 1 and page.locator("li.hit mark").count() >= 1  # a plain GET form, no script
    page.goto(base + "/?" + urlencode({"q": "How long did Carol spend mentoring the new engineer?", "mode": "ask"}))
    assert "10 solid working days" in page.inner_text("#answer-text")  # Ask without script: rendered by the server
    context.close()
    phone = browser.new_context(viewport={"width": 375, "height": 740})
    page = phone.new_page()
    search(page, base, "ferrite tiles chamber")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling
    page.screenshot(path=str(RESULTS / "serve_phone.png"))
    phone.close()


def test_ask_streams_an_llm_answer_into_the_page(browser: Browser, base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "answer"))
    from llm_server import ChatServer, Reply

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "garden-club.txt").write_text(XSS, encoding="utf-8")
    idx = tmp_path / "idx"
    subprocess.run([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(idx), "-e", "hash:256"], check=True, capture_output=True)
    monkeypatch.setenv("RAGKIT_LLM_MODEL", "test-model")
    with ChatServer(Reply("The bins need turning every week [1].")) as chat:
        monkeypatch.setenv("RAGKIT_LLM_BASE_URL", chat.url)
        with live_server(create_app(Served(idx, answerer="llm"))) as url:
            context = browser.new_context()
            page = context.new_page()
            page.goto(url + "/")
            page.fill("input[name=q]", "How often do the compost bins need turning?")
            page.check("input[value=ask]")
            page.click("button[type=submit]")
            page.wait_for_selector("#live ol.citations li")
            assert page.inner_text("#live .text") == "The bins need turning every week [1]."
            assert "Bob" in page.inner_text("#live ol.citations")
            context.close()
