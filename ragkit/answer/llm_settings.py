"""LLM settings: explicit options, then RAGKIT_LLM_* variables, then defaults; the API key checked up front."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import UsageError

DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"  # Ollama's OpenAI-compatible endpoint on this machine
ENV = {
    "base_url": "RAGKIT_LLM_BASE_URL",
    "model": "RAGKIT_LLM_MODEL",
    "timeout": "RAGKIT_LLM_TIMEOUT",
    "temperature": "RAGKIT_LLM_TEMPERATURE",
    "max_tokens": "RAGKIT_LLM_MAX_TOKENS",
    "context_tokens": "RAGKIT_LLM_CONTEXT_TOKENS",
    "retries": "RAGKIT_LLM_RETRIES",
}
KEY_VARS = ("RAGKIT_LLM_API_KEY", "OPENAI_API_KEY")


@dataclass(frozen=True, slots=True)
class LLMSettings:
    """Where and how to call the model; each field also comes from an environment variable (ENV)."""

    model: str
    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    temperature: float = 0.0
    max_tokens: int = 512
    context_tokens: int = 4096
    retries: int = 2
    backoff: float = 0.5

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


def resolve_settings(**options: Any) -> LLMSettings:
    """Explicit options first, then RAGKIT_LLM_* variables, then defaults; bad values raise with the fix."""
    names = {f.name: f for f in fields(LLMSettings)}
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise UsageError(f"unknown LLM option(s) {', '.join(unknown)}; known: {', '.join(names)}")
    values: dict[str, Any] = {}
    for name, f in names.items():
        value = options.get(name)
        if value is None and name in ENV and os.environ.get(ENV[name], "").strip():
            value = _from_env(ENV[name], f.type)
        if value is not None:
            values[name] = value
    values["api_key"] = _api_key(options.get("api_key"))
    if not values.get("model"):
        raise UsageError("no LLM model given; use -a llm:<model>, --llm-model or RAGKIT_LLM_MODEL (e.g. llama3.2 for Ollama)")
    settings = LLMSettings(**values)
    _check(settings)
    return settings


def _api_key(given: str | None) -> str | None:
    """The key with surrounding white space stripped; a key that cannot go in an HTTP header is a usage error.

    The message names where the key came from, never the key: a stray `\\r` or a non-ASCII character would
    otherwise surface inside an httpx error that echoes the header.
    """
    source, raw = ("api_key", given) if given else next(((v, os.environ[v]) for v in KEY_VARS if os.environ.get(v, "").strip()), ("", None))
    if raw is None:
        return None
    key = raw.strip()
    if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
        where = f"the {source} option" if source == "api_key" else source
        raise UsageError(f"{where} holds characters an API key cannot have (white space inside, control or non-ASCII characters); set it to the bare key")
    return key


def _from_env(var: str, type_name: Any) -> Any:
    raw = os.environ[var].strip()
    kind = {"float": float, "int": int}.get(str(type_name), str)
    try:
        return kind(raw)
    except ValueError:
        raise UsageError(f"{var}={raw!r} is not a valid {kind.__name__}; fix or unset it") from None


def _check(s: LLMSettings) -> None:
    problems = []
    if not re.match(r"https?://[^/\s]+", s.base_url):
        problems.append(f"base URL {s.base_url!r} must start with http:// or https://, e.g. {DEFAULT_BASE_URL}")
    if s.timeout <= 0 or s.max_tokens < 1 or s.retries < 0 or s.backoff < 0:
        problems.append("timeout must be > 0, max tokens >= 1 and retries >= 0")
    if not 0 <= s.temperature <= 2:
        problems.append(f"temperature {s.temperature} must be between 0 and 2")
    if s.context_tokens < s.max_tokens + 64:
        problems.append(f"context budget {s.context_tokens} tokens leaves no room for passages next to {s.max_tokens} answer tokens")
    if problems:
        raise UsageError("LLM settings: " + "; ".join(problems))
