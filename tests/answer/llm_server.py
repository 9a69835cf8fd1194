"""A loopback OpenAI-compatible chat completions server for tests, told how to (mis)behave per request."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# A reply's text may depend on the request (for example to cite a passage that was sent).
ReplyText = str | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Reply:
    """What the server does with one request."""

    text: ReplyText = "The passages say so [1]."
    status: int = 200
    delay: float = 0.0  # seconds before the status line: longer than the client timeout means a timeout
    raw: bytes | None = None  # sent verbatim as the body instead of a well-formed reply (malformed JSON)
    raw_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str | None = "stop"
    echo_auth: bool = False  # error bodies repeat the Authorization header, as some real APIs do
    break_after: int | None = None  # stream this many pieces, then drop the connection mid-body
    done: bool = True  # end a stream with `data: [DONE]`
    drip: str | None = None  # "comments": SSE keep-alive comments, "tokens": endless tokens, "bytes": a JSON body a byte at a time
    drip_every: float = 0.05  # seconds between drips; a drip goes on for at most DRIP_LIMIT seconds
    size: int = 0  # with raw=None and size > 0: a well-formed non-streamed reply whose text has this many characters


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class ChatServer:
    """`with ChatServer() as s:` serves on 127.0.0.1 at a free port; `s.url` is the `/v1` base URL."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply()
        self.script: list[Reply] = []  # replies for the next requests, in order; then the default
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def then(self, *replies: Reply) -> ChatServer:
        self.script.extend(replies)
        return self

    def next_reply(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else self.default

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler_for(server: ChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            received = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            reply = server.next_reply(received)
            time.sleep(reply.delay)
            try:
                _respond(self, reply, received)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing left to say

    return Handler


def _respond(h: BaseHTTPRequestHandler, reply: Reply, received: Received) -> None:
    if received.path != "/v1/chat/completions":
        return _send(h, 404, {"error": {"message": f"no route {received.path}"}}, reply.headers)
    if reply.status != 200:
        auth = received.headers.get("authorization", "") if reply.echo_auth else ""
        return _send(h, reply.status, {"error": {"message": f"failure {reply.status} {auth}".strip()}}, reply.headers)
    if reply.raw is not None:
        return _send_bytes(h, 200, reply.raw, reply.raw_type, reply.headers)
    if reply.drip is not None:
        return _drip(h, reply)
    text = reply.text(received.body) if callable(reply.text) else reply.text
    if reply.size:
        text = ("x" * 99 + " ") * (reply.size // 100)
    if received.body.get("stream"):
        return _stream(h, text, reply)
    message = {"role": "assistant", "content": text}
    data = {"id": "cmpl-1", "object": "chat.completion", "model": received.body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}]}
    _send(h, 200, data, reply.headers)


def _stream(h: BaseHTTPRequestHandler, text: str, reply: Reply) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "text/event-stream")
    if reply.break_after is not None:
        h.send_header("Content-Length", "1000000")  # promise more than is sent, so the client sees a broken body
    h.end_headers()
    pieces = [p for p in text.replace(" ", " \0").split("\0") if p]  # word by word, spaces kept
    for n, piece in enumerate(pieces):
        if n == reply.break_after:
            return
        finish = reply.finish_reason if n == len(pieces) - 1 else None
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": finish}]}
        h.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        h.wfile.flush()
    if reply.done:
        h.wfile.write(b"data: [DONE]\n\n")


DRIP_LIMIT = 20.0  # seconds: a dripping reply stops by itself, so a test can never hang on it


def _drip(h: BaseHTTPRequestHandler, reply: Reply) -> None:
    """A reply that never completes: keep-alive comments, tokens for ever, or a JSON body one byte at a time."""
    h.send_response(200)
    h.send_header("Content-Type", "application/json" if reply.drip == "bytes" else "text/event-stream")
    h.end_headers()
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "more "}, "finish_reason": None}]}
    piece = {"comments": b": keep-alive\n\n", "tokens": f"data: {json.dumps(chunk)}\n\n".encode(), "bytes": b" "}[reply.drip]
    end = time.monotonic() + DRIP_LIMIT
    h.wfile.write(b'{"choices": ' if reply.drip == "bytes" else b"")
    while time.monotonic() < end:
        h.wfile.write(piece)
        h.wfile.flush()
        time.sleep(reply.drip_every)


def _send(h: BaseHTTPRequestHandler, status: int, data: dict[str, Any], headers: dict[str, str]) -> None:
    _send_bytes(h, status, json.dumps(data).encode(), "application/json", headers)


def _send_bytes(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, headers: dict[str, str]) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)
