"""The extractive answerer: the sentence that answers the question, with the one or two after it, quoted verbatim.

How an answer is chosen: every sentence of the retrieved passages is scored by its embedding similarity to the
question plus how much of the question's informative words it and its neighbours cover; sentences that only
restate the question, questions, greetings, fillers and page chrome are held down or dropped. When a match is a
question, its answer (the rest of the turn, else the next turn by another speaker) inherits that match. The best
sentence is extended with what its speaker says next (over a short interjection such as "Really?" too; back to the
reason when it opens with "So ..."), in spoken order, up to max_words; a second span is added only when it scores
almost as well. The answerer abstains when nothing is close to the question, when the question names something
the passages never mention, or when the answer lacks what the question asks for (a number for "how many", a
name for "who").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..datatypes import Answer, Hit, Turn, speaker_matches
from ..readers.subtitles import clean_text, span_times, turn_parts
from ..search.context import turn_range
from ..storage.lexical import tokenize
from .base import MARKUP, SENTENCE, Sentence, citation, sentences
from .expects import expects, satisfies
from .relevance import IdfTable, Question, fold, is_filler, is_fragment, is_navigation, is_question, question_terms

if TYPE_CHECKING:
    import numpy as np

    from ..embed import Embedder
    from ..index.core import Index

# Tuned on eval/gold/seeds.jsonl and eval/gold/real.jsonl; eval/gold/heldout.jsonl was written after the tuning
# and is only measured (eval/results/answers.md). Not used, measured on both gold sets: a rule on the question's
# rare words missing from the passages raised abstention recall on real.jsonl to 0.625 but answered only 0.857
# of the seeds' answerable questions (paraphrased questions lack the passages' words too).
ABSTAIN_BELOW = 0.34  # cosine of the closest sentence: below it nothing in the corpus is about the question
ABSTAIN_SCORE = 0.3  # the best score (cosine plus word overlap): below it the closest sentence is not an answer
LEXICAL_WEIGHT = 0.6  # how much IDF-weighted word overlap adds to the cosine
ECHO_NOVELTY = 0.25  # a sentence with less new weight than this restates the question
MAX_WORDS = 80
# Passages read whole; in those after them (the pipeline passes 8) only sentences sharing a word with the question
# are candidates: on both gold sets the same answers, and ask p50 289 -> 205 ms (fewer sentences to embed).
READ_WHOLE = 5

SECOND_SPAN = 0.7  # a second, separate span only when it scores this close to the best
REPLY_SHARE = 0.6  # how much of a question's score the sentences answering it inherit
SAID_BY = 1.15  # a question naming a speaker: that speaker's sentences ...
NOT_SPOKEN = 0.85  # ... and prose that nobody said
FRAGMENT = 0.8  # a line without sentence punctuation (a title, a caption fragment)
MAX_SPANS = 2  # the best span and at most one other
WHY_MORE = 2  # sentences a why/how answer may run on beyond max_sentences: a reason takes longer to give
# "So the rules are different.": a conclusion, whose reason is the sentence before it.
CONCLUSION = re.compile(r"\W*(?:and )?(?:so|therefore|thus|hence|that's why|that is why|which is why)\b", re.I)
REASON_WORDS = 8  # a shorter sentence before "So ..." is a reply ("Yeah, that was unexpected."), not the reason
INTERJECTION = 12  # words: a turn this short between two turns of one speaker does not end their answer
TYPED_SHARE = 0.7  # an answer without the asked kind ("how many": a number) may give way to a sentence that has it,
NEAR_BEFORE, NEAR_AFTER = 200, 600  # ... scoring this close to the best, said this many characters around it


@dataclass(frozen=True, slots=True)
class _Scored:
    sentence: Sentence
    score: float  # what ranks candidates
    sim: float  # cosine with the question (abstention)
    raw: float  # score before the echo and question penalty (what a reply inherits)


class ExtractiveAnswerer:
    """A contiguous verbatim span that answers the question, cited; abstains when the corpus does not say."""

    spec = "extractive"

    def __init__(self, max_sentences: int = 3, abstain_below: float | None = None, hit_weight: float = 0.3,
                 max_words: int = MAX_WORDS) -> None:
        self.max_sentences = max_sentences
        self.abstain_below = ABSTAIN_BELOW if abstain_below is None else abstain_below
        self.hit_weight = hit_weight
        self.max_words = max_words

    def answer(self, question: str, hits: Sequence[Hit], index: Index, speaker: str | None = None) -> Answer:
        """With speaker, only sentences that speaker said are candidates (every quote is theirs)."""
        idf = IdfTable(index)
        asked = question_terms(question, index, idf)
        hits = list(hits)
        candidates = [s for n, hit in enumerate(hits) for s in sentences(index, hit)
                      if speaker_matches(speaker, s.speaker) and not is_filler(s.quote, tokenize(s.quote)) and not is_navigation(s.quote)
                      and (n < READ_WHOLE or asked.cover(tokenize(s.quote)) > 0)]
        if not candidates:
            return Answer(question, "", (), tuple(hits), self.spec)
        premises = frozenset(n for n, c in enumerate(candidates) if asked.why and asked.cover(tokenize(c.quote)) >= 0.6)
        extra_candidates, replies = _replies(index, candidates, hits, speaker, premises)
        candidates += extra_candidates
        named = set(asked.speakers)
        scored = self._score(question, asked, idf, candidates, hits, index, named)
        for n, asked_by in replies:
            # What follows a question in the transcript (the speaker's own answer, or the next speaker's) shares
            # that question's relevance, whatever its own wording.
            inherited = REPLY_SHARE * scored[asked_by].raw + (1 - REPLY_SHARE) * scored[n].score
            scored[n] = replace(scored[n], score=max(scored[n].score, inherited))
        best = max(scored, key=lambda s: s.score)
        passages = [t for h in hits for t in tokenize(h.chunk.text)]
        if self._abstains(max(s.sim for s in scored)) or best.score < ABSTAIN_SCORE or asked.unknown_names(passages):
            return Answer(question, "", (), tuple(hits), self.spec)  # nothing close, or about a name never mentioned
        spans, own = self._spans(best, scored, index, asked.why)
        expected = expects(question)
        if not any(satisfies(expected, s.sentence.quote) for s in spans[:own]):
            # "How many ...?" and the best answer holds no number: a sentence nearly as good that has one, else the
            # passages are about the question's topic but do not hold its answer.
            typed = [s for s in scored if s.score >= TYPED_SHARE * best.score and satisfies(expected, s.sentence.quote)
                     and _near(s.sentence, best.sentence)]
            if not typed:
                return Answer(question, "", (), tuple(hits), self.spec)
            spans, own = self._spans(max(typed, key=lambda s: s.score), scored, index, asked.why)
        used = {h.chunk.id for h in hits}
        extra = list({s.sentence.hit.chunk.id: s.sentence.hit for s in spans if s.sentence.hit.chunk.id not in used}.values())
        # Spans of one source in the order they were spoken; sources in the order of their best passage.
        first: dict[str, int] = {}
        for s in sorted(spans, key=lambda s: s.sentence.hit.rank):
            first.setdefault(s.sentence.hit.chunk.source, s.sentence.hit.rank)
        ordered = sorted(spans, key=lambda s: (first[s.sentence.hit.chunk.source], s.sentence.hit.chunk.source, s.sentence.char_start))
        citations = tuple(citation(s.sentence, n) for n, s in enumerate(ordered, start=1))
        text = " ".join(f"{clean_text(c.quote)} [{c.marker}]" for c in citations)
        return Answer(question, text, citations, tuple(hits + extra), self.spec)

    def _score(self, question: str, asked: Question, idf: IdfTable, candidates: list[Sentence], hits: list[Hit], index: Index,
               named: set[str]) -> list[_Scored]:
        idf.prefetch(t for c in candidates for t in fold(tokenize(c.quote)))
        vectors = embed_in_small_batches(index.embedder, [question] + [c.quote for c in candidates])
        sims = vectors[1:] @ vectors[0]
        best_hit = max((h.score for h in hits), default=0.0) or 1.0
        context = _neighbour_tokens(candidates, index)
        out = []
        for c, sim, around in zip(candidates, sims, context):
            tokens = tokenize(c.quote)
            # A sentence from a better passage wins ties: its context also matched the question.
            boost = (1 - self.hit_weight) + self.hit_weight * min(c.hit.score / best_hit, 1.0)
            # Word overlap counts in the sentence and, at half weight, in the sentences around it ("in 2016 you
            # were a carrot" answers "costume in 2016" when the costume was named just before).
            lexical = 0.5 * asked.cover(tokens) + 0.5 * asked.cover(tokens + around)
            raw = float(sim) * boost + LEXICAL_WEIGHT * lexical
            if named:  # "what did Alex say ...": Alex's own words, not a page about Alex
                raw *= SAID_BY if c.speaker in named else (NOT_SPOKEN if c.speaker is None else 1.0)
            if is_fragment(c.quote):
                raw *= FRAGMENT  # a heading or caption line, not a sentence
            echo = is_question(c.quote) or asked.novelty(tokens, idf) < ECHO_NOVELTY
            out.append(_Scored(c, raw * 0.5 if echo else raw, float(sim), raw))  # an answer is rarely a question, nor the question again
        return out

    def _abstains(self, top_sim: float) -> bool:
        return top_sim < self.abstain_below

    def _spans(self, best: _Scored, scored: list[_Scored], index: Index, why: bool = False) -> tuple[list[_Scored], int]:
        """The best sentence and what its speaker says next; then a second span if it scores nearly as well.
        Also returns how many of the spans quote the best sentence's own answer (1, or 2 when it went on after an
        interjection)."""
        spans = [self._extend(best, index, sentences=self.max_sentences + WHY_MORE * why, why=why)]
        words = _words(spans[0])
        resumed = self._resumed(spans[0], index, self.max_words - words)
        if resumed is not None:  # part of the best span, though cited apart
            spans.append(resumed)
            words += _words(resumed)
        own = len(spans)
        limit = own + MAX_SPANS - 1
        for other in sorted(scored, key=lambda s: -s.score):
            if other.score < SECOND_SPAN * best.score or words >= self.max_words or len(spans) >= limit:
                break
            if any(_overlaps(other.sentence, s.sentence) for s in spans):
                continue
            if words + _words(other) <= self.max_words:
                other = self._extend(other, index, self.max_words - words)
                if any(_overlaps(other.sentence, s.sentence) for s in spans):
                    continue
                spans.append(other)
                words += _words(other)
        return spans, own

    def _resumed(self, span: _Scored, index: Index, max_words: int) -> _Scored | None:
        """The speaker's answer going on after a short interjection by someone else ("Really?", "Tell us more."):
        the first sentences of their next turn, when the span ends their turn."""
        s = span.sentence
        doc = index.documents[s.hit.chunk.source]
        at = _turn_at(doc.turns, s.char_start)
        if s.speaker is None or at + 2 >= len(doc.turns) or doc.text[s.char_end : doc.turns[at].char_end].strip():
            return None
        between, resumed = doc.turns[at + 1], doc.turns[at + 2]
        if between.speaker in (None, s.speaker) or resumed.speaker != s.speaker or len(between.text.split()) > INTERJECTION:
            return None
        hit = _hit_for(index, s.hit, at + 2)
        first = next((c for c in sentences(index, hit) if resumed.char_start <= c.char_start < resumed.char_end
                      and not is_filler(c.quote, tokenize(c.quote))), None)
        if first is None or is_question(first.quote) or len(first.quote.split()) > max_words:
            return None
        return self._extend(replace(span, sentence=first), index, max_words)

    def _extend(self, best: _Scored, index: Index, max_words: int | None = None, sentences: int | None = None, why: bool = False) -> _Scored:
        """The best sentence joined by the next sentences its speaker says in the same turn part (in the next chunk
        too), and, asked why, by the reason before a conclusion that opens with "So"."""
        s = best.sentence
        max_words = self.max_words if max_words is None else max_words
        sentences = self.max_sentences if sentences is None else sentences
        doc = index.documents[s.hit.chunk.source]
        turn = doc.turns[_turn_at(doc.turns, s.char_start)]
        part_start, part_end = next(((b, e) for b, e in turn_parts(turn) if b <= s.char_start < e), (turn.char_start, turn.char_end))
        limit = part_end  # past the chunk's end too: a turn cut by the chunker goes on in the next chunk
        start, end, words, count = s.char_start, s.char_end, len(s.quote.split()), 1
        if why and CONCLUSION.match(s.quote):  # asked why, "So the rules are different.": the reason is the sentence before
            before = [m for m in SENTENCE.finditer(doc.text, part_start, s.char_start) if not doc.text[m.end() : s.char_start].strip()]
            reason = before[-1].group().rstrip() if before else ""
            if len(reason.split()) >= REASON_WORDS and not is_question(reason) and words + len(reason.split()) <= max_words:
                start, words = before[-1].start(), words + len(reason.split())
        for m in SENTENCE.finditer(doc.text, end, limit):
            nxt = m.group().rstrip()
            if doc.text[end : m.start()].strip() or count >= sentences or is_question(nxt) or MARKUP.search(nxt):
                break  # not adjacent, long enough, a new question, or markup
            if words + len(nxt.split()) > max_words:
                break
            end, words, count = m.start() + len(nxt), words + len(nxt.split()), count + 1
        if (start, end) == (s.char_start, s.char_end):
            return best
        start_time, end_time = span_times(turn, start, end)
        return replace(best, sentence=replace(s, char_start=start, char_end=end, start=start_time if turn.parts else s.start,
                                              end=end_time if turn.parts else s.end, quote=doc.text[start:end]))


def _replies(
    index: Index, candidates: list[Sentence], hits: list[Hit], speaker: str | None, premises: frozenset[int] = frozenset(),
) -> tuple[list[Sentence], list[tuple[int, int]]]:
    """What answers each question among the candidates: the sentences after it in the same turn, else the first
    sentences of the next turn by someone else. Returns new candidates and (candidate, question) index pairs.

    The next turn may lie in the next chunk, outside the hits: it is cited from that chunk, added to the answer's hits.
    """
    extra: list[Sentence] = []
    pairs: list[tuple[int, int]] = []
    where = {(c.hit.chunk.source, c.char_start): n for n, c in enumerate(candidates)}
    for n, q in enumerate(candidates):
        if not (is_question(q.quote) or n in premises):
            continue
        doc = index.documents[q.hit.chunk.source]
        turn = _turn_at(doc.turns, q.char_start)
        found = [s for s in sentences(index, q.hit) if q.char_end <= s.char_start < doc.turns[turn].char_end]
        if not found and q.speaker is not None:
            reply = next((j for j in range(turn + 1, min(turn + 3, len(doc.turns))) if doc.turns[j].speaker not in (None, q.speaker)), None)
            if reply is not None:
                span = doc.turns[reply]
                found = [s for s in sentences(index, _hit_for(index, q.hit, reply)) if span.char_start <= s.char_start < span.char_end]
        found = [s for s in found if speaker_matches(speaker, s.speaker) and not is_filler(s.quote, tokenize(s.quote))]
        for s in found[:2]:
            key = (s.hit.chunk.source, s.char_start)
            if key not in where:
                where[key] = len(candidates) + len(extra)
                extra.append(s)
            pairs.append((where[key], n))
    return extra, pairs


def _neighbour_tokens(candidates: list[Sentence], index: Index) -> list[list[str]]:
    """Tokens of the sentence before and after each candidate in its turn part (for context word overlap)."""
    out = []
    for c in candidates:
        text = index.documents[c.hit.chunk.source].text
        before = text[max(0, c.char_start - 300) : c.char_start].rsplit(".", 2)[-2:] if c.char_start else []
        after = text[c.char_end : c.char_end + 300].split(".", 2)[:2]
        out.append(tokenize(" ".join(before + after)))
    return out


def _turn_at(turns: Sequence[Turn], offset: int) -> int:
    return turn_range(turns, offset, offset + 1)[0]


def _hit_for(index: Index, near: Hit, turn: int) -> Hit:
    """The hit itself when its chunk holds the turn, else the chunk of the same source that does (a new hit)."""
    if near.chunk.first_turn <= turn <= near.chunk.last_turn:
        return near
    for _, chunk in index.store.chunks_of(near.chunk.source):
        if chunk.first_turn <= turn <= chunk.last_turn:
            return Hit(chunk, near.score, near.rank)
    return near


def embed_in_small_batches(embedder: Embedder, texts: Sequence[str], size: int = 8) -> np.ndarray:
    """Embed texts in small length-sorted groups: sentences vary in length, and one big batch pads them all
    to the longest (measured: 0.27 s -> 0.15 s for 30 seed sentences with the ONNX backend)."""
    import numpy as np

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(order), size):
        group = order[start : start + size]
        out[group] = embedder.embed([texts[i] for i in group])
    return out


def _words(s: _Scored) -> int:
    return len(s.sentence.quote.split())


def _near(s: Sentence, best: Sentence) -> bool:
    """Said in the same stretch of the same source: the few sentences around the best match."""
    return s.hit.chunk.source == best.hit.chunk.source and best.char_start - NEAR_BEFORE <= s.char_start <= best.char_end + NEAR_AFTER


def _overlaps(a: Sentence, b: Sentence) -> bool:
    same = a.hit.chunk.source == b.hit.chunk.source
    return a.quote == b.quote or (same and a.char_start < b.char_end and b.char_start < a.char_end)
