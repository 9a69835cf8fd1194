"""BM25 terms (tokenizer, stemmer, word pairs), and the reference BM25 built with bm25s.

An index stores postings and scores them at query time (storage/local.py, SegmentedBm25); the in-memory Bm25
here is the reference those scores are tested against, and what the evaluation benchmarks build directly."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import MissingDependencyError

if TYPE_CHECKING:
    import numpy as np

    from ..datatypes import Chunk

K1, B = 1.2, 0.75

# Transcript annotations carry no topic: {vocalsound}, {disfmarker}, [laughter], <noise>, (inaudible).
_MARKUP = re.compile(r"\{[^{}\n]{0,40}\}|\[[\w\s'-]{0,40}\]|<[\w\s/'-]{0,40}>|\((?:inaudible|laughs?|laughter|crosstalk|pause)\)", re.I)
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren as at be because been before being below between
    both but by can cannot could couldn did didn do does doesn doing don down during each either else even ever few for from
    further get gets got had hadn has hasn have haven having he her here hers herself him himself his how i if in into is isn
    it its itself just let me might more most much must my myself no nor not now of off on once only or other ought our ours
    ourselves out over own quite rather really same shall she should shouldn so some such than that the their theirs them
    themselves then there these they this those through to too under until up upon us very was wasn we were weren what when
    where which while who whom whose why will with won would wouldn yet you your yours yourself yourselves
    uh um uhm hmm mm mmm mhm huh ah oh eh er erm yeah yep yes okay ok alright like gonna wanna kinda sorta""".split()
)
# Words that describe the conversation rather than its topic ("what did the group discuss", "summarize what
# was said"); dropped from queries only, since they occur everywhere in meetings and match nothing specific.
QUESTION_WORDS = frozenset(
    """summarize summarise summary discuss discussed discussing discussion discussions talk talked talking said say says
    think thought opinion opinions mention mentioned group team members member meeting decide decided decision conclusion
    idea ideas suggest suggested suggestion propose proposed recommend recommended explain explained""".split()
)


def stem(word: str) -> str:
    """A light English suffix stripper (plurals, -ing, -ed): `batteries` meets `battery`, `designs` meets `design`."""
    if len(word) <= 3 or not word.isalpha() or word.endswith("ss"):
        return word
    for suffix, repl in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("es", "e"), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + repl
    return word


def tokenize(text: str) -> list[str]:
    """Lowercase stemmed word tokens without stopwords, fillers, single letters or transcript annotations."""
    text = _MARKUP.sub(" ", text).casefold().replace("’", "'")
    out = []
    for word in _WORD.findall(text):
        word = word.removesuffix("'s")
        if word not in STOPWORDS and not (len(word) == 1 and word.isalpha()):
            out.append(stem(word))
    return out


def terms(tokens: Sequence[str]) -> list[str]:
    """Words plus adjacent word pairs, so `remote control` as a phrase outscores the two words apart."""
    return [*tokens, *(f"{a} {b}" for a, b in zip(tokens, tokens[1:]))]


_QUESTION_STEMS = frozenset(stem(w) for w in QUESTION_WORDS)


def query_terms(query: str) -> list[str]:
    return terms([t for t in tokenize(query) if t not in _QUESTION_STEMS])


@dataclass(frozen=True, slots=True)
class Bm25:
    """BM25 term weights in CSC form: column t of the (rows x vocabulary) matrix holds term t's weights."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    vocab: dict[str, int]
    rows: int

    @classmethod
    def build(cls, rows: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> Bm25:
        import numpy as np

        if not any(rows):  # bm25s refuses an empty vocabulary; nothing can match anyway
            return cls(np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64), {}, len(rows))
        try:
            import bm25s
        except ImportError as exc:  # an index never needs it; the reference and the benchmarks do
            raise MissingDependencyError('the reference BM25 needs bm25s: pip install "ragkit[test]" (or "bm25s")') from exc
        model = bm25s.BM25(k1=k1, b=b, method="lucene", csc_backend="numpy")
        model.index([list(r) for r in rows], show_progress=False)
        s = model.scores
        columns = len(s["indptr"]) - 1  # newer bm25s adds an empty-string token past the last column: leave it out
        vocab = {str(k): int(v) for k, v in model.vocab_dict.items() if int(v) < columns}
        return cls(np.asarray(s["data"], np.float32), np.asarray(s["indices"], np.int32), np.asarray(s["indptr"], np.int64), vocab, len(rows))

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """BM25 score of every row for the query terms (zeros when none is indexed)."""
        import numpy as np

        ids = [self.vocab[t] for t in query if t in self.vocab]
        if not ids:
            return np.zeros(self.rows, dtype=np.float32)
        picked = np.concatenate([np.arange(self.indptr[i], self.indptr[i + 1]) for i in ids])
        return np.bincount(self.indices[picked], weights=self.data[picked], minlength=self.rows).astype(np.float32)

    def df(self, term: str) -> int:
        """Rows holding the term (the same interface as the stored index's scorer)."""
        col = self.vocab.get(term)
        return 0 if col is None else int(self.indptr[col + 1] - self.indptr[col])


@dataclass(frozen=True, slots=True)
class LexicalIndex:
    """BM25 over the index's chunks, and over whole sources (each source's chunks joined) for source-level scores."""

    chunks: Bm25
    sources: Bm25
    names: tuple[str, ...]  # row i of `sources` is the source names[i]

    @classmethod
    def build(cls, chunks: Sequence[Chunk]) -> LexicalIndex:
        rows = [terms(tokenize(c.text)) for c in chunks]
        per_source: dict[str, list[str]] = {}
        for chunk, row in zip(chunks, rows):
            per_source.setdefault(chunk.source, []).extend(row)
        return cls(Bm25.build(rows), Bm25.build(list(per_source.values())), tuple(per_source))
