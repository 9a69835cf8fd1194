"""Speaker-turn header lines of the plain-text transcript exports people have, one style per export family.

Each style recognises a header line (speaker, optional start time, where the spoken text starts on that line) and,
for the timed styles, a continuation line (a new time for the same speaker). read_podcast does the rest: text
before the first header is prose, paragraphs under a header belong to it, markdown headings set sections.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

_TS = r"(\d{1,2}:[0-5]\d(?::[0-5]\d)?(?:[.,]\d{1,3})?)"
_TS_LINE = re.compile(_TS + r"$")
# A label: starts and ends with a non-space, so a long run of spaces is scanned once.
_LABEL = r"[^\s():\[\]*](?:[^\n():\[\]*]{0,58}[^\s():\[\]*])?"
# Tags such as Zoom's "(SL)" or "(she/her)" after a name.
_TAG = r"(?:[ \t]+\([^()\n]{1,24}\))?"

Header = tuple[str | None, str | None, int]  # speaker, time text, offset in the line where the text starts
Continuation = tuple[str, int]  # time text, offset where the text starts


@dataclass(frozen=True, slots=True)
class LineStyle:
    """How one export family marks a turn: `header(line)` and, for timed styles, `continuation(line)`."""

    name: str
    example: str
    header: Callable[[str], Header | None]
    continuation: Callable[[str], Continuation | None] = lambda line: None


def _regex_header(pattern: str, timed: bool = True, check_name: bool = True) -> Callable[[str], Header | None]:
    compiled = re.compile(pattern)

    def header(line: str) -> Header | None:
        match = compiled.match(line)
        if not match:
            return None
        name = next(g for g in (match.groupdict().get(k) for k in ("name", "name2", "name3")) if g is not None)
        if check_name and not _is_name(name):
            return None
        return " ".join(name.split()), (match["ts"] if timed else None), match.end()

    return header


def _is_name(name: str) -> bool:
    """A speaker label, not the start of a sentence: at most six words, the first not lower-case."""
    words = name.split()
    return 0 < len(words) <= 6 and not words[0][0].islower()


def _regex_continuation(pattern: str) -> Callable[[str], Continuation | None]:
    compiled = re.compile(pattern)

    def continuation(line: str) -> Continuation | None:
        match = compiled.match(line)
        return (match["ts"], match.end()) if match else None

    return continuation


# `Name (mm:ss):` and `(mm:ss):` continuations (the seeds' podcast style).
PODCAST = LineStyle(
    "podcast", "Alex Wang (01:02): The data is the bottleneck.",
    _regex_header(r"^[ \t]*(?P<name>[^\s():](?:[^\n():]{0,298}[^\s():])?)[ \t]*\((?P<ts>\d{1,2}:[0-5]\d(?::[0-5]\d)?)\):[ \t]*", check_name=False),
    _regex_continuation(r"^[ \t]*\((?P<ts>\d{1,2}:[0-5]\d(?::[0-5]\d)?)\):[ \t]*"),
)
_BRACKET_TS = r"[\[(](?P<ts>" + _TS[1:-1] + r")[\])]"
# Descript markdown `[00:00:23] **David Laid:** text`, Sonix/Temi text `[00:00:23] David Laid: text`; a
# `[00:00:30] text` line continues the speaker at a new time.
TIME_FIRST = LineStyle(
    "timestamped", "[00:00:23] **David Laid:** That's interesting.",
    _regex_header(
        r"^[ \t]*" + _BRACKET_TS + r"[ \t]*(?:\*\*(?P<name>" + _LABEL + _TAG + r")[ \t]*(?::\*\*|\*\*[ \t]*:)"
        r"|(?P<name2>" + _LABEL + _TAG + r")[ \t]*:(?=[ \t]|$))[ \t]*"
    ),
    _regex_continuation(r"^[ \t]*" + _BRACKET_TS + r"[ \t]*"),
)
# Sonix's own text export puts the name first: `Customer: [00:24:55] Okay.`
NAME_FIRST = LineStyle(
    "sonix", "Customer: [00:24:55] Okay. Sounds like fun.",
    _regex_header(r"^[ \t]*(?:\*\*)?(?P<name>" + _LABEL + _TAG + r")[ \t]*:(?:\*\*)?[ \t]*" + _BRACKET_TS + r"[ \t]*"),
    _regex_continuation(r"^[ \t]*" + _BRACKET_TS + r"[ \t]*"),
)
# Podscript and similar: `[Speaker 1] [00:20] text`, `[h:mm:ss]` past an hour.
BRACKETED = LineStyle(
    "bracketed", "[Speaker 1] [00:20] Because I've been meeting...",
    _regex_header(r"^[ \t]*\[(?P<name>[^\[\]\n]{1,60})\][ \t]*" + _BRACKET_TS.replace(r"[\[(]", r"\[").replace(r"[\])]", r"\]") + r"[ \t]*"),
)
# Markdown transcripts without times: `**Carmen Andoh:** Welcome, everybody...` (or `**Name**:`).
BOLD = LineStyle(
    "bold-names", "**Carmen Andoh:** Welcome, everybody, to Go Time!",
    _regex_header(r"^[ \t]*\*\*(?P<name>" + _LABEL + _TAG + r")[ \t]*(?::\*\*|\*\*[ \t]*:)[ \t]*", timed=False),
)


def _otter_header(line: str) -> Header | None:
    """Otter.ai: `Speaker Name  0:03` alone on a line; the turn's text is on the lines below."""
    stripped = line.rstrip()
    head, _, stamp = stripped.rpartition(" ")
    if not head or not _TS_LINE.match(stamp) or len(head) > 80:
        return None
    name = head.strip()
    if not name or ":" in name or "[" in name or not _is_name(name) or not name[0].isalpha():
        return None
    return " ".join(name.split()), stamp, len(line)


OTTER = LineStyle("otter", "Kelly  0:18", _otter_header)

# Most specific first: on a tie the earlier style wins.
STYLES: tuple[LineStyle, ...] = (PODCAST, TIME_FIRST, NAME_FIRST, BRACKETED, OTTER, BOLD)
BY_NAME = {style.name: style for style in STYLES}


def detect_style(lines: Iterable[str]) -> LineStyle | None:
    """The style whose headers start the most lines (at least two), or None."""
    counts = dict.fromkeys(STYLES, 0)
    for line in lines:
        if len(line) > 2000 and "\n" not in line[:2000]:
            line = line[:2000]  # a header is near the start; a 5 MB line is not scanned five times
        for style in STYLES:
            if style.header(line):
                counts[style] += 1
    best = max(STYLES, key=lambda s: counts[s])  # max keeps the first of equal counts
    return best if counts[best] >= 2 else None


def parse_timestamp(value: str) -> float:
    """`mm:ss`, `h:mm:ss`, optionally with `.mmm` or `,mmm`, to seconds."""
    whole, _, fraction = value.replace(",", ".").partition(".")
    seconds = 0
    for part in whole.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds + (int(fraction.ljust(3, "0")[:3]) / 1000 if fraction else 0.0)
