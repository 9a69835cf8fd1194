"""Speakers named in a question ("what did Grad B say", "the professor") matched to an index's speaker labels."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ..storage.lexical import STOPWORDS

if TYPE_CHECKING:

    pass

TITLES = frozenset("mr mrs ms miss mx dr prof hon honourable right rt the sir madam dame lord lady am mp mla mep".split())
_NAME_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
_PARENS = re.compile(r"\([^()]*(?:\([^()]*\)[^()]*)*\)")


def name_words(text: str) -> list[str]:
    """Casefolded words with hyphens and apostrophes folded (`Paul-Hus` = `paulhus`), possessives dropped."""
    return [w.replace("-", "").replace("’", "'").removesuffix("'s") for w in _NAME_WORD.findall(text.casefold())]


def _strong(word: str) -> bool:
    return word not in TITLES and word not in STOPWORDS and len(word) > 1


class SpeakerMatcher:
    """Finds the corpus speakers a question names: full labels, surnames, roles ("Grad B", "the professor", "Paul-Hus")."""

    def __init__(self, labels: Iterable[str]) -> None:
        self.names: dict[str, list[str]] = {}
        self.by_word: dict[str, set[str]] = {}
        for label in labels:
            words = name_words(_PARENS.sub(" ", label))  # "(Minister of Health)" is a description, not a name
            self.names[label] = words
            for w in words:
                if _strong(w):
                    self.by_word.setdefault(w, set()).add(label)

    def match(self, query: str) -> set[str]:
        """Labels named in the query; a label whose match lies inside a longer match of another ("B" in "Grad B") loses."""
        return self.split(query)[0]

    def split(self, query: str) -> tuple[set[str], str]:
        """The labels named in the query, and the query without the words that named them."""
        raw = list(_NAME_WORD.finditer(query))
        words = name_words(query)
        capital = {w for w, m in zip(words, raw) if m.group()[:1].isupper() and len(w) >= 3 and _strong(w)}
        candidates = set().union(*(self.by_word.get(w, set()) for w in words))
        for w in capital:  # a capitalized short form names a longer first name: "Alex" for Alexandr, "Dan" for Daniel
            candidates |= {label for word, labels in self.by_word.items() if word.startswith(w) for label in labels}
        spans: dict[str, tuple[int, int]] = {}
        for label in candidates:
            span = _best_span(words, self.names[label], capital)
            if span:
                spans[label] = span
        named = {label for label, s in spans.items() if not any(_inside(s, o) for o in spans.values())}
        drop = {n for label in named for n in range(spans[label][0], sum(spans[label]))}
        rest = " ".join(m.group() for n, m in enumerate(raw) if n not in drop) if drop and len(raw) == len(words) else query
        return named, rest


def _best_span(query: list[str], name: list[str], capital: set[str] | frozenset[str] = frozenset()) -> tuple[int, int] | None:
    """(start, length) of the longest run of query words equal to consecutive name words.

    One word alone counts only if it is the name's last strong word (a surname, or the role in "Professor C"),
    so "project" in a question does not name "Project Manager" but "Hughes" names "Barry Hughes"; a capitalized
    short form of the first name counts too ("Alex" names "Alexandr Wang", "Dan" names "Daniel Levine").
    """
    def same(word: str, part: str) -> bool:
        return word == part or (word in capital and part.startswith(word))

    last = max((n for n, w in enumerate(name) if _strong(w)), default=-1)
    best = None
    for i in range(len(query)):
        for j in range(len(name)):
            n = 0
            while i + n < len(query) and j + n < len(name) and same(query[i + n], name[j + n]):
                n += 1
            short_form = j == 0 and query[i] != name[0]
            if n and any(_strong(w) for w in name[j : j + n]) and (n > 1 or j == last or short_form) and (best is None or n > best[1]):
                best = (i, n)
    return best


def _inside(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return b[1] > a[1] and b[0] <= a[0] and a[0] + a[1] <= b[0] + b[1]
