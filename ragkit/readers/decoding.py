"""Bytes to text: encoding detection and newline normalization; char offsets everywhere refer to this text."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import TranscriptError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Decoded:
    """Decoded text (newlines normalized to \\n) and how it was decoded."""

    text: str
    encoding: str
    replaced: int = 0


# Longest first: the UTF-32 LE BOM starts with the UTF-16 LE one.
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
_NON_ASCII = re.compile("[^\x00-\x7f\ufffd]")


def decode_bytes(data: bytes, name: str = "<bytes>") -> Decoded:
    """Decode by BOM, else as UTF-8, UTF-16 without BOM, or cp1252; bad bytes become U+FFFD with a warning."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return _decode_as(data, codec, len(bom), name)
    if (utf16 := _bomless_utf16(data)) is not None:
        log.warning("%s: no byte order mark but NUL bytes every other byte; decoded as %s", name, utf16)
        return _decode_as(data, utf16, 0, name)
    try:
        return Decoded(_newlines(data.decode("utf-8")), "utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    if _NON_ASCII.search(data.decode("utf-8", errors="replace")):
        # Valid multi-byte sequences elsewhere: a damaged UTF-8 file; cp1252 would garble every accent.
        return _decode_as(data, "utf-8", 0, name)
    log.warning("%s: not valid UTF-8 (first bad byte at offset %d); decoded as cp1252", name, first_bad)
    return _decode_as(data, "cp1252", 0, name)


def _decode_as(data: bytes, codec: str, skip: int, name: str) -> Decoded:
    body = data[skip:] if skip else data
    try:
        return Decoded(_newlines(body.decode(codec)), codec)
    except UnicodeDecodeError as exc:
        first_bad = skip + exc.start
    text = body.decode(codec, errors="replace")
    replaced = text.count("\ufffd") - body.decode(codec, errors="ignore").count("\ufffd")
    log.warning(
        "%s: %d invalid byte sequence(s) for %s replaced with U+FFFD, first at byte offset %d",
        name, replaced, codec, first_bad,
    )
    return Decoded(_newlines(text), f"{codec}-replace", replaced)


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM: text in Latin scripts has a NUL in every other byte, which UTF-8 text never has."""
    sample = data[:4096]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    even, odd = sample[0::2].count(0) / len(sample[0::2]), sample[1::2].count(0) / len(sample[1::2])
    if odd >= 0.3 and even <= 0.05:
        return "utf-16-le"
    if even >= 0.3 and odd <= 0.05:
        return "utf-16-be"
    return None


def _newlines(text: str) -> str:
    # Offsets are into this normalized text, so CRLF and lone CR files cite the same spans.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_source_text(path: str | Path) -> str:
    """The decoded, newline-normalized text that char offsets refer to."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"{path}: cannot read ({exc.strerror}); check the path and permissions") from exc
    return decode_bytes(data, str(path)).text
