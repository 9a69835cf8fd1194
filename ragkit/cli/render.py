"""Human-readable text for hits, answers and index info (the CLI prints what these return)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from ..chunking import turn_content
from ..datatypes import Answer, Chunk, Document, Hit, Turn, format_time
from ..readers.subtitles import clean_text, span_times
from .terminal import safe


def _where(chunk: Chunk, start: float | None, speaker: str | None = None) -> str:
    speakers = speaker or ", ".join(chunk.speakers)
    when = format_time(start)  # a citation's own time: its chunk's start would be wrong when the quote has none
    parts = [chunk.title, speakers, when]
    return " · ".join(safe(p) for p in parts if p)


def _indent(text: str, width: int = 100, prefix: str = "   ") -> str:
    lines = textwrap.wrap(" ".join(text.split()), width=width - len(prefix)) or [""]
    return "\n".join(prefix + safe(line) for line in lines)


def _excerpt(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + " …"


# --context: turns around a hit or quote, and the hit's own turns, so the hit stands out.
CONTEXT_MARK, HIT_MARK = "|  ", ">> "


def _turn_lines(mark: str, turn: Turn, text: str, start: float | None, indent: str, limit: int) -> list[str]:
    head = " · ".join(safe(p) for p in (turn.speaker or "", format_time(start)) if p)
    return ([indent + mark + head] if head else []) + [_indent(_excerpt(text, limit), prefix=indent + mark)]


def _around(before: Sequence[Turn], focus: list[str], after: Sequence[Turn], indent: str) -> list[str]:
    def lines(turns: Sequence[Turn]) -> list[str]:
        return [line for t in turns for line in _turn_lines(CONTEXT_MARK, t, turn_content(t), t.start, indent, 300)]

    return lines(before) + focus + lines(after)


def _hit_turns(hit: Hit, doc: Document, indent: str) -> list[str]:
    """The hit's own turns, each cut to the hit's span, with the time its text was spoken."""
    c, out = hit.chunk, []
    for turn in doc.turns[c.first_turn : c.last_turn + 1]:
        lo, hi = max(c.char_start, turn.char_start), min(c.char_end, turn.char_end)
        if text := turn_content(turn, lo, hi):
            out += _turn_lines(HIT_MARK, turn, text, span_times(turn, lo, hi)[0], indent, 600)
    return out


def render_hits(hits: Sequence[Hit], query: str, documents: Mapping[str, Document] | None = None) -> str:
    """Ranked hits; with `documents` (--context), each hit as its own turns (>>) amid its context turns (|)."""
    if not hits:
        return f"No passages match {safe(query)!r} (check --speaker/--source filters)."
    blocks = []
    for hit in hits:
        when = hit.start if hit.start is not None else hit.chunk.start
        head = f"{hit.rank:>2}. [{hit.score:.3f}] {_where(hit.chunk, when, hit.speaker)}"
        doc = documents.get(hit.chunk.source) if documents else None
        if doc:
            body = "\n".join(_around(hit.before, _hit_turns(hit, doc, "   "), hit.after, "   "))
        else:
            body = _indent(_excerpt(hit.chunk.text))
        link = f"\n   link: {safe(hit.link)}" if hit.link else ""
        blocks.append(f"{head}\n{body}\n   ({safe(hit.chunk.id)}){link}")
    return "\n\n".join(blocks)


UNSUPPORTED = "warning: this answer cites no retrieved passage (unsupported)"


def render_answer(answer: Answer, documents: Mapping[str, Document] | None = None) -> str:
    if not answer.text and answer.citations:
        # The answerer failed (an LLM that did not reply): the passages it was given, cited, are still useful.
        return "\n".join(["No answer; the retrieved passages:", "", render_sources(answer, limit=600)])
    if not answer.text:
        out = ["The corpus does not say. Closest passages:", "", render_hits(answer.hits, answer.question, documents)]
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
        where = _where(chunk, c.start, c.speaker) if chunk else safe(c.source)
        out.append(f"  [{c.marker}] {where}")
        quote = f"“{_excerpt(clean_text(c.quote), limit) if limit else clean_text(c.quote)}”"
        if c.before or c.after:
            out += _around(c.before, [_indent(quote, prefix="      " + HIT_MARK)], c.after, "      ")
        else:
            out.append(_indent(quote, prefix="      "))
        if c.link:
            out.append(f"      link: {safe(c.link)}")
    return "\n".join(out)


def render_info(info: dict[str, Any]) -> str:
    m = info["manifest"]
    lines = [
        f"index:    {info['path']}",
        f"model:    {m['embedder']['spec']} ({m['embedder']['dim']} dims" + (f", embedded with {m['embedder']['backend']})" if m["embedder"].get("backend") else ")"),
        f"chunks:   {m['counts']['chunks']} from {m['counts']['sources']} sources "
        f"(max {m['chunking']['max_tokens']} tokens, overlap {m['chunking']['overlap_turns']} turns)",
        f"created:  {m['created']} by ragkit {m['ragkit_version']}",
        "sources:",
    ]
    states = {s["source"]: s["state"] for s in info.get("status", [])}
    for s in m["sources"]:
        lines.append(f"  {safe(s['path'])}  [{states.get(s['path'], '?')}]  {_reading(s)}, {s['chunks']} chunks  {safe(s['title'])}")
    new = list(info.get("update", {}).get("new_sources", ()))
    lines += [f"  {safe(path)}  [new]  not indexed yet" for path in new]
    changed = [k for k, v in states.items() if v != "unchanged"] + new
    lines.append("status:   " + (f"{len(changed)} source(s) new or changed since indexing; re-run ragkit index" if changed else "up to date"))
    return "\n".join(lines)


def _reading(source: dict[str, Any]) -> str:
    """`otter, 14 turns, 3 speakers, 0:00:00-0:16:28` (indexes from before ragkit recorded formats show turns only)."""
    parts = [source["format"]] if source.get("format") else []
    parts.append(f"{source['turns']} turns")
    if "speakers_found" in source:
        parts.append(f"{source['speakers_found']} speakers")
    span = source.get("span")
    if isinstance(span, list) and len(span) == 2:
        parts.append(f"{format_time(span[0])}-{format_time(span[1])}")
    if source.get("repairs"):
        parts.append(f"{source['repairs']} repaired")
    return ", ".join(safe(p) for p in parts)
