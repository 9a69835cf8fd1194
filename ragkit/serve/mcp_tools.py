"""The MCP face: tools over the served index, each result capped near 20,000 characters with a cursor to page on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import api
from .state import Limits, Served

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

CAP = 20_000  # characters of one tool result; agent hosts reject much larger ones


def record(hit: dict[str, Any]) -> dict[str, Any]:
    """One passage as an agent needs it: where it is, who says it, when, a link, the text, the score."""
    chunk = hit["chunk"]
    return {
        "chunk_id": chunk["id"], "source": chunk["source"], "title": chunk["title"],
        "speaker": hit.get("speaker") or (", ".join(chunk["speakers"]) or None),
        "start": hit.get("start") if hit.get("start") is not None else chunk["start"], "end": chunk["end"],
        "link": hit.get("link"), "text": chunk["text"], "score": round(float(hit.get("score", 0.0)), 4),
    }


def page(items: list[dict[str, Any]], cursor: str | None, key: str) -> dict[str, Any]:
    """items from the cursor on, as many as fit in CAP characters; next_cursor when more remain."""
    try:
        start = int(cursor) if cursor else 0
    except ValueError:
        raise ValueError(f"cursor {cursor!r}: pass the next_cursor of the previous result") from None
    out: list[dict[str, Any]] = []
    size = 200
    for n in range(start, len(items)):
        item = items[n]
        length = len(json.dumps(item, ensure_ascii=False))
        if out and size + length > CAP:
            return {key: out, "next_cursor": str(n)}
        if not out and length > CAP:  # one huge passage: cut its text rather than fail
            item = {**item, "text": item.get("text", "")[: CAP - 1000] + " …"}
        out.append(item)
        size += length
    return {key: out, "next_cursor": None}


def build(served: Served, limits: Limits, host: str = "127.0.0.1") -> MCPServer:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(
        "ragkit", instructions="Search podcast, interview and meeting transcripts and get cited answers. "
        "Passages carry source, speaker and time; quote them verbatim.",
    )

    def params(**values: Any) -> dict[str, str]:
        return {k: str(v) for k, v in values.items() if v is not None}

    def tool_error(fn: Any) -> Any:
        """A refused request is the caller's error (a tool error with the API's message), not a server fault."""
        import functools

        from mcp.server.mcpserver.exceptions import ToolError

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (api.ApiError, ValueError) as exc:
                raise ToolError(str(exc)) from None

        return call

    @server.tool(description="Search the transcripts. Returns {results: [{chunk_id, source, title, speaker, start, end (seconds), "
                 "link, text, score}], next_cursor}: the best passages first; pass next_cursor back to get the rest.")
    @tool_error
    def search(query: str, k: int = 5, speaker: str | None = None, source: str | None = None, cursor: str | None = None) -> dict[str, Any]:
        found = api.search(served, params(q=query, k=k, speaker=speaker, source=source), limits)
        return page([record(h) for h in found["hits"]], cursor, "results")

    @server.tool(description="Answer a question from the transcripts. Returns {answer, supported, citations: [{marker, source, "
                 "title, speaker, start, end, link, quote}]}; the answer's [n] markers refer to the citations; an empty "
                 "answer means the transcripts do not say.")
    @tool_error
    def ask(question: str, k: int = 5) -> dict[str, Any]:
        answer = api.ask(served, params(q=question, k=k), limits)
        citations = [{key: c.get(key) for key in ("marker", "source", "title", "speaker", "start", "end", "link", "quote")}
                     for c in answer["citations"]]
        result = {"answer": answer["text"], "supported": answer["supported"], "citations": citations}
        while len(json.dumps(result, ensure_ascii=False)) > CAP and result["citations"]:
            result["citations"] = result["citations"][:-1]
        return result

    @server.tool(description="One passage by chunk_id with the turns before and after it. Returns {passage: {chunk_id, source, "
                 "title, speaker, start, end, link, text}, before: [turns], after: [turns]}; turns are {speaker, start, text}.")
    @tool_error
    def get_passage(chunk_id: str, before: int = 1, after: int = 1) -> dict[str, Any]:
        hit = api.passage(served, chunk_id, params(before=before, after=after), limits)

        def turn(t: dict[str, Any]) -> dict[str, Any]:
            return {"speaker": t["speaker"], "start": t["start"], "text": t["text"][:4000]}

        return {"passage": record(hit), "before": [turn(t) for t in hit["before"]], "after": [turn(t) for t in hit["after"]]}

    @server.tool(description="The indexed sources. Returns {sources: [{path, title, date, format, turns, chunks, span}], "
                 "next_cursor}; pass next_cursor back to list more.")
    @tool_error
    def list_sources(cursor: str | None = None) -> dict[str, Any]:
        rows = [{k: s.get(k) for k in ("path", "title", "date", "format", "turns", "chunks", "span")} for s in api.sources(served)["sources"]]
        return page(rows, cursor, "sources")

    return server
