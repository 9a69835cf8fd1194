"""Hybrid retrieval: dense and BM25 scores fused, aware of speakers and sources, assembled into passages.

Measured on QMSum and the seeds gold set (eval/results/retrieval_ablation.md); the defaults below are the
best settings found there, chosen as round values on broad plateaus rather than per-query tuning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from .datatypes import Hit
from .errors import UsageError
from .lexical import STOPWORDS, query_terms

if TYPE_CHECKING:
    import numpy as np

    from .index import Index
    from .passages import Assembler

log = logging.getLogger(__name__)

MODES = ("hybrid", "rrf", "dense", "lexical")
DEFAULT_BUDGET = 0  # tokens of assembled context; 0 returns plain chunks
DENSE_DEPTH = 300  # dense candidates per query; chunks below them get the lowest retrieved score (300 ~ 1000 on QMSum)
RRF_K = 60
CANDIDATES = 30  # ranked chunks handed to passage assembly (at least 3k)
STRIP_NAMES = True
_GLOB = re.compile(r"[*?\[\]]")


@dataclass(frozen=True, slots=True)
class SearchOptions:
    """How `Index.search` ranks: the scorer, its dense weight, transcript-aware boosts and the context budget."""

    mode: str = "hybrid"  # hybrid (weighted score fusion), rrf (reciprocal rank fusion), dense, lexical
    weight: float = 0.6  # dense share in hybrid and rrf; BM25 gets 1 - weight
    budget: int = DEFAULT_BUDGET  # tokens of context assembled from the top hits; 0 = plain chunks
    speaker_boost: float = 0.2  # added in proportion to the text spoken by speakers the query names
    source_weight: float = 0.2  # BM25 of the whole source, added when a search spans several sources

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if not 0.0 <= self.weight <= 1.0:
            raise UsageError(f"--weight {self.weight}: the dense weight must be between 0 and 1, e.g. --weight 0.5")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 0:
            raise UsageError(f"--budget {self.budget!r}: give a whole number of tokens (0 for plain chunks), e.g. --budget 1000")
        if self.speaker_boost < 0 or self.source_weight < 0:
            raise UsageError("speaker_boost and source_weight must be 0 or more")


def search_options(options: dict[str, Any]) -> SearchOptions:
    """Options from keyword arguments; None means the default, unknown names are an error."""
    names = {f.name for f in fields(SearchOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise UsageError(f"unknown search option {unknown[0]!r}; use one of {', '.join(sorted(names))}")
    return SearchOptions(**{k: v for k, v in options.items() if v is not None})


# ---------------------------------------------------------------- speakers named in a question

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


# ---------------------------------------------------------------- the retriever


class Retriever:
    """Search state for one index: source maps, speaker shares and passage assembly, built on first use."""

    def __init__(self, index: Index) -> None:
        import numpy as np

        self.index = index
        self.by_source: dict[str, list[int]] = {}
        for i, chunk in enumerate(index.chunks):
            self.by_source.setdefault(chunk.source, []).append(i)
        rows = {name: n for n, name in enumerate(index.lexical.names)}
        self.source_row = np.array([rows.get(c.source, 0) for c in index.chunks], dtype=np.int64)
        self._matcher: SpeakerMatcher | None = None
        self._shares: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        self._assembler: Assembler | None = None

    def search(self, query: str, k: int, *, speaker: str | None = None, source: str | None = None, **options: Any) -> list[Hit]:
        """The k best passages (or chunks, with budget 0) for the query within the filters."""
        import numpy as np

        opts = search_options(options)
        ids = self.scope(speaker, source)
        if ids is not None and not len(ids):
            return []
        scores, ids = self.scores(query, ids, k, opts)
        if opts.mode == "lexical":
            keep = scores > 0  # no shared word, no lexical hit
            scores, ids = scores[keep], ids[keep]
        order = np.argsort(-scores, kind="stable")
        if not opts.budget:
            return [Hit(self.index.chunks[ids[n]], float(scores[n]), rank) for rank, n in enumerate(order[:k], start=1)]
        ranked = [(int(ids[n]), float(scores[n])) for n in order[: max(CANDIDATES, 3 * k)]]
        return self.assembler.passages(ranked, k, opts.budget)

    def scope(self, speaker: str | None, source: str | None) -> np.ndarray | None:
        """Sorted chunk ids allowed by the filters, or None for all."""
        import numpy as np

        if source and not speaker and not _GLOB.search(source):
            return np.array(self.by_source.get(source, []), dtype=np.int64)  # a plain name: no scan
        ids = self.index.select(speaker, source)
        return None if ids is None else np.array(sorted(ids), dtype=np.int64)

    def scores(self, query: str, ids: np.ndarray | None, k: int, opts: SearchOptions) -> tuple[np.ndarray, np.ndarray]:
        """Fused scores of the chunks in scope, and their ids."""
        import numpy as np

        lex = self.index.lexical
        ids = np.arange(len(self.index.chunks), dtype=np.int64) if ids is None else ids
        named, rest = self.matcher.split(query) if opts.speaker_boost else (set(), query)
        # Names are matched against speaker labels below; as words they would favour passages *about* the person.
        lexical = lex.chunks.scores(query_terms(rest if STRIP_NAMES else query))[ids] if opts.mode != "dense" else None
        dense = self.dense(query, ids, k) if opts.mode != "lexical" else None
        fused = fuse(dense, lexical, opts.mode, opts.weight)
        if named:
            fused += opts.speaker_boost * self.speaker_share(named, ids)
        if opts.source_weight and len(np.unique(self.source_row[ids])) > 1:
            whole = lex.sources.scores(query_terms(query))  # here a name helps: it tells which source
            top = float(whole.max())
            if top > 0:
                fused += opts.source_weight * (whole / top)[self.source_row[ids]]
        return fused, ids

    def dense(self, query: str, ids: np.ndarray, k: int) -> np.ndarray:
        """Cosine scores of the scoped chunks; those past the dense candidates get the lowest retrieved score."""
        import numpy as np

        everything = len(ids) == len(self.index.chunks)
        depth = min(len(ids), max(DENSE_DEPTH, 10 * k))
        found = self.index.store.search(self.index.embed_query(query), depth, None if everything else ids.tolist())
        if not found:
            return np.zeros(len(ids), dtype=np.float32)
        pairs = np.asarray(found, dtype=np.float64)  # (id, score) rows, best first
        hit_ids, hit_scores = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.float32)
        out = np.full(len(ids), hit_scores[-1], dtype=np.float32)
        out[hit_ids if everything else np.searchsorted(ids, hit_ids)] = hit_scores
        return out

    def speaker_share(self, named: set[str], ids: np.ndarray) -> np.ndarray:
        """Per chunk in scope, the share of its text spoken by the named speakers."""
        import numpy as np

        if self._shares is None:  # built on the first question that names someone
            self._shares = speaker_shares(self.index)
        shares = self._shares
        total = np.zeros(len(self.index.chunks), dtype=np.float32)
        for label in named:
            np.add.at(total, *shares[label])
        log.debug("query names speakers %s", sorted(named))
        return total[ids]

    @property
    def matcher(self) -> SpeakerMatcher:
        if self._matcher is None:
            self._matcher = SpeakerMatcher({t.speaker for d in self.index.documents.values() for t in d.turns if t.speaker})
        return self._matcher

    @property
    def assembler(self) -> Assembler:
        if self._assembler is None:
            from .passages import Assembler

            self._assembler = Assembler(self.index, self.index.embedder.count_tokens)
        return self._assembler


def fuse(dense: np.ndarray | None, lexical: np.ndarray | None, mode: str, weight: float) -> np.ndarray:
    """One score per chunk: each side divided by its best score, then weighted; rrf uses ranks instead."""
    import numpy as np

    if lexical is None or mode == "dense":
        return _by_max(dense)  # type: ignore[arg-type]
    if dense is None or mode == "lexical":
        return _by_max(lexical)
    if mode == "rrf":
        def rrf(x: np.ndarray) -> np.ndarray:
            ranks = np.empty(len(x), dtype=np.float32)
            ranks[np.argsort(-x, kind="stable")] = np.arange(1, len(x) + 1)
            return (RRF_K + 1) / (RRF_K + ranks)  # 1.0 at rank 1, like the normalized scores

        return weight * rrf(dense) + (1 - weight) * rrf(lexical)
    return weight * _by_max(dense) + (1 - weight) * _by_max(lexical)


def _by_max(x: np.ndarray) -> np.ndarray:
    import numpy as np

    top = float(x.max()) if len(x) else 0.0
    return (x / top).astype(np.float32) if top > 0 else np.zeros(len(x), dtype=np.float32)


def speaker_shares(index: Index) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per speaker, the chunks they speak in and their share of each chunk's characters."""
    import numpy as np

    rows: dict[str, tuple[list[int], list[float]]] = {}
    for i, chunk in enumerate(index.chunks):
        turns = index.documents[chunk.source].turns[chunk.first_turn : chunk.last_turn + 1]
        sizes = [(t.speaker, max(0, min(t.char_end, chunk.char_end) - max(t.char_start, chunk.char_start))) for t in turns]
        total = sum(n for _, n in sizes) or 1
        for label, n in sizes:
            if label:
                ids, values = rows.setdefault(label, ([], []))
                ids.append(i)
                values.append(n / total)
    return {label: (np.array(ids, dtype=np.int64), np.array(values, dtype=np.float32)) for label, (ids, values) in rows.items()}


def retriever(index: Index) -> Retriever:
    """The index's retriever, created on first search."""
    found = getattr(index, "_retriever", None)
    if found is None or found.index is not index:
        found = Retriever(index)
        index._retriever = found  # type: ignore[attr-defined]
    return found


def describe(options: SearchOptions | None = None) -> dict[str, Any]:
    """The options as a plain dict (for reports and manifests)."""
    opts = options or SearchOptions()
    return {f.name: getattr(opts, f.name) for f in fields(opts)}


__all__: Sequence[str] = ("MODES", "Retriever", "SearchOptions", "SpeakerMatcher", "fuse", "retriever", "search_options")
