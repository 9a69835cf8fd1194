"""Context assembly: ranked chunks become passages within a token budget.

Evidence in transcripts is long and contiguous, so the budget is better spent on the turns around the best
hits than on many scattered chunks: each new passage grows by neighbouring turns, hits close to a passage
merge into it, and whatever budget is left grows the passages further. Hits past the budget follow as they
are (near ones merged), so a search still returns k passages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..chunking import _make_chunk, turn_line
from ..datatypes import Chunk, Document, Hit

if TYPE_CHECKING:
    from ..index.core import Index

TokenCounter = Callable[[str], int]
# Tokens of neighbouring turns a new passage may take before the next hit opens another one (QMSum: evidence
# is a median 27 turns; 600 beat 0-400 and 800, see eval/results/retrieval_ablation.md).
GROWTH = 600
# Hits at most this many tokens apart are one passage: about one chunk of turns between them.
GAP = 200


@dataclass(slots=True)
class Span:
    """A passage under construction: segments a..b (inclusive) of one source, and its best hit."""

    source: str
    a: int
    b: int
    score: float
    chunk: int  # the best hit's chunk id
    after: bool = True  # which side grows next


class Segments:
    """A source's text units in order (whole turns, or the pieces chunking cut long turns into), with token counts."""

    def __init__(self, doc: Document, chunks: Sequence[tuple[int, Chunk]], count: TokenCounter, overhead: int) -> None:
        units: dict[int, tuple[int, int, int, str]] = {}
        for _, c in chunks:
            first = doc.turns[c.first_turn]
            if c.first_turn == c.last_turn and (c.char_start, c.char_end) != (first.char_start, first.char_end):
                units[c.char_start] = (c.first_turn, c.char_start, c.char_end, c.text)  # a piece of a long turn
                continue
            for t in range(c.first_turn, c.last_turn + 1):
                turn = doc.turns[t]
                units.setdefault(turn.char_start, (t, turn.char_start, turn.char_end, turn_line(turn)))
        self.doc = doc
        self.units = [units[s] for s in sorted(units)]
        starts = {u[1]: n for n, u in enumerate(self.units)}
        self.ranges = {i: self._range(starts, c) for i, c in chunks}
        self._count, self._overhead = count, overhead
        self._tokens: list[int | None] = [None] * len(self.units)

    def _range(self, starts: dict[int, int], chunk: Chunk) -> tuple[int, int]:
        a = b = starts[chunk.char_start]
        while b + 1 < len(self.units) and self.units[b + 1][1] < chunk.char_end:
            b += 1
        return a, b

    def tokens(self, a: int, b: int) -> int:
        """Tokens of units a..b joined by newlines (the model tokenizer's special tokens counted once)."""
        total = self._overhead
        for n in range(a, b + 1):
            cached = self._tokens[n]
            if cached is None:
                cached = self._tokens[n] = max(0, self._count(self.units[n][3]) - self._overhead)
            total += cached
        return total

    def chunk(self, a: int, b: int) -> Chunk:
        first, last = self.units[a], self.units[b]
        text = "\n".join(u[3] for u in self.units[a : b + 1] if u[3])
        return _make_chunk(self.doc, first[0], last[0], text, span=(first[1], last[2]))


class Assembler:
    """Builds passages for one index; unit lists and token counts are cached per source."""

    def __init__(self, index: Index, count: TokenCounter) -> None:
        self.index = index
        self.count = count
        self.overhead = count("")  # special tokens a model tokenizer adds to every text
        # Word-piece and word counters add up across lines, so passage sizes are exact without recounting them.
        self.additive = count("one two\nthree") == count("one two") + count("three") - self.overhead
        self._segments: dict[str, Segments] = {}

    def segments(self, source: str) -> Segments:
        if source not in self._segments:
            doc = self.index.documents[source]
            self._segments[source] = Segments(doc, self.index.store.chunks_of(source), self.count, self.overhead)
        return self._segments[source]

    def passages(self, ranked: Sequence[tuple[int, float]], k: int, budget: int) -> list[Hit]:
        """At most k passages: those within `budget` tokens grown around the best hits, then the rest of the hits."""
        spans, rest = self._fill(ranked, k, budget)
        if not self.additive:
            self._fit(spans, budget)
        tail = self._tail(rest, spans, k - len(spans), budget)
        out = [self._hit(s) for s in spans + tail]
        return [Hit(h.chunk, h.score, rank) for rank, h in enumerate(out, start=1)]

    def _fill(self, ranked: Sequence[tuple[int, float]], k: int, budget: int) -> tuple[list[Span], list[tuple[int, float]]]:
        spans: list[Span] = []
        used, rest = 0, []
        for n, (i, score) in enumerate(ranked):
            seg = self.segments(self.index.chunks[i].source)
            a, b = seg.ranges[i]
            near = self._near(spans, self.index.chunks[i].source, a, b)
            if near is not None:
                lo, hi = min(a, near.a), max(b, near.b)
                cost = seg.tokens(lo, hi) - seg.tokens(near.a, near.b)
                if used + cost <= budget:
                    near.a, near.b, used = lo, hi, used + cost
                else:
                    rest.append((i, score))
                continue
            cost = seg.tokens(a, b)
            if len(spans) == k or used + cost > budget:
                rest.extend(ranked[n:])
                break
            span = Span(self.index.chunks[i].source, a, b, score, i)
            spans.append(span)
            used = self._grow(span, min(GROWTH, budget - cost - used), used + cost, budget)
        while spans and used < budget:  # leftover budget: grow every passage a turn at a time, best first
            before = used
            for span in spans:
                used = self._grow(span, budget - used, used, budget, steps=1)
            if used == before:
                break
        return spans, rest

    def _fit(self, spans: Sequence[Span], budget: int) -> None:
        """Trim grown turns off the last passages if the exact count of the joined texts exceeds the budget.

        Per-unit counts add up exactly for word-piece and word counters; other tokenizers may merge across lines.
        """
        sizes = [self.count(self.segments(s.source).chunk(s.a, s.b).text) for s in spans]
        for n in range(len(spans) - 1, -1, -1):
            span, seg = spans[n], self.segments(spans[n].source)
            core_a, core_b = seg.ranges[span.chunk]
            while sum(sizes) > budget and (span.a < core_a or span.b > core_b):
                if span.b - core_b >= core_a - span.a:
                    span.b -= 1
                else:
                    span.a += 1
                sizes[n] = self.count(seg.chunk(span.a, span.b).text)

    def _near(self, spans: Sequence[Span], source: str, a: int, b: int) -> Span | None:
        seg = self.segments(source)
        for span in spans:
            if span.source != source:
                continue
            if a <= span.b + 1 and b >= span.a - 1:
                return span
            between = (span.b + 1, a - 1) if a > span.b else (b + 1, span.a - 1)
            if seg.tokens(*between) - self.overhead <= GAP:
                return span
        return None

    def _grow(self, span: Span, allowance: int, used: int, budget: int, steps: int = 1 << 30) -> int:
        """Add neighbouring units after and before in turn while they fit; returns the new total used."""
        seg = self.segments(span.source)
        spent, failed = 0, 0
        while failed < 2 and steps > 0:
            after, span.after = span.after, not span.after
            n = span.b + 1 if after else span.a - 1
            cost = seg.tokens(n, n) - self.overhead if 0 <= n < len(seg.units) else budget + 1
            if spent + cost > allowance or used + cost > budget:
                failed += 1
                continue
            span.a, span.b = (span.a, n) if after else (n, span.b)
            spent, used, failed, steps = spent + cost, used + cost, 0, steps - 1
        return used

    def _tail(self, rest: Sequence[tuple[int, float]], spans: Sequence[Span], room: int, budget: int) -> list[Span]:
        tail: list[Span] = []
        for i, score in rest:
            source = self.index.chunks[i].source
            seg = self.segments(source)
            a, b = seg.ranges[i]
            if any(s.source == source and s.a <= a and b <= s.b for s in spans):
                continue  # already in a budget passage
            near = self._near(tail, source, a, b)
            if near is not None and seg.tokens(min(a, near.a), max(b, near.b)) <= max(budget, seg.tokens(near.a, near.b)):
                near.a, near.b = min(a, near.a), max(b, near.b)
                continue
            if len(tail) >= room:
                break
            tail.append(Span(source, a, b, score, i))
        return tail

    def _hit(self, span: Span) -> Hit:
        chunk = self.index.chunks[span.chunk]
        seg = self.segments(span.source)
        if seg.ranges[span.chunk] == (span.a, span.b):
            return Hit(chunk, span.score, 0)  # a lone hit stays the indexed chunk, id and all
        return Hit(seg.chunk(span.a, span.b), span.score, 0)
