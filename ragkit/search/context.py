"""The turns around a hit or a cited quote (`--context N`), as fields of a copy of the result."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import islice
from typing import overload

from ..chunking import turn_content
from ..datatypes import Answer, Citation, Document, Hit, Turn
from ..errors import UsageError


def _spoken(turns: Sequence[Turn], order: Iterable[int], n: int) -> tuple[Turn, ...]:
    # Turns without spoken text (empty QMSum utterances, markup-only cues) do not count as context.
    return tuple(islice((turns[i] for i in order if turn_content(turns[i])), n))


def around(turns: Sequence[Turn], first: int, last: int, n: int) -> tuple[tuple[Turn, ...], tuple[Turn, ...]]:
    """Up to n spoken turns before turn `first` and after turn `last`, in source order."""
    before = _spoken(turns, range(first - 1, -1, -1), n)[::-1]
    return before, _spoken(turns, range(last + 1, len(turns)), n)


_SENTENCE = re.compile(r"\S.*?(?:[.!?…]+[\"'”’)\]]*(?=\s)|(?=\n\s*\n)|$)", re.S)


def inside(doc: Document, turn: Turn, lo: int, hi: int) -> tuple[Turn, ...]:
    """The cues (or, in a turn without cues, the sentences) of one turn within [lo, hi), each as a Turn.

    A hit inside one long turn (a lecture, an uncut caption file) has no neighbouring turns; these are its context.
    """
    lo, hi = max(lo, turn.char_start), min(hi, turn.char_end)
    if lo >= hi:
        return ()
    if turn.parts:
        pieces = zip(turn.parts, turn.part_times or [(turn.start, turn.end)] * len(turn.parts))
        return tuple(
            Turn(turn.speaker, doc.text[s:e], start, turn.section, s, e, turn.line, end, ((s, e),), ((start, end),))
            for (s, e), (start, end) in pieces if s >= lo and e <= hi and doc.text[s:e].strip()
        )
    return tuple(
        Turn(turn.speaker, m.group().rstrip(), None, turn.section, m.start(), m.start() + len(m.group().rstrip()), turn.line)
        for m in _SENTENCE.finditer(doc.text, lo, hi) if m.group().strip()
    )


def around_span(doc: Document, first: int, last: int, lo: int, hi: int, n: int) -> tuple[tuple[Turn, ...], tuple[Turn, ...]]:
    """n units before and after the source range [lo, hi) spanning turns first..last: neighbouring turns, and where
    fewer than n exist on a side (a file that is one long turn), the nearest sentences or cues of those turns."""
    before, after = around(doc.turns, first, last, n)
    if len(before) < n:
        head = inside(doc, doc.turns[first], doc.turns[first].char_start, lo)
        before = before + head[max(0, len(head) - (n - len(before))) :]
    if len(after) < n:
        tail = inside(doc, doc.turns[last], hi, doc.turns[last].char_end)
        after = tail[: n - len(after)] + after
    return before, after


def turn_range(turns: Sequence[Turn], char_start: int, char_end: int) -> tuple[int, int]:
    """Indices of the first and last turn overlapping the source range [char_start, char_end)."""
    starts = [t.char_start for t in turns]
    first = max(bisect.bisect_right(starts, char_start) - 1, 0)
    last = max(bisect.bisect_left(starts, max(char_end, char_start + 1)) - 1, first)
    return first, last


@overload
def with_context(result: Answer, n: int, documents: Mapping[str, Document]) -> Answer: ...
@overload
def with_context(result: Sequence[Hit], n: int, documents: Mapping[str, Document]) -> list[Hit]: ...


def with_context(result: Answer | Sequence[Hit], n: int, documents: Mapping[str, Document]) -> Answer | list[Hit]:
    """Hits or an answer with `before`/`after` set to the n spoken turns around each hit and citation."""
    if n < 0:
        raise UsageError(f"context {n}: the number of turns around a hit must be 0 or more (--context)")

    def hit_context(h: Hit) -> Hit:
        doc = documents.get(h.chunk.source)
        if not n or doc is None:
            return h
        before, after = around_span(doc, h.chunk.first_turn, h.chunk.last_turn, h.chunk.char_start, h.chunk.char_end, n)
        return replace(h, before=before, after=after)

    def cite_context(c: Citation) -> Citation:
        doc = documents.get(c.source)
        if not n or doc is None or not doc.turns:
            return c
        before, after = around_span(doc, *turn_range(doc.turns, c.char_start, c.char_end), c.char_start, c.char_end, n)
        return replace(c, before=before, after=after)

    if isinstance(result, Answer):
        return replace(result, hits=tuple(map(hit_context, result.hits)), citations=tuple(map(cite_context, result.citations)))
    return [hit_context(h) for h in result]
