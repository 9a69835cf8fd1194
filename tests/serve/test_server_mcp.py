"""The MCP face with the SDK's own client: over stdio (`ragkit mcp` as a subprocess) and streamable HTTP (/mcp)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import live_server
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from ragkit.serve.app import create_app
from ragkit.serve.mcp_tools import CAP
from ragkit.serve.state import Served

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mcp")
    corpus = root / "corpus"
    corpus.mkdir()
    for path in (Path(__file__).parents[2] / "eval" / "corpora" / "real").iterdir():
        shutil.copy(path, corpus / path.name)
    out = root / "idx"
    subprocess.run([sys.executable, "-m", "ragkit.cli", "index", str(corpus), "-o", str(out), "-e", "hash:256"], check=True, capture_output=True)
    return out


async def exercise(target: Any) -> dict[str, Any]:
    """List the tools and call each one; page a long search with its cursor."""
    out: dict[str, Any] = {}
    async with Client(target, read_timeout_seconds=60) as client:
        out["tools"] = {t.name: t.description for t in (await client.list_tools()).tools}
        first = (await client.call_tool("search", {"query": "compiler spec language", "k": 40})).structured_content
        out["first"] = first
        if first["next_cursor"]:
            out["second"] = (await client.call_tool("search", {"query": "compiler spec language", "k": 40, "cursor": first["next_cursor"]})).structured_content
        out["ask"] = (await client.call_tool("ask", {"question": "Who wrote a compiler for the Go spec on his own?"})).structured_content
        chunk = first["results"][0]["chunk_id"]
        out["passage"] = (await client.call_tool("get_passage", {"chunk_id": chunk, "before": 1, "after": 1})).structured_content
        out["sources"] = (await client.call_tool("list_sources", {})).structured_content
        out["bad"] = await client.call_tool("get_passage", {"chunk_id": "nope"})
    return out


def check(out: dict[str, Any]) -> None:
    assert set(out["tools"]) == {"search", "ask", "get_passage", "list_sources"}
    assert all("Returns" in d for d in out["tools"].values())  # each says what it returns
    first = out["first"]
    assert len(json.dumps(first)) <= CAP + 1000 and first["next_cursor"], len(json.dumps(first))
    keys = {"chunk_id", "source", "title", "speaker", "start", "end", "link", "text", "score"}
    assert all(set(r) == keys for r in first["results"])
    seen = [r["chunk_id"] for r in first["results"] + out["second"]["results"]]
    assert len(seen) == len(set(seen))  # the second page continues, it does not repeat
    assert out["ask"]["citations"] and out["ask"]["answer"]
    assert out["passage"]["passage"]["chunk_id"] == first["results"][0]["chunk_id"]
    assert {s["path"] for s in out["sources"]["sources"]} >= {"go-time-100.md", "otter_ladybug_nextjs.txt"}
    assert out["bad"].is_error and "no passage 'nope'" in json.dumps(out["bad"].model_dump())


def test_mcp_over_stdio(index: Path) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "ragkit.cli", "mcp", "-i", str(index)])
    check(asyncio.run(exercise(params)))


def test_mcp_over_streamable_http(index: Path) -> None:
    with live_server(create_app(Served(index))) as base:
        check(asyncio.run(exercise(f"{base}/mcp")))
