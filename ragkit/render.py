"""Human-readable text for hits, answers and index info (the CLI prints what these return)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import Any

from .datatypes import Answer, Chunk, Hit
from .subtitles import clean_text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """Terminal-safe text: control and bidi characters shown escaped (the JSON output keeps them)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def format_time(seconds: float | None) -> str:
    """`mm:ss`, or `h:mm:ss` from one hour on."""
    if seconds is None:
        return ""
    total = int(seconds)
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _where(chunk: Chunk, speaker: str | None = None, start: float | None = None) -> str:
    speakers = speaker or ", ".join(chunk.speakers)
    when = format_time(chunk.start if start is None else start)
    parts = [chunk.title, speakers, when]
    return " · ".join(safe(p) for p in parts if p)


def _indent(text: str, width: int = 100, prefix: str = "   ") -> str:
    lines = textwrap.wrap(" ".join(text.split()), width=width - len(prefix)) or [""]
    return "\n".join(prefix + safe(line) for line in lines)


def _excerpt(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


def render_hits(hits: Sequence[Hit], query: str) -> str:
    if not hits:
        return f"No passages match {safe(query)!r} (check --speaker/--source filters)."
    blocks = []
    for hit in hits:
        head = f"{hit.rank:>2}. [{hit.score:.3f}] {_where(hit.chunk)}"
        blocks.append(f"{head}\n{_indent(_excerpt(hit.chunk.text))}\n   ({safe(hit.chunk.id)})")
    return "\n\n".join(blocks)


UNSUPPORTED = "warning: this answer cites no retrieved passage (unsupported)"


def render_answer(answer: Answer) -> str:
    if not answer.text and answer.citations:
        # The answerer failed (an LLM that did not reply): the passages it was given, cited, are still useful.
        return "\n".join(["No answer; the retrieved passages:", "", render_sources(answer, limit=600)])
    if not answer.text:
        out = ["The corpus does not say. Closest passages:", "", render_hits(answer.hits, answer.question)]
        return "\n".join(out)
    out = ["Answer:", _indent(answer.text, prefix="  "), ""]
    if not answer.supported:
        out.insert(0, UNSUPPORTED)
    return "\n".join(out + [render_sources(answer)] if answer.citations else out)


def render_sources(answer: Answer, limit: int | None = None) -> str:
    """The `Sources:` block: marker, title · speaker · time and the quote (cut to `limit` characters if given)."""
    out = ["Sources:"]
    by_id = {h.chunk.id: h.chunk for h in answer.hits}
    for c in answer.citations:
        chunk = by_id.get(c.chunk_id)
        where = _where(chunk, c.speaker, c.start) if chunk else safe(c.source)
        out.append(f"  [{c.marker}] {where}")
        out.append(_indent(f"“{_excerpt(clean_text(c.quote), limit) if limit else clean_text(c.quote)}”", prefix="      "))
    return "\n".join(out)


def render_info(info: dict[str, Any]) -> str:
    m = info["manifest"]
    lines = [
        f"index:    {info['path']}",
        f"model:    {m['embedder']['spec']} ({m['embedder']['dim']} dims)",
        f"chunks:   {m['counts']['chunks']} from {m['counts']['sources']} sources "
        f"(max {m['chunking']['max_tokens']} tokens, overlap {m['chunking']['overlap_turns']} turns)",
        f"created:  {m['created']} by ragkit {m['ragkit_version']}",
        "sources:",
    ]
    states = {s["source"]: s["state"] for s in info.get("status", [])}
    for s in m["sources"]:
        lines.append(f"  {safe(s['path'])}  [{states.get(s['path'], '?')}]  {s['turns']} turns, {s['chunks']} chunks  {safe(s['title'])}")
    changed = [k for k, v in states.items() if v != "unchanged"]
    lines.append("status:   " + (f"{len(changed)} source(s) changed since indexing; re-run ragkit index" if changed else "up to date"))
    return "\n".join(lines)
