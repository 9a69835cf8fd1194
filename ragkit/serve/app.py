"""The Starlette application: the web page, the JSON API and the MCP endpoint over one served index."""

from __future__ import annotations

import asyncio
import hmac
import json
import re
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..datatypes import Citation, Hit, format_time
from ..errors import RagkitError
from . import api, mcp_tools
from .api import ApiError
from .state import Limits, Served

HERE = Path(__file__).parent
COOKIE = "ragkit_token"
_WORD = re.compile(r"[^\W_]+", re.U)


def highlight(text: str, query: str) -> Markup:
    """text, HTML-escaped, with the query's words (3+ letters) marked; escaping comes first, so markup stays inert."""
    wanted = {w.casefold() for w in _WORD.findall(query or "") if len(w) >= 3}
    out, last = [], 0
    for m in _WORD.finditer(text):
        out.append(str(escape(text[last : m.start()])))
        word = str(escape(m.group()))
        out.append(f"<mark>{word}</mark>" if m.group().casefold() in wanted else word)
        last = m.end()
    out.append(str(escape(text[last:])))
    return Markup("".join(out))


def time_link(record: Hit | Citation) -> str:
    """The deep link at the record's second (http(s) only, built by ragkit.search) or the transcript view."""
    if record.link and re.match(r"https?://", record.link):
        return record.link
    source = record.chunk.source if isinstance(record, Hit) else record.source
    start = record.start if record.start is not None else 0
    return f"/source/{quote(source)}#t={int(start)}"


def create_app(served: Served, *, token: str | None = None, cors: str | None = None, limits: Limits | None = None,
               host: str = "127.0.0.1") -> Starlette:
    limits = limits or Limits()
    import jinja2

    # autoescape everywhere: transcript text is untrusted ("<script>" in a caption must render as text).
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True))
    templates.env.globals.update(highlight=highlight, fmt_time=format_time, time_link=time_link)
    mcp_app = mcp_tools.build(served, limits, host).streamable_http_app(streamable_http_path="/mcp", host=host)
    llm_slots = threading.BoundedSemaphore(limits.max_llm_calls)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message, "code": status}, status_code=status)

    async def run(fn: Any, *args: Any) -> Response:
        try:
            return JSONResponse(await asyncio.to_thread(fn, *args))
        except ApiError as exc:
            return error(exc.status, str(exc))
        except RagkitError as exc:
            return error(500, str(exc))

    async def api_search(request: Request) -> Response:
        return await run(api.search, served, request.query_params, limits)

    async def api_ask(request: Request) -> Response:
        if request.method == "POST":
            body = await request.body()
            if len(body) > limits.max_body_bytes:
                return error(413, f"request body of {len(body)} bytes; at most {limits.max_body_bytes}")
            try:
                params = json.loads(body or b"{}")
            except ValueError:
                return error(400, "the body is not JSON; send {\"q\": \"your question\", \"k\": 5}")
            if not isinstance(params, dict):
                return error(400, "the body must be a JSON object like {\"q\": \"your question\"}")
        else:
            params = dict(request.query_params)
        if "text/event-stream" in request.headers.get("accept", ""):
            return stream_answer(params)
        if not llm_slots.acquire(blocking=False):
            return error(429, f"{limits.max_llm_calls} answers are being written; retry in a moment")
        try:
            return await run(api.ask, served, params, limits)
        finally:
            llm_slots.release()

    def stream_answer(params: Mapping[str, Any]) -> Response:
        """Server-sent events: `token` events as an LLM writes, then one `answer` event (the --json answer)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def work() -> None:
            if not llm_slots.acquire(blocking=False):
                loop.call_soon_threadsafe(queue.put_nowait, ("error", {"error": "too many answers at once; retry", "code": 429}))
                return
            try:
                answer = api.ask(served, params, limits, on_token=lambda t: loop.call_soon_threadsafe(queue.put_nowait, ("token", t)))
                loop.call_soon_threadsafe(queue.put_nowait, ("answer", answer))
            except ApiError as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", {"error": str(exc), "code": exc.status}))
            except RagkitError as exc:
                loop.call_soon_threadsafe(queue.put_nowait, ("error", {"error": str(exc), "code": 500}))
            finally:
                llm_slots.release()

        async def events() -> AsyncIterator[str]:
            threading.Thread(target=work, daemon=True).start()
            while True:
                kind, data = await queue.get()
                yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
                if kind != "token":
                    return

        return StreamingResponse(events(), media_type="text/event-stream")

    async def api_sources(request: Request) -> Response:
        return await run(api.sources, served)

    async def api_passage(request: Request) -> Response:
        return await run(api.passage, served, request.path_params["chunk_id"], request.query_params, limits)

    async def api_info(request: Request) -> Response:
        return await run(api.info, served)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def page(request: Request) -> Response:
        params = request.query_params
        q, mode = (params.get("q") or "").strip(), params.get("mode") or "search"
        context: dict[str, Any] = {"q": q, "mode": mode, "speaker": params.get("speaker") or "", "source": params.get("source") or "",
                                   "hits": None, "answer": None, "error": None}
        index = served.index
        if q:
            try:
                if mode == "ask":
                    from ..answer import ask as run_ask

                    answer = await asyncio.to_thread(run_ask, index, q[: limits.max_query_chars], 5, served.answerer,
                                                     speaker=context["speaker"] or None, source=context["source"] or None)
                    context["answer"] = api.decorate(served, answer, 0)
                else:
                    hits = await asyncio.to_thread(index.search, q[: limits.max_query_chars], 10, speaker=context["speaker"] or None,
                                                   source=context["source"] or None)
                    context["hits"] = api.decorate(served, hits, 0)
            except RagkitError as exc:
                context["error"] = str(exc)
        context["speakers"] = await asyncio.to_thread(api.speakers, served)
        context["sources"] = index.source_entries()
        context["index_name"] = served.path.name
        return templates.TemplateResponse(request, "index.html", context)

    async def source_page(request: Request) -> Response:
        doc = served.index.documents.get(request.path_params["source"])
        if doc is None:
            return HTMLResponse("<p>No such source in this index.</p>", status_code=404)
        from ..chunking import turn_content

        turns = [{"speaker": t.speaker, "start": t.start, "text": turn_content(t)} for t in doc.turns]
        url = doc.url if doc.url and re.match(r"https?://", doc.url) else None
        return templates.TemplateResponse(request, "source.html", {"doc": {"title": doc.title, "url": url}, "turns": turns,
                                                                   "index_name": served.path.name})

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return templates.TemplateResponse(request, "login.html", {"index_name": served.path.name})
        form = await request.form()
        given = str(form.get("token") or "")
        if token and hmac.compare_digest(given, token):
            response = RedirectResponse("/", status_code=303)
            response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
            return response
        return templates.TemplateResponse(request, "login.html", {"error": "wrong token", "index_name": served.path.name}, status_code=401)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with mcp_app.router.lifespan_context(mcp_app):
            yield

    routes = [
        Route("/", page), Route("/source/{source:path}", source_page), Route("/login", login, methods=["GET", "POST"]),
        Route("/api/search", api_search), Route("/api/ask", api_ask, methods=["GET", "POST"]),
        Route("/api/sources", api_sources), Route("/api/passages/{chunk_id:path}", api_passage), Route("/api/info", api_info),
        Route("/healthz", healthz), Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        *mcp_app.routes,
    ]
    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        detail = "no such endpoint; see /api/search, /api/ask, /api/sources, /api/passages/ID, /api/info, /healthz"
        if request.url.path.startswith("/api/"):
            return error(status, detail if status == 404 else f"method {request.method} is not allowed here")
        return HTMLResponse("<p>Not found. <a href=\"/\">Search</a></p>", status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(500, "internal error; the server log has the details")  # never a traceback to the client

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found, 500: server_error})
    app.add_middleware(_Guard, token=token, cors=cors, max_body=limits.max_body_bytes)
    return app


class _Guard:
    """Bearer-token check (header or the page's cookie), request-size limit and opt-in CORS, before any route."""

    def __init__(self, app: Any, token: str | None, cors: str | None, max_body: int) -> None:
        self.app, self.token, self.cors, self.max_body = app, token, cors, max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        length = headers.get("content-length", "0")
        if length.isdigit() and int(length) > self.max_body and not path.startswith("/mcp"):
            await _json(send, 413, f"request body of {length} bytes; at most {self.max_body}")
            return
        if self.token and path not in ("/login", "/healthz") and not path.startswith("/static/") and not self._allowed(headers):
            if path.startswith(("/api/", "/mcp")):
                await _json(send, 401, "this server needs a token: send 'Authorization: Bearer TOKEN'")
            else:
                await RedirectResponse("/login", status_code=303)(scope, receive, send)
            return

        async def with_cors(message: dict[str, Any]) -> None:
            if self.cors and message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"access-control-allow-origin", self.cors.encode()))
            await send(message)

        await self.app(scope, receive, with_cors)

    def _allowed(self, headers: Mapping[str, str]) -> bool:
        assert self.token is not None
        bearer = headers.get("authorization", "")
        cookies = dict(part.strip().split("=", 1) for part in headers.get("cookie", "").split(";") if "=" in part)
        given = bearer[7:] if bearer.lower().startswith("bearer ") else cookies.get(COOKIE, "")
        return hmac.compare_digest(given.encode(), self.token.encode())


async def _json(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message, "code": status}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
