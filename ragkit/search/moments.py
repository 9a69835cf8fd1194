"""Where in a hit the query is answered: the turn (or cue) whose words match the query best, with its speaker and time.

A chunk packs several turns; its start time is when the first of them began. A link must play the moment the
matching words are spoken, so each hit carries the best turn's speaker and start (issue: "0:00:01" shown for
words spoken at 0:01:05).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..datatypes import Chunk, Document, Hit, speaker_matches
from ..readers.subtitles import turn_content
from ..storage.lexical import query_terms, tokenize


def locate(hits: Sequence[Hit], query: str, documents: Mapping[str, Document], speaker: str | None = None) -> list[Hit]:
    """The hits with `speaker` and `start` of their best-matching turn (with --speaker, that speaker's best turn)."""
    wanted = {t for t in query_terms(query) if " " not in t}
    out = []
    for hit in hits:
        doc = documents.get(hit.chunk.source)
        found = best_moment(doc, hit.chunk, wanted, speaker) if doc is not None else None
        out.append(replace(hit, speaker=found[0], start=found[1]) if found else replace(hit, start=hit.chunk.start))
    return out


def best_moment(doc: Document, chunk: Chunk, wanted: set[str], speaker: str | None = None) -> tuple[str | None, float | None] | None:
    """(speaker, start) of the turn part inside the chunk sharing most query words; the earliest wins a tie."""
    best: tuple[int, str | None, float | None] | None = None
    for turn in doc.turns[chunk.first_turn : chunk.last_turn + 1]:
        if speaker and not speaker_matches(speaker, turn.speaker):
            continue
        # A cue-based turn is scored cue by cue, so the time is the cue's, not the turn's first cue's.
        pieces = list(zip(turn.parts, turn.part_times)) if turn.part_times else [((turn.char_start, turn.char_end), (turn.start, turn.end))]
        for (s, e), (start, _) in pieces:
            lo, hi = max(s, chunk.char_start), min(e, chunk.char_end)
            if lo >= hi:
                continue
            score = len(wanted.intersection(tokenize(turn_content(turn, lo, hi))))
            if best is None or score > best[0]:
                best = (score, turn.speaker, start if start is not None else turn.start)
    return (best[1], best[2]) if best else None
