"""Gold question files: one JSON object a line, evidence as verbatim quotes located in the indexed sources."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..datatypes import Document
from ..errors import RagkitError

if TYPE_CHECKING:
    from ..index.core import Index


class GoldError(RagkitError):
    """A gold file is malformed, or its evidence cannot be found in the indexed sources."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A verbatim quote from a source; char_start/char_end are -1 until located in the index."""

    source: str
    quote: str
    char_start: int = -1
    char_end: int = -1


@dataclass(frozen=True, slots=True)
class GoldQuestion:
    """A question and the evidence that answers it (none: the corpus does not answer it)."""

    id: str
    question: str
    evidence: tuple[Evidence, ...]
    tags: tuple[str, ...] = ()
    line: int = 0

    @property
    def answerable(self) -> bool:
        return bool(self.evidence)


def read_gold(path: str | Path) -> list[GoldQuestion]:
    """Parse and check a gold JSONL file (one question object a line); evidence is not located yet."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldError(f"{path}: no such gold file; pass a JSONL file of questions (see the README, Evaluation)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldError(f"{path}: cannot read the gold file ({exc}); save it as UTF-8 JSONL") from exc
    questions: list[GoldQuestion] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            q = _parse_question(line, n, f"{path} line {n}")
            if q.id in seen:
                raise GoldError(f"{path} line {n}: duplicate id {q.id!r} (first on line {seen[q.id]}); give each question its own id")
            seen[q.id] = n
            questions.append(q)
    if not questions:
        raise GoldError(f"{path}: no questions; write one JSON object a line with \"question\" and \"evidence\"")
    return questions


def _parse_question(line: str, n: int, where: str) -> GoldQuestion:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise GoldError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); write one JSON object a line") from None
    except RecursionError:
        raise GoldError(f"{where}: JSON nested too deeply to be a gold question") from None
    if not isinstance(data, dict):
        raise GoldError(f"{where}: expected a JSON object with \"question\" and \"evidence\", got {type(data).__name__}")
    question, evidence, tags = data.get("question"), data.get("evidence"), data.get("tags", [])
    if not isinstance(question, str) or not question.strip():
        raise GoldError(f"{where}: missing or empty \"question\" string")
    if not isinstance(evidence, list):
        raise GoldError(f"{where}: missing \"evidence\" list; use [] for a question the corpus does not answer")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise GoldError(f"{where}: \"tags\" must be a list of strings")
    items = []
    for i, ev in enumerate(evidence):
        if not isinstance(ev, dict) or not all(isinstance(ev.get(key), str) and ev[key].strip() for key in ("source", "quote")):
            raise GoldError(f"{where}: evidence[{i}] needs non-empty \"source\" and \"quote\" strings")
        items.append(Evidence(ev["source"], ev["quote"]))
    qid = data.get("id", f"line{n}")
    return GoldQuestion(str(qid), question.strip(), tuple(items), tuple(tags), n)


def resolve_gold(questions: Iterable[GoldQuestion], documents: Mapping[str, Document], path: str | Path = "gold") -> list[GoldQuestion]:
    """Locate every evidence quote in the indexed documents' text (the text chunk offsets point into)."""
    return [replace(q, evidence=tuple(locate(ev, documents, f"{path} line {q.line}") for ev in q.evidence)) for q in questions]


def load_gold(path: str | Path, index: Index) -> list[GoldQuestion]:
    """Read a gold file and locate its evidence in the index's documents."""
    return resolve_gold(read_gold(path), index.documents, path)


def locate(ev: Evidence, documents: Mapping[str, Document], where: str) -> Evidence:
    """The evidence with its char span: a verbatim match, else one that differs only in whitespace."""
    source = _match_source(ev.source, documents, where)
    text = documents[source].text
    spans = [(m.start(), m.start() + len(ev.quote)) for m in re.finditer(re.escape(ev.quote), text)][:2]
    if not spans:
        loose = r"\s+".join(re.escape(word) for word in ev.quote.split())
        spans = [m.span() for m in re.finditer(loose, text)][:2]
    short = ev.quote if len(ev.quote) <= 60 else ev.quote[:57] + "..."
    if not spans:
        raise GoldError(f"{where}: quote {short!r} not found in {source}; copy it verbatim from the source")
    if len(spans) > 1:
        raise GoldError(f"{where}: quote {short!r} occurs more than once in {source}; lengthen it so it is unique")
    return Evidence(source, ev.quote, *spans[0])


def _match_source(name: str, documents: Mapping[str, Document], where: str) -> str:
    if name in documents:
        return name
    # Gold and index may name a source relative to different roots (seeds/x.txt vs x.txt).
    found = [s for s in documents if s.endswith("/" + name.lstrip("/")) or name.endswith("/" + s)]
    if len(found) == 1:
        return found[0]
    held = ", ".join(sorted(documents)[:5]) + (", ..." if len(documents) > 5 else "")
    raise GoldError(f"{where}: source {name!r} is not in the index (it holds {held}); use a source name shown by `ragkit info`")
