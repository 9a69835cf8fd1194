"""What kind of answer a question expects, and whether a quote can be one.

"How many employees ..." is answered by a number and "Which database ..." by a name. A passage about the
question's topic that holds no such thing does not answer it: the corpus does not say (the near miss that
embedding similarity alone takes for an answer, since the topic matches).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from ..storage.lexical import stem, tokenize


class Expects(Enum):
    NUMBER = "number"  # an amount, a duration, an age or a year ("how often" is not here: "weekly" answers it)
    MONEY = "money"  # an amount of money
    COUNT = "count"  # how many: a cardinal ("the 100th episode" counts nothing)
    NAME = "name"  # a person, product, language, company, place


_NUMBER_QUESTION = re.compile(
    r"^\W*(?:how (?:many|much|long|old)\b|(?:in |by )?(?:what|which) year\b|when (?:was|were|did)\b)",
    re.I,
)
_COUNT_QUESTION = re.compile(r"^\W*how many\s+((?:[\w-]+\s+){0,1}[\w-]+)", re.I)
_WHAT_IS = re.compile(r"^\W*(?:what|how much)\b", re.I)
# The asked thing is an amount of money however the question is worded ("What is X's annual revenue?").
_MONEY = frozenset(stem(w) for w in "revenue valuation salary price cost budget funding worth income profit fee".split())
# "Which/what <noun>" where the noun is a kind of named thing: the answer names one.
_WHICH = re.compile(r"^\W*(?:which|what)\s+((?:[\w-]+\s+){0,2})", re.I)
_NAMED = frozenset(stem(w) for w in "language database author company country city provider framework library".split())
_WHO = re.compile(r"^\W*who\b", re.I)

_NUMBER = re.compile(
    r"\d|\b(?:two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|sixty|seventy|"
    r"eighty|ninety|hundreds?|thousands?|millions?|billions?|trillions?|dozens?|half|twice)\b",
    re.I,
)
# "How long ...?" is answered by "a few weeks" or "for decades" too.
_DURATION = re.compile(r"\b(?:a|few|couple of|several|many)\s+(?:seconds|minutes|hours|days|weeks|months|years|decades)\b|\bdecades\b", re.I)
_ORDINAL = re.compile(r"\b\d+(?:st|nd|rd|th)\b|\b(?:first|second|third|fourth|fifth|hundredth|thousandth)\b", re.I)
_PRICED = re.compile(r"\b(?:costs?|costing|price[ds]?|paid|pays?|paying|worth|budget|revenue|valuation|salary|raised|charged?|fees?)\b", re.I)
_YEAR = re.compile(r"\b(?:1[89]|20)\d\d\b")
_CURRENCY = re.compile(r"[$€£¥]\s?\d|\b(?:dollars?|euros?|pounds?|bucks|grand|cents?|[0-9.,]+\s?(?:k|m|bn|million|billion))\b", re.I)
_WORD = re.compile(r"[\w'’.-]+")


@dataclass(frozen=True, slots=True)
class Expectation:
    kind: Expects
    counted: tuple[str, ...] = ()  # COUNT: tokens of what is counted ("how many shark fins": shark, fin)
    given: frozenset[str] = frozenset()  # NAME: the question's own words ("Who supported the Go team?" is not answered by "Go")


def expects(question: str) -> Expectation | None:
    """The kind of thing that answers the question, when its wording says so."""
    words = set(tokenize(question))
    if _WHAT_IS.match(question) and words & _MONEY:
        return Expectation(Expects.MONEY)
    count = _COUNT_QUESTION.match(question)
    if count:
        return Expectation(Expects.COUNT, tuple(tokenize(count.group(1))))
    if _NUMBER_QUESTION.match(question):
        return Expectation(Expects.NUMBER)
    which = _WHICH.match(question)
    if _WHO.match(question) or (which and set(tokenize(which.group(1))) & _NAMED):
        return Expectation(Expects.NAME, given=frozenset(w.casefold() for w in _WORD.findall(question)))
    return None


def satisfies(expected: Expectation | None, quote: str) -> bool:
    """Whether the quote holds something of that kind: a number (for "how many X", a cardinal a few words before
    X), an amount of money, a capitalised or mixed-case word inside a sentence."""
    if expected is None:
        return True
    kind = expected.kind
    if kind is Expects.NUMBER:
        return bool(_NUMBER.search(quote) or _DURATION.search(quote))
    if kind is Expects.COUNT:
        return _counts(quote, expected.counted)
    if kind is Expects.MONEY:  # spoken amounts often have no unit ("the roof alone costs two hundred thousand")
        priced = _PRICED.search(quote) and _NUMBER.search(_YEAR.sub(" ", _ORDINAL.sub(" ", quote)))
        return bool(_CURRENCY.search(quote) or priced)
    return any(_is_name(w, after) and w.strip(".'’-").casefold() not in expected.given for w, after in _words_with_position(quote))


def _counts(quote: str, counted: tuple[str, ...]) -> bool:
    """A cardinal followed within a few words by what is counted ("50 if not more companies", "1,136 sharp shark fins")."""
    text = _ORDINAL.sub(" ", quote)
    for m in _NUMBER.finditer(text):
        after = tokenize(text[m.start() : m.start() + 60])[:COUNT_WINDOW]
        if not counted or set(after) & set(counted):
            return True
    return False


COUNT_WINDOW = 5  # tokens after the number


def _words_with_position(quote: str) -> list[tuple[str, bool]]:
    """Each word, and whether it follows another word of the same sentence (a sentence's first word is capitalised anyway)."""
    out, inside = [], False
    for m in _WORD.finditer(quote):
        word = m.group()
        out.append((word, inside and quote[m.start() - 1 : m.start()] not in ('"', "“", "‘", "(", "[")))
        inside = not word.endswith((".", "…")) and quote[m.end() : m.end() + 1] not in (":", "!", "?", "…")
    return out


def _is_name(word: str, inside: bool) -> bool:
    core = word.strip(".'’-")
    if not core or core in ("I", "I'm", "I’m", "I've", "I’ve", "I'd", "I’d", "I'll", "I’ll"):
        return False
    mixed = any(c.isupper() for c in core[1:]) and any(c.islower() for c in core)  # GitLab, iPhone, ColdFusion
    return mixed or (inside and core[0].isupper())
