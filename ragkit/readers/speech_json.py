"""Speech-to-text JSON: Whisper-style segment exports and plain turn lists, read in pieces (see subtitles.py)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from ..datatypes import Turn
from ..errors import TranscriptError
from .speakers import Piece, group_turns
from .subtitles import _line_of, _line_starts, clean_text

_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]')


def read_segments_json(text: str, data: object, name: str) -> list[Turn]:
    """Whisper, WhisperX and faster-whisper exports: `{"segments": [{start, end, text, speaker?}, ...]}`."""
    assert isinstance(data, dict)
    spans = json_value_spans(text, 3)
    segments = data["segments"]
    if not isinstance(segments, list):
        line = _line_of(_line_starts(text), spans.get(("segments",), (0, 0))[0])
        raise TranscriptError(f"{name} line {line}: 'segments' must be a list of {{\"start\", \"end\", \"text\"}} objects")
    return group_turns(text, json_pieces(text, segments, ("segments",), spans, name, ("text",)))


def read_turn_list(text: str, data: object, name: str) -> list[Turn]:
    """A plain JSON list of `{speaker, text|content, start?, end?}` objects."""
    assert isinstance(data, list)
    return group_turns(text, json_pieces(text, data, (), json_value_spans(text, 2), name, ("text", "content")))


def json_value_spans(text: str, depth: int) -> dict[tuple, tuple[int, int]]:
    """Source spans of JSON string values (quotes included) and start offsets of containers, by path, to `depth`."""
    spans: dict[tuple, tuple[int, int]] = {}
    stack: list[list] = []  # [is_object, key or index, expecting a key]
    skip = json.JSONDecoder().raw_decode
    pos = 0
    while match := _JSON_TOKEN.search(text, pos):
        token, pos = match.group(), match.end()
        if token[0] == '"':
            if stack and stack[-1][0] and stack[-1][2]:
                stack[-1][1] = json.loads(token)
            elif len(stack) <= depth:
                spans[tuple(level[1] for level in stack)] = (match.start(), match.end())
        elif token in "{[":
            spans[tuple(level[1] for level in stack)] = (match.start(), match.start())
            if len(stack) >= depth:  # nothing inside is wanted (word timings): skip it at C speed
                pos = skip(text, match.start())[1]
            else:
                stack.append([token == "{", None if token == "{" else 0, True])
        elif token in "}]":
            stack.pop()
        elif token == ",":
            if stack[-1][0]:
                stack[-1][2] = True
            else:
                stack[-1][1] += 1
        else:  # ":"
            stack[-1][2] = False
    return spans


def json_pieces(text: str, items: list, base: tuple, spans: dict, name: str, keys: Sequence[str]) -> list[Piece]:
    """One piece per item; offsets are those of the text value in the JSON source."""
    starts = _line_starts(text)
    pieces = []
    for i, item in enumerate(items):
        path = (*base, i)
        label = f"{base[0]}[{i}]" if base else f"item [{i}]"
        where = f"{name} line {_line_of(starts, spans.get(path, spans.get(base, (0, 0)))[0])}: {label}"
        if not isinstance(item, dict):
            raise TranscriptError(f"{where} is not an object; expected {{\"speaker\", \"{keys[0]}\", \"start\", \"end\"}}")
        key = next((k for k in keys if isinstance(item.get(k), str)), None)
        if key is None:
            raise TranscriptError(f"{where} has no {' or '.join(repr(k) for k in keys)} string; every item needs its spoken text")
        times = [_json_seconds(item.get(field), f"{where}.{field}") for field in ("start", "end")]
        s, e = _json_text_span(text, *spans[path + (key,)])
        clean = clean_text(text[s:e])
        if clean:
            raw_speaker = item.get("speaker")
            speaker = " ".join(str(raw_speaker).split()) or None if raw_speaker is not None else None
            pieces.append(Piece(s, e, clean, times[0], times[1], speaker, _line_of(starts, s)))
    return pieces


def _json_text_span(text: str, q0: int, q1: int) -> tuple[int, int]:
    # Without escapes the value is verbatim between the quotes; with escapes the quoted literal is cited.
    s, e = q0 + 1, q1 - 1
    if "\\" in text[s:e]:
        return q0, q1
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


def _json_seconds(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranscriptError(f"{where} is {value!r}; expected a number of seconds or null")
    if not math.isfinite(value):
        raise TranscriptError(f"{where} is {value!r}; expected a finite number of seconds or null")
    return float(value)


def is_segments(data: object) -> bool:
    return isinstance(data, dict) and "segments" in data


def is_turn_list(data: object) -> bool:
    return isinstance(data, list)
