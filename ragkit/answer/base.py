"""What every answerer shares: the Answerer protocol, candidate sentences of the hits, verbatim citations."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..datatypes import Answer, Citation, Hit
from ..readers.subtitles import span_times, turn_parts

if TYPE_CHECKING:
    from ..index.core import Index

# A sentence ends at . ! ? or … followed by white space (so "99.9%" and "U.S.A" stay whole) or a line end.
_MIN_WORDS = 10  # a shorter sentence is joined to the one before it
SENTENCE = re.compile(r"\S.*?(?:[.!?…]+[\"'”’)\]]*(?=\s)|(?=\n)|$)", re.S)


@runtime_checkable
class Answerer(Protocol):
    """Turns a question and retrieved hits into an Answer with citations."""

    spec: str

    def answer(self, question: str, hits: Sequence[Hit], index: Index) -> Answer: ...


@dataclass(frozen=True, slots=True)
class Sentence:
    """A candidate quote: a verbatim sentence of a hit's source span."""

    hit: Hit
    speaker: str | None
    start: float | None
    end: float | None
    char_start: int
    char_end: int
    quote: str


def sentences(index: Index, hit: Hit, min_words: int = 4) -> list[Sentence]:
    """Sentences of the hit's turns inside the hit's span; a short one carries its predecessor for context."""
    chunk = hit.chunk
    doc = index.documents[chunk.source]
    out = []
    for i in range(chunk.first_turn, chunk.last_turn + 1):
        turn = doc.turns[i]
        # Podcast turns have no end time; the next turn's start is when this one ended.
        following = doc.turns[i + 1].start if i + 1 < len(doc.turns) else None
        # Subtitle turns list their spoken lines as parts; quoting within a part keeps timing lines out.
        for ps, pe in turn_parts(turn):
            lo, hi = max(ps, chunk.char_start), min(pe, chunk.char_end)
            spans = [piece for m in SENTENCE.finditer(doc.text, lo, hi) for piece in _without_markup(doc.text, m.start(), min(m.end(), hi))] if lo < hi else []
            for n, (s, e) in enumerate(spans):
                if len(doc.text[s:e].split()) < _MIN_WORDS and n > 0 and not MARKUP.search(doc.text, spans[n - 1][0], s):
                    s = spans[n - 1][0]
                quote = doc.text[s:e].rstrip()
                if len(quote.split()) >= min_words:
                    start, end = span_times(turn, s, s + len(quote))
                    end = following if end is None and not turn.parts else end
                    out.append(Sentence(hit, turn.speaker, start, end, s, s + len(quote), quote))
    return out


# Transcript markup that is never quoted: QMSum's {disfmarker} and {vocalsound}, [laughs], \[laughter\].
MARKUP = re.compile(r"\{[a-z]+\}|\\?\[[A-Za-z][\w\s'-]{0,30}\\?\]", re.I)


def _without_markup(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The span cut at markup tokens into the pieces between them (each stripped of spaces and stray commas)."""
    pieces, lo = [], start
    for m in MARKUP.finditer(text, start, end):
        pieces.append((lo, m.start()))
        lo = m.end()
    pieces.append((lo, end))
    out = []
    for a, b in pieces:
        while a < b and (text[a].isspace() or text[a] in ",;"):
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            out.append((a, b))
    return out


def citation(s: Sentence, marker: int) -> Citation:
    chunk = s.hit.chunk
    return Citation(chunk.id, chunk.source, chunk.title, s.speaker, s.start, s.quote, s.char_start, s.char_end, s.end, marker)


def verify_citations(index: Index, answer: Answer) -> list[str]:
    """Problems with an answer's citations (empty when every quote is verbatim and points at a hit)."""
    problems = []
    hit_ids = {h.chunk.id for h in answer.hits}
    for c in answer.citations:
        doc = index.documents.get(c.source)
        if c.chunk_id not in hit_ids:
            problems.append(f"citation [{c.marker}] points at {c.chunk_id}, which is not among the hits")
        if doc is None or doc.text[c.char_start : c.char_end] != c.quote:
            problems.append(f"citation [{c.marker}] quote is not verbatim at {c.source}:{c.char_start}-{c.char_end}")
    return problems
