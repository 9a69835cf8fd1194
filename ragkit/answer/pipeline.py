"""Choosing an answerer by spec and `ask()`: retrieve, then answer with citations."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import RagkitError
from .base import Answerer
from .extractive import ExtractiveAnswerer

if TYPE_CHECKING:
    from ..datatypes import Answer
    from ..index.core import Index


def load_answerer(spec: str | Answerer = "extractive", **options: object) -> Answerer:
    """An answerer from its spec: `extractive`, `llm[:model]` or `package.module:Class`."""
    if not isinstance(spec, str):
        return spec
    kind, _, arg = spec.partition(":")
    if kind == "extractive":
        return ExtractiveAnswerer()
    if kind == "llm":
        from .llm import LLMAnswerer

        return LLMAnswerer(model=arg or None, **options)  # type: ignore[arg-type]
    if "." in kind and arg:
        try:
            obj = getattr(importlib.import_module(kind), arg)()
        except (ImportError, AttributeError) as exc:
            raise RagkitError(f"answerer {spec!r}: cannot import {kind}:{arg} ({exc})") from exc
        if isinstance(obj, Answerer):
            return obj
    raise RagkitError(f"answerer {spec!r}: unknown; use extractive, llm[:model] or package.module:Class")


def ask(index: Index, question: str, k: int = 5, answerer: str | Answerer = "extractive", **search_options: object) -> Answer:
    """Retrieve the top k passages and answer from them with citations."""
    hits = index.search(question, k=k, **search_options)  # type: ignore[arg-type]
    return load_answerer(answerer).answer(question, hits, index)
