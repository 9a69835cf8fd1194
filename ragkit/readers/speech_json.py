"""Speech-to-text JSON read in pieces (see subtitles.py): Whisper-style segment exports (bare or wrapped in an outer
object), whisper.cpp's `transcription` list, AWS Transcribe results and plain turn lists."""

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


# Keys under which API responses and wrappers nest a Whisper-style result.
_WRAPPERS = ("result", "results", "output", "transcription", "transcript", "data", "response", "prediction")


def segments_path(data: object) -> tuple[str, ...] | None:
    """Where a Whisper-style segment list is: `segments`, `<wrapper>.segments`, or whisper.cpp's `transcription` list."""
    if not isinstance(data, dict):
        return None
    if "segments" in data:
        return ("segments",)
    for key in _WRAPPERS:
        inner = data.get(key)
        if isinstance(inner, dict) and "segments" in inner:
            return (key, "segments")
    cpp = data.get("transcription")
    if isinstance(cpp, list) and cpp and all(isinstance(item, dict) and "text" in item for item in cpp[:3]):
        return ("transcription",)
    return None


def read_segments_json(text: str, data: object, name: str) -> list[Turn]:
    """Whisper, WhisperX, faster-whisper and whisper.cpp exports: segments of {start, end, text, speaker?}."""
    path = segments_path(data)
    assert path is not None and isinstance(data, dict)
    spans = json_value_spans(text, len(path) + 2)
    segments = data[path[0]] if len(path) == 1 else data[path[0]][path[1]]
    if not isinstance(segments, list):
        line = _line_of(_line_starts(text), spans.get(path, (0, 0))[0])
        raise TranscriptError(f"{name} line {line}: '{'.'.join(path)}' must be a list of {{\"start\", \"end\", \"text\"}} objects")
    return group_turns(text, json_pieces(text, segments, path, spans, name, ("text",)))


def is_aws(data: object) -> bool:
    results = data.get("results") if isinstance(data, dict) else None
    return isinstance(results, dict) and ("items" in results or "audio_segments" in results) and "transcripts" in results


def read_aws(text: str, data: object, name: str) -> list[Turn]:
    """AWS Transcribe: `results.audio_segments` (one piece per segment) or else `results.items` (one per word)."""
    assert isinstance(data, dict)
    results = data["results"]
    if isinstance(results.get("audio_segments"), list) and results["audio_segments"]:
        spans = json_value_spans(text, 5)
        segments = results["audio_segments"]
        return group_turns(text, json_pieces(text, segments, ("results", "audio_segments"), spans, name, ("transcript",), "speaker_label"))
    items = results.get("items")
    if not isinstance(items, list):
        raise TranscriptError(f"{name}: AWS Transcribe 'results.items' must be a list of words")
    spans = json_value_spans(text, 7)
    starts = _line_starts(text)
    labels = _aws_speaker_times(results)
    pieces: list[Piece] = []
    for i, item in enumerate(items):
        where = f"{name} line {_line_of(starts, spans.get(('results', 'items', i), (0, 0))[0])}: results.items[{i}]"
        alternatives = item.get("alternatives") if isinstance(item, dict) else None
        if not (isinstance(alternatives, list) and alternatives and isinstance(alternatives[0], dict)
                and isinstance(alternatives[0].get("content"), str)):
            raise TranscriptError(f"{where} has no alternatives[0].content; expected an AWS Transcribe word item")
        start = _json_seconds(item.get("start_time"), f"{where}.start_time")
        end = _json_seconds(item.get("end_time"), f"{where}.end_time")
        speaker = item.get("speaker_label") or _label_at(labels, start)
        if speaker is None and item.get("type") == "punctuation" and pieces:
            speaker = pieces[-1].speaker  # punctuation carries no label in older outputs: it ends the last word's turn
        s, e = _json_text_span(text, *spans[("results", "items", i, "alternatives", 0, "content")])
        clean = clean_text(text[s:e])
        if clean:
            pieces.append(Piece(s, e, clean, start, end, str(speaker) if speaker is not None else None, _line_of(starts, s)))
    return group_turns(text, pieces)


def _aws_speaker_times(results: dict) -> list[tuple[float, float, str]]:
    segments = (results.get("speaker_labels") or {}).get("segments") if isinstance(results.get("speaker_labels"), dict) else None
    out = []
    for seg in segments if isinstance(segments, list) else []:
        try:
            out.append((float(seg["start_time"]), float(seg["end_time"]), str(seg["speaker_label"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _label_at(labels: list[tuple[float, float, str]], start: float | None) -> str | None:
    if start is None:
        return None
    return next((label for s, e, label in labels if s <= start <= e), None)


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


def json_pieces(
    text: str, items: list, base: tuple, spans: dict, name: str, keys: Sequence[str], speaker_key: str = "speaker",
) -> list[Piece]:
    """One piece per item; offsets are those of the text value in the JSON source."""
    starts = _line_starts(text)
    pieces = []
    for i, item in enumerate(items):
        path = (*base, i)
        label = f"{'.'.join(map(str, base))}[{i}]" if base else f"item [{i}]"
        where = f"{name} line {_line_of(starts, spans.get(path, spans.get(base, (0, 0)))[0])}: {label}"
        if not isinstance(item, dict):
            raise TranscriptError(f"{where} is not an object; expected {{\"speaker\", \"{keys[0]}\", \"start\", \"end\"}}")
        key = next((k for k in keys if isinstance(item.get(k), str)), None)
        if key is None:
            raise TranscriptError(f"{where} has no {' or '.join(repr(k) for k in keys)} string; every item needs its spoken text")
        times = _item_times(item, where)
        s, e = _json_text_span(text, *spans[path + (key,)])
        clean = clean_text(text[s:e])
        if clean:
            raw_speaker = item.get(speaker_key)
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


def _item_times(item: dict, where: str) -> list[float | None]:
    """Seconds from `start`/`end`, `start_time`/`end_time`, or whisper.cpp's millisecond `offsets.from`/`to`."""
    offsets = item.get("offsets")
    if "start" not in item and "start_time" not in item and isinstance(offsets, dict):
        ms = [_json_seconds(offsets.get(k), f"{where}.offsets.{k}") for k in ("from", "to")]
        return [None if v is None else v / 1000 for v in ms]
    return [_json_seconds(item.get(field, item.get(field + "_time")), f"{where}.{field}") for field in ("start", "end")]


def _json_seconds(value: object, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):  # AWS writes times as strings: "4.87"
        try:
            value = float(value)
        except ValueError:
            raise TranscriptError(f"{where} is {value!r}; expected a number of seconds or null") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranscriptError(f"{where} is {value!r}; expected a number of seconds or null")
    if not math.isfinite(value):
        raise TranscriptError(f"{where} is {value!r}; expected a finite number of seconds or null")
    return float(value)


def is_segments(data: object) -> bool:
    return segments_path(data) is not None


def is_turn_list(data: object) -> bool:
    return isinstance(data, list)
