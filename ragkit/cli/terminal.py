"""Text bound for a terminal: control, line-break and bidi characters shown escaped, so no file name, title or
message can move the cursor, retitle the window or forge an extra output line."""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """One line of terminal-safe text: such characters as `\\x1b`, `\\n`, `\\u202e` (the JSON output keeps them)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


_CONTROL_KEEP_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe_block(text: str) -> str:
    """Multi-line terminal-safe text (streamed answers): as safe(), but line breaks and tabs stay."""
    return _CONTROL_KEEP_LINES.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def decoded_argument(value: str) -> tuple[str, bool]:
    """A command-line argument as text: bytes that were not UTF-8 (surrogate escapes) become U+FFFD; True if any did."""
    fixed = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    fixed = re.sub(r"[\ud800-\udfff]", "\ufffd", fixed)
    return fixed, fixed != value
