"""A client for OpenAI-compatible chat completions (Ollama, llama.cpp server, vLLM, hosted APIs): settings, retries, streaming."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AnswerError, MissingDependencyError
from .llm_settings import KEY_VARS, LLMSettings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

TokenCallback = Callable[[str], None]
_RETRY_STATUS = frozenset({408, 429})  # and every 5xx
_MAX_WAIT = 30.0  # seconds; a longer Retry-After is capped so a run stays bounded
_CHARS_PER_TOKEN = 16  # a reply longer than this many characters per --llm-max-tokens is cut (a token is ~4)
_BODY_SLACK = 64 * 1024  # bytes of JSON framing allowed around a non-streamed reply's text
_HINTS = {
    401: "check the API key (RAGKIT_LLM_API_KEY or OPENAI_API_KEY)",
    403: "check the API key (RAGKIT_LLM_API_KEY or OPENAI_API_KEY)",
    404: "check the base URL (it usually ends in /v1) and the model name",
    429: "the server is rate limiting; wait or raise --llm-retries",
}


def require_httpx() -> Any:
    """The httpx module, or the install hint for the `llm` extra."""
    try:
        import httpx
    except ImportError:
        raise MissingDependencyError("httpx", "llm") from None
    return httpx


@dataclass(frozen=True, slots=True)
class Completion:
    """The model's reply text and how it ended."""

    text: str
    finish_reason: str | None
    complete: bool = True  # False when a stream stopped without its end signal


class _Transient(Exception):
    """A failure worth retrying (timeouts, refused connections, 429, 5xx), with the server's Retry-After if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Deadline(Exception):
    """--llm-timeout passed: final, never retried."""


class ChatClient:
    """One chat completions endpoint; every error message it raises has the API key masked."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._httpx = require_httpx()
        self._deadline = float("inf")

    def __repr__(self) -> str:
        return f"ChatClient(url={self.settings.url!r}, model={self.settings.model!r})"

    def mask(self, text: str) -> str:
        """The text with the key, and any environment variable's raw or escaped form of it, replaced by ***."""
        forms = {self.settings.api_key} | {os.environ.get(v, "") for v in KEY_VARS}
        for form in sorted((f for f in forms if f and f.strip()), key=len, reverse=True):
            for variant in (form, form.strip(), repr(form)[1:-1], repr(form.encode("utf-8", "replace"))[2:-1]):
                if len(variant) >= 4:
                    text = text.replace(variant, "***")
        return text

    def complete(self, messages: Sequence[dict[str, str]], on_token: TokenCallback | None = None) -> Completion:
        """Send the messages (streaming when on_token is given), retrying transient failures with backoff."""
        s = self.settings
        body = {"model": s.model, "messages": list(messages), "temperature": s.temperature, "max_tokens": s.max_tokens,
                "stream": on_token is not None}
        headers = {"Authorization": f"Bearer {s.api_key}"} if s.api_key else {}
        emitted: list[str] = []
        # --llm-timeout bounds the whole call, retries and waits included: httpx's timeout is per read, and a
        # server that trickles bytes or keep-alive comments would otherwise hold `ask` for ever.
        self._deadline = time.monotonic() + s.timeout
        with self._httpx.Client(timeout=s.timeout) as client:
            for attempt in range(s.retries + 1):
                try:
                    return self._once(client, body, headers, on_token, emitted)
                except _Transient as exc:
                    left = self._deadline - time.monotonic()
                    wait = min(exc.retry_after if exc.retry_after is not None else s.backoff * 2**attempt, _MAX_WAIT)
                    # Text already shown to the user cannot be taken back, so a broken stream is final.
                    if attempt == s.retries or emitted or wait >= left:
                        tries = f" (after {attempt + 1} attempts)" if attempt else ""
                        raise AnswerError(self.mask(f"{exc}{tries}")) from None
                    log.info("%s; retrying in %.1f s (%d of %d)", self.mask(str(exc)), wait, attempt + 1, s.retries)
                    time.sleep(wait)
        raise AssertionError("unreachable")

    def _check_deadline(self) -> None:
        if time.monotonic() > self._deadline:
            raise _Deadline(f"no complete reply from {self.settings.url} within {self.settings.timeout:g} s; raise --llm-timeout")

    def _chunks(self, resp: httpx.Response) -> Iterator[bytes]:
        for chunk in resp.iter_bytes():
            self._check_deadline()
            yield chunk

    def _read_body(self, resp: httpx.Response) -> bytes:
        """A non-streamed body, read within the deadline and cut off past the size a reply can sensibly have."""
        limit = _BODY_SLACK + 4 * _CHARS_PER_TOKEN * self.settings.max_tokens
        parts: list[bytes] = []
        size = 0
        for chunk in self._chunks(resp):
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                raise AnswerError(f"the reply from {self.settings.url} is over {limit // 1024} KiB for {self.settings.max_tokens} "
                                  "answer tokens; stopped reading (is --llm-base-url a chat completions endpoint?)")
        return b"".join(parts)

    def _lines(self, resp: httpx.Response) -> Iterator[str]:
        """Lines of an event stream, checked against the deadline as every chunk arrives (not only at line ends)."""
        pending = b""
        for chunk in self._chunks(resp):
            pending += chunk
            if len(pending) > _BODY_SLACK and b"\n" not in pending:
                raise AnswerError(f"a stream line from {self.settings.url} is over {_BODY_SLACK // 1024} KiB; stopped reading")
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.rstrip(b"\r").decode("utf-8", "replace")
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", "replace")

    def _once(self, client: httpx.Client, body: dict[str, Any], headers: dict[str, str], on_token: TokenCallback | None,
              emitted: list[str]) -> Completion:
        httpx, url = self._httpx, self.settings.url
        try:
            left = max(0.01, self._deadline - time.monotonic())
            with client.stream("POST", url, json=body, headers=headers, timeout=left) as resp:
                if resp.status_code != 200:
                    raise self._status_error(resp, self._read_body(resp))
                if body["stream"] and "text/event-stream" in resp.headers.get("content-type", ""):
                    return self._read_events(resp, on_token, emitted)
                completion = self._parse(self._read_body(resp))  # a server may ignore "stream" and send one JSON reply
                if on_token is not None and completion.text:
                    emitted.append(completion.text)
                    on_token(completion.text)
                return completion
        except _Deadline as exc:
            raise AnswerError(str(exc)) from None
        except httpx.TimeoutException:
            raise _Transient(f"no reply from {url} within {self.settings.timeout:g} s; raise --llm-timeout") from None
        except httpx.ConnectError as exc:
            raise _Transient(f"cannot connect to {url} ({exc}); is the server running? set --llm-base-url or RAGKIT_LLM_BASE_URL") from None
        except httpx.TransportError as exc:
            raise _Transient(f"the connection to {url} failed: {exc or type(exc).__name__}") from None

    def _status_error(self, resp: httpx.Response, content: bytes) -> Exception:
        code = resp.status_code
        detail = _error_detail(content)
        message = self.mask(f"{self.settings.url} answered {code} {resp.reason_phrase}" + (f": {detail}" if detail else ""))
        hint = _HINTS.get(code, "")
        message += f"; {hint}" if hint else ""
        if code in _RETRY_STATUS or code >= 500:
            return _Transient(message, _retry_after(resp.headers.get("retry-after")))
        return AnswerError(message)

    def _parse(self, content: bytes) -> Completion:
        try:
            data = json.loads(content)
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError) as exc:
            raise AnswerError(self.mask(f"malformed reply from {self.settings.url} ({type(exc).__name__}: {exc}): {_snippet(content)}")) from None
        return Completion(text, choice.get("finish_reason"))

    def _read_events(self, resp: httpx.Response, on_token: TokenCallback | None, emitted: list[str]) -> Completion:
        """Server-sent events: `data: {chunk}` lines until `data: [DONE]`; each delta goes to on_token."""
        finish, done = None, False
        limit = _CHARS_PER_TOKEN * self.settings.max_tokens
        for line in self._lines(resp):
            if not line.startswith("data:"):
                continue  # blank separators, comments, event names
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            piece, reason = self._event(data)
            finish = reason or finish
            if piece:
                emitted.append(piece)
                if on_token is not None:
                    on_token(piece)
            if sum(map(len, emitted)) > limit:
                log.warning("the reply stream from %s passed %d characters for %d answer tokens; stopped reading",
                            self.settings.url, limit, self.settings.max_tokens)
                return Completion("".join(emitted)[:limit], "length")
        return Completion("".join(emitted), finish, complete=done or finish is not None)

    def _event(self, data: str) -> tuple[str, str | None]:
        try:
            event = json.loads(data)
            if not isinstance(event, dict):
                raise TypeError("an event is not a JSON object")
            if "error" in event:
                raise AnswerError(self.mask(f"{self.settings.url} reported an error mid-stream: {_snippet(data.encode())}"))
            choices = event.get("choices") or [{}]  # a usage-only event has no choices
            if not isinstance(choices, list) or not isinstance(choices[0], dict):
                raise TypeError("choices is not a list of objects")
            piece = (choices[0].get("delta") or {}).get("content") or ""
            if not isinstance(piece, str):
                raise TypeError("delta content is not a string")
        except (ValueError, AttributeError, TypeError, KeyError, IndexError, RecursionError) as exc:
            raise AnswerError(self.mask(f"malformed stream event from {self.settings.url} ({exc}): {_snippet(data.encode())}")) from None
        return piece, choices[0].get("finish_reason")


def _snippet(content: bytes, limit: int = 200) -> str:
    text = " ".join(content.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_detail(content: bytes) -> str:
    """The error message of an OpenAI-style error body, else the start of the body, on one line."""
    try:
        error = json.loads(content).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            return _snippet(message.encode())
    except (ValueError, AttributeError, RecursionError):
        pass
    return _snippet(content)


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
