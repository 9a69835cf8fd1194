"""QMSum meeting JSON: turn i is `meeting_transcripts[i]`, cited at the exact span of its content in the file."""

from __future__ import annotations

import json
import re

from ..datatypes import Turn
from ..errors import TranscriptError
from .text_formats import _Lines, _strip_span


def read_qmsum(text: str, name: str) -> tuple[list[Turn], dict]:
    """QMSum meeting JSON: turn i is `meeting_transcripts[i]`; offsets point into the JSON text."""
    data = _load_json(text, name)
    items = data.get("meeting_transcripts") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(items, list):
        raise TranscriptError(f"{name}: no 'meeting_transcripts' list; expected a QMSum meeting file")
    turns: list[Turn] = []
    lines = _Lines(text)
    key = _TRANSCRIPTS_KEY.search(text)
    pos = key.end() if key else 0
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise TranscriptError(f"{name}: meeting_transcripts[{i}] has no 'content' string")
        s, e, pos = _locate_json_string(text, item["content"], pos, name, i)
        # An escaped value is cited as its quoted literal; `parts` lets the chunker embed the decoded text.
        parts = ((s, e),) if text[s:e] != item["content"].strip() else ()
        speaker = str(item.get("speaker") or "") or None
        turns.append(Turn(speaker, text[s:e], None, None, s, e, lines.line_of(s), None, parts))
    return turns, data


_TRANSCRIPTS_KEY = re.compile(r'"meeting_transcripts"\s*:')
_CONTENT_KEY = re.compile(r'"content"\s*:\s*"')


def _locate_json_string(text: str, value: str, pos: int, name: str, i: int) -> tuple[int, int, int]:
    """Span of item i's content value after `pos`: the text inside the quotes, or the quoted literal if escaped."""
    # A key match cannot start inside another string: an embedded `"content"` would be written `\"content\"`.
    match = _CONTENT_KEY.search(text, pos)
    try:
        decoded, after = json.JSONDecoder().raw_decode(text, match.end() - 1) if match else (None, 0)
    except json.JSONDecodeError:
        decoded = None
    if decoded != value or match is None:
        raise TranscriptError(f"{name}: cannot locate meeting_transcripts[{i}] content in the file text; "
                              "is the file a QMSum meeting written by a JSON tool?")
    q = match.end() - 1
    s, e = _strip_span(text, q + 1, after - 1)
    if text[s:e] == value.strip():
        return s, e, after
    return q, after, after


def _load_json(text: str, name: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise TranscriptError(f"{name}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except RecursionError:
        raise TranscriptError(f"{name}: JSON nested too deeply (over about 1,000 levels) to be a transcript") from None
