"""How well a candidate sentence answers a question, beyond its embedding similarity to it.

Embedding similarity rewards sentences that restate the question ("what's your costume going to be?"). These
signals correct it: how much of the question's informative words a sentence covers (IDF-weighted, speaker names
left out), what it adds beyond the question's own words, and whether it is a question, a greeting or filler.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..storage.lexical import stem, tokenize

if TYPE_CHECKING:
    from ..index.core import Index

# Turn openers and closers that never answer anything, whatever they are near.
_SOCIAL = re.compile(
    r"^\W*(?:thanks?|thank you|hello|hi|hey|welcome|good (?:morning|afternoon|evening)|bye|goodbye|cheers|okay|ok|"
    r"yeah|yes|no|right|sure|great|cool|awesome|absolutely|exactly|wow|oh|um+|uh+|hmm+)\b",
    re.I,
)


@dataclass(frozen=True, slots=True)
class Question:
    """The question's informative words with their IDF weights (speaker names removed)."""

    terms: dict[str, float]
    speakers: tuple[str, ...] = ()  # corpus speakers the question names
    why: bool = False  # a why/how question: its answer is a reason or a way, not a restatement
    names: tuple[tuple[str, ...], ...] = ()  # tokens of each run of capitalised words after the first (not speakers)

    def unknown_names(self, tokens: Iterable[str]) -> list[tuple[str, ...]]:
        """The names none of whose words occur in tokens: "Vonage" in a question about passages that never say it."""
        found = _with_compounds(fold(list(tokens)))
        return [name for name in self.names if not found.intersection(name)]

    def cover(self, tokens: Iterable[str]) -> float:
        """Share of the question's IDF weight present in tokens (0..1)."""
        total = sum(self.terms.values())
        found = _with_compounds(fold(list(tokens)))
        return sum(w for t, w in self.terms.items() if t in found) / total if total else 0.0

    def novelty(self, tokens: Iterable[str], idf: IdfTable) -> float:
        """Share of a sentence's IDF weight in words the question does not have: 0 for an echo of the question."""
        weights = {t: idf(t) for t in set(fold(list(tokens)))}
        total = sum(weights.values())
        return sum(w for t, w in weights.items() if t not in self.terms) / total if total else 0.0


class IdfTable:
    """Inverse document frequency of a term over the index's chunks (an unseen term gets the highest weight)."""

    def __init__(self, index: Index) -> None:
        self.bm25 = index.lexical.chunks
        self.n = self.bm25.rows or 1
        self._df: dict[str, int] = {}

    def prefetch(self, terms: Iterable[str]) -> None:
        """Look up many terms' document frequencies at once (an answer weighs every word of every candidate)."""
        missing = {t for t in terms if t not in self._df}
        if missing:
            self._df.update(self.bm25.dfs(missing))

    def __call__(self, term: str) -> float:
        df = self._df.get(term)
        if df is None:
            df = self._df[term] = self.bm25.df(term)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))


def question_terms(question: str, index: Index, idf: IdfTable) -> Question:
    """The question's content words minus the speakers it names ("What did Alex say..." is not about the word Alex)."""
    from ..search.hybrid import retriever

    named, rest = retriever(index).matcher.split(question)
    why = bool(re.match(r"\W*(?:why|how)\b(?! (?:many|much|long|old|often|far)\b)", question, re.I))
    words = [t for t in fold(tokenize(rest or question)) if t not in _ASKING]
    idf.prefetch(words)
    names = tuple(tuple(fold(tokenize(run))) for run in _CAPITALISED.findall(rest or question) if tokenize(run))
    return Question({t: idf(t) for t in words}, tuple(sorted(named)), why, names)


# A run of capitalised words that does not open the question: a name ("Vonage", "Go Time", "Ken Thompson").
_CAPITALISED = re.compile(r"(?<=\w[\s,])(?:[A-Z][\w'’.-]*)(?:\s+[A-Z][\w'’.-]*)*")


def _with_compounds(tokens: list[str]) -> set[str]:
    """The tokens and each adjacent pair written as one word: "Mid Journey" also says "Midjourney"."""
    return set(tokens) | {a + b for a, b in zip(tokens, tokens[1:])}


def fold(tokens: list[str]) -> list[str]:
    """Tokens without accents, so "naïveté" meets "naivete"."""
    return [unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode() or t for t in tokens]


# Words of asking, not of the topic: "according to Dan", "what does Alex consider", "how did they describe".
_ASKING = frozenset(stem(w) for w in (
    "according say said says tell told think thought consider considers believe believes mention mentioned describe described "
    "explain explained talk talked discuss discussed call called mean means kind sort type way thing things"
).split())


def is_fragment(quote: str) -> bool:
    """A line without sentence-final punctuation: a heading, a title, a caption cut mid-sentence."""
    return not quote.rstrip(" \"'”’)]*_").endswith((".", "!", "?", "…"))


def is_navigation(quote: str) -> bool:
    """A line that is a link and not a sentence ("**Read another blog about [X](./x)**"): page chrome, not speech."""
    return "](" in quote and is_fragment(quote)


def is_question(quote: str) -> bool:
    """Ends with a question mark and is not a statement with a tag ("..., right?", "..., you know?")."""
    end = quote.rstrip(" \"'”’)]")
    return end.endswith("?") and not _TAG_QUESTION.search(end)


# A statement ending in a tag asks nothing: "And that's a totally valid reason to switch, right?"
_TAG_QUESTION = re.compile(r",\s*(?:right|yeah|yes|no|okay|ok|huh|correct|you know|you see|isn't it|don't you think|wouldn't you say)\s*\?$", re.I)


def is_filler(quote: str, tokens: list[str]) -> bool:
    """Greetings, thanks, back-channel and one-word turns: never an answer ("Yeah, I built it on Gatsby." is one)."""
    return len(set(tokens)) < 3 or (len(quote.split()) < 7 and bool(_SOCIAL.match(quote)))
