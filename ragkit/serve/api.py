"""The JSON API's answers, as plain data: exactly the CLI's `--json` shapes, and errors as {"error", "code"}."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from ..datatypes import Hit
from ..errors import RagkitError, UsageError
from .state import Limits, Served

# Source fields a server does not publish: the file's path on the server's disk, and what updates compare.
HIDDEN = frozenset({"file", "fingerprint", "text_sha", "segment", "row", "first_chunk", "lex_row"})


class ApiError(Exception):
    """A request the server refuses: HTTP status and a one-line message (the CLI's usage error text)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _int(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)  # type: ignore[arg-type]
    except ValueError:
        raise ApiError(400, f"{name}={raw!r}: give a whole number between {low} and {high}") from None
    if not low <= value <= high:
        raise ApiError(400, f"{name}={value}: must be between {low} and {high}")
    return value


def _text(params: Mapping[str, str], name: str, limits: Limits) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise ApiError(400, f"{name} is empty; pass a question, e.g. ?{name}=why+is+data+the+bottleneck")
    if len(value) > limits.max_query_chars:
        raise ApiError(400, f"{name} is {len(value)} characters; at most {limits.max_query_chars}")
    return value


def search_options(params: Mapping[str, str]) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if params.get("mode"):
        opts["mode"] = params["mode"]
    if params.get("budget"):
        opts["budget"] = _int(params, "budget", 0, 0, 8000)
    if params.get("weight"):
        try:
            opts["weight"] = float(params["weight"])
        except ValueError:
            raise ApiError(400, f"weight={params['weight']!r}: give a number between 0 and 1") from None
    return opts


def decorate(served: Served, result: Any, context: int) -> Any:
    from ..search import with_context, with_links

    index = served.index
    return with_context(with_links(result, served.link_template, index.documents), context, index.documents)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Library errors as API errors: usage errors are the caller's (400), others the server's (500)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ApiError:
            raise
        except UsageError as exc:
            raise ApiError(400, str(exc)) from None
        except RagkitError as exc:
            raise ApiError(500, str(exc)) from None

    return call


@guarded
def search(served: Served, params: Mapping[str, str], limits: Limits) -> dict[str, Any]:
    query = _text(params, "q", limits)
    k = _int(params, "k", 5, 1, limits.max_k)
    context = _int(params, "context", 0, 0, limits.max_context)
    hits = served.index.search(query, k=k, speaker=params.get("speaker") or None, source=params.get("source") or None, **search_options(params))
    hits = decorate(served, hits, context)
    return {"query": query, "k": k, "hits": [asdict(h) for h in hits]}


@guarded
def ask(served: Served, params: Mapping[str, Any], limits: Limits, on_token: Callable[[str], None] | None = None) -> dict[str, Any]:
    from ..answer import ask as run_ask
    from ..answer import load_answerer

    params = {k: str(v) for k, v in params.items() if v is not None}
    question = _text(params, "q", limits)
    k = _int(params, "k", 5, 1, limits.max_k)
    context = _int(params, "context", 0, 0, limits.max_context)
    spec = params.get("answerer") or served.answerer
    answerer = load_answerer(spec, on_token=on_token) if spec.startswith("llm") else spec
    answer = run_ask(served.index, question, k=k, answerer=answerer, speaker=params.get("speaker") or None,
                     source=params.get("source") or None, **search_options(params))
    return asdict(decorate(served, answer, context))


def sources(served: Served) -> dict[str, Any]:
    return {"sources": [{k: v for k, v in s.items() if k not in HIDDEN} for s in served.index.source_entries()]}


def speakers(served: Served) -> list[str]:
    """The index's speaker labels, from the retriever's speaker matcher (built once per index, not per page)."""
    from ..search.hybrid import retriever

    return sorted(retriever(served.index).matcher.names)


@guarded
def passage(served: Served, chunk_id: str, params: Mapping[str, str], limits: Limits) -> dict[str, Any]:
    index = served.index
    source = chunk_id.rpartition("#")[0]  # ids are `source#first-last`: only that source's chunks are read
    chunk = next((c for _, c in index.store.chunks_of(source) if c.id == chunk_id), None) if source in index.documents else None
    if chunk is None:
        raise ApiError(404, f"no passage {chunk_id!r} in this index; ids come from search results (hits[].chunk.id)")
    before = _int(params, "before", 1, 0, limits.max_context)
    after = _int(params, "after", 1, 0, limits.max_context)
    from ..search import with_context, with_links

    hit = with_links([Hit(chunk, 0.0, 1)], served.link_template, index.documents)[0]
    around = with_context([hit], max(before, after), index.documents)[0]
    return asdict(replace(around, before=around.before[len(around.before) - before :] if before else (), after=around.after[:after]))


def info(served: Served) -> dict[str, Any]:
    index = served.index
    manifest = {k: v for k, v in index.manifest.items() if k != "corpus"}
    manifest["sources"] = [{k: v for k, v in s.items() if k not in HIDDEN} for s in index.source_entries()]
    return {"path": str(served.path), "manifest": manifest}
