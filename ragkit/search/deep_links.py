"""Where a hit or citation can be heard: deep links from sidecar urls or `--link-template`.

`with_links` takes the result of `Index.search` or `ask()` and returns a copy with the optional
`link` field of `Hit` and `Citation` filled; the library never prints.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import PurePosixPath
from typing import overload
from urllib.parse import quote

from ..datatypes import Answer, Citation, Document, Hit
from ..errors import UsageError

# Placeholders of a link template; times are those of the hit or citation (the quote's own cue for subtitles).
PLACEHOLDERS: dict[str, str] = {
    "url": "the source's url from its sidecar <stem>.meta.json or <stem>.json (sources without one get no link)",
    "source": "the source path relative to the corpus folder, percent-encoded with slashes kept, e.g. shows/ep12.vtt",
    "source_stem": "the source file name without folder and suffix, percent-encoded, e.g. ep12",
    "start": "start time in seconds with up to 3 decimals, e.g. 754.5",
    "start_int": "start time in whole seconds, e.g. 754",
    "end": "end time in seconds with up to 3 decimals, e.g. 761.25",
    "end_int": "end time in whole seconds (rounded up), e.g. 762",
}
_VALID = ", ".join("{" + name + "}" for name in PLACEHOLDERS)


_HTTP = re.compile(r"https?://[^\s\x00-\x1f\x7f]+")


def check_template(template: str) -> tuple[str, ...]:
    """The placeholders a link template uses; a UsageError names a bad one and lists the valid ones."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(
            f"link template {template!r}: {exc}; write placeholders as {{name}} and a literal brace as {{{{ or }}}}"
        ) from exc
    names = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise UsageError(f"link template {template!r}: unknown placeholder {{{name}}}; valid placeholders: {_VALID}")
        if spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise UsageError(f"link template {template!r}: {shown} has a format spec; use the plain {{{name}}} ({_VALID})")
        names.append(name)
    head = parsed[0][0] if parsed else ""
    if not re.match(r"https?://", head) and not (head == "" and parsed and parsed[0][1] == "url"):
        raise UsageError(f"link template {template!r}: links must be http:// or https:// addresses; start it with one, or with {{url}}")
    if re.search(r"[\x00-\x1f\x7f\s]", template):
        raise UsageError(f"link template {template!r}: white space and control characters are not allowed in a link")
    return tuple(names)


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _values(source: str, url: str | None, start: float | None, end: float | None) -> dict[str, str | None]:
    def ceil(value: float) -> int:
        return -int(-value // 1)

    return {
        "url": url,
        "source": quote(source, safe="/"),
        "source_stem": quote(PurePosixPath(source).stem, safe=""),
        "start": None if start is None else _seconds(start),
        "start_int": None if start is None else str(int(start)),
        "end": None if end is None else _seconds(end),
        "end_int": None if end is None else str(ceil(end)),
    }


def default_link(url: str, start: float | None) -> str:
    """`url?t=<whole seconds>` (`&t=` when the url has a query; before any #fragment); the url alone without a time."""
    if start is None:
        return url
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}t={int(start)}{hash_}{fragment}"


def link_for(template: str | None, source: str, url: str | None, start: float | None, end: float | None) -> str | None:
    """The deep link for one passage: the template filled, or the default `url?t=` link; None when a value is missing."""
    if template is None:
        return default_link(url, start) if url else None
    values = _values(source, url, start, end)
    if any(values[name] is None for name in check_template(template)):
        return None  # a link to the wrong place (no time, no url) is worse than none
    link = template.format_map(values)
    return link if _HTTP.fullmatch(link) else None  # {url} can only be an http(s) url (see readers), but check the result


@overload
def with_links(result: Answer, template: str | None, documents: Mapping[str, Document]) -> Answer: ...
@overload
def with_links(result: Sequence[Hit], template: str | None, documents: Mapping[str, Document]) -> list[Hit]: ...


def with_links(result: Answer | Sequence[Hit], template: str | None, documents: Mapping[str, Document]) -> Answer | list[Hit]:
    """Hits or an answer with `link` set on every hit and citation (template None: from each source's url)."""
    if template is not None:
        check_template(template)  # fail on a bad template even when nothing was found

    def url(source: str) -> str | None:
        doc = documents.get(source)
        return doc.url if doc else None

    def hit_link(h: Hit) -> Hit:
        start = h.start if h.start is not None else h.chunk.start  # the best-matching turn's moment
        return replace(h, link=link_for(template, h.chunk.source, url(h.chunk.source), start, h.chunk.end))

    def cite_link(c: Citation) -> Citation:
        return replace(c, link=link_for(template, c.source, url(c.source), c.start, c.end))

    if isinstance(result, Answer):
        return replace(result, hits=tuple(map(hit_link, result.hits)), citations=tuple(map(cite_link, result.citations)))
    return [hit_link(h) for h in result]
