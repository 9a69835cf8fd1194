"""`--context N`: the turns around each hit and citation, in the library records, JSON and human output."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

import ragkit
from ragkit.chunking import ChunkSettings
from ragkit.cli import main
from ragkit.cli.render import CONTEXT_MARK, HIT_MARK
from ragkit.datatypes import Turn, format_time
from ragkit.errors import UsageError
from ragkit.search.context import around, turn_range, with_context

SMALL = ChunkSettings(max_tokens=16, tokenizer="words")  # one podcast turn per chunk


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def turns(texts: list[str]) -> list[Turn]:
    """Turns laid out back to back, 10 characters apart; an empty text is a turn with nothing spoken."""
    return [Turn(f"S{i}", text, float(i), None, 10 * i, 10 * i + len(text), i + 1) for i, text in enumerate(texts)]


@pytest.fixture()
def podcast_index(podcast_file: Path) -> ragkit.Index:
    return ragkit.Index.build(ragkit.read_corpus(podcast_file.parent), embedder="hash:256", settings=SMALL)


# ------------------------------------------------------------------ library


def test_around_counts_spoken_turns_and_stops_at_the_edges() -> None:
    t = turns(["a", "b", "", "c", "d", "e", "", "f"])
    assert around(t, 3, 3, 2) == ((t[0], t[1]), (t[4], t[5]))  # the empty turn 2 is skipped, not counted
    assert around(t, 4, 5, 1) == ((t[3],), (t[7],))
    assert around(t, 0, 0, 3) == ((), (t[1], t[3], t[4]))
    assert around(t, 7, 7, 1) == ((t[5],), ())
    assert around(t, 3, 3, 0) == ((), ())


def test_turn_range_finds_the_turns_a_quote_spans() -> None:
    t = turns(["aaaaa", "bbbbb", "ccccc", "ddddd"])  # turn i covers [10i, 10i + 5)
    assert turn_range(t, 21, 24) == (2, 2)
    assert turn_range(t, 10, 35) == (1, 3)
    assert turn_range(t, 0, 5) == (0, 0)
    assert turn_range(t, 30, 30) == (3, 3)  # an empty span still belongs to its turn


def test_hits_get_the_turns_before_and_after_them(podcast_index: ragkit.Index) -> None:
    hits = podcast_index.search("worm bin citrus peels", k=len(podcast_index))
    doc = podcast_index.documents["episode.txt"]
    for hit in with_context(hits, 2, podcast_index.documents):
        first, last = hit.chunk.first_turn, hit.chunk.last_turn
        assert hit.before == doc.turns[max(first - 2, 0) : first]  # no empty turns in this transcript
        assert hit.after == doc.turns[last + 1 : last + 3]
    assert with_context(hits, 0, podcast_index.documents) == hits
    with pytest.raises(UsageError, match="--context"):
        with_context(hits, -1, podcast_index.documents)


def test_citations_get_the_turns_around_the_quoted_turn(podcast_index: ragkit.Index) -> None:
    answer = with_context(ragkit.ask(podcast_index, "Citrus peels are fine in small amounts.", k=3), 1, podcast_index.documents)
    doc = podcast_index.documents["episode.txt"]
    cited = next(c for c in answer.citations if c.quote == "Citrus peels are fine in small amounts.")
    assert [t.text for t in cited.before] == ["What goes into a worm bin?"]
    assert [t.text for t in cited.after] == ["Red wigglers eat about half their weight a day."]
    assert cited.before[0] is doc.turns[4] and cited.after[0] is doc.turns[6]
    assert all(h.before or h.after for h in answer.hits)


def test_context_of_a_subtitle_quote_skips_to_the_neighbouring_turns(tmp_path: Path) -> None:
    voices = Path(__file__).parents[1] / "fixtures" / "formats" / "voices.vtt"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "voices.vtt").write_bytes(voices.read_bytes())
    index = ragkit.Index.build(ragkit.read_corpus(tmp_path / "c"), embedder="hash:256", settings=SMALL)
    answer = with_context(ragkit.ask(index, "Red wigglers eat about half their weight every day.", k=2), 1, index.documents)
    cited = next(c for c in answer.citations if "Red wigglers" in c.quote)
    # The quote is the second cue of Maria Lopez's turn 1: context is turn 0 and turn 2, not her own first cue.
    assert [(t.speaker, t.start) for t in cited.before + cited.after] == [("Alex Wang", 1.0), ("Alex Wang", 17.0)]


# ------------------------------------------------------------------ CLI


@pytest.fixture()
def podcast_cli_index(podcast_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "idx"
    code, _, err = run(["index", str(podcast_file.parent), "-o", str(out), "-e", "hash:256", "--max-tokens", "16"], capsys)
    assert code == 0, err
    return out


def test_search_context_marks_the_hit_among_its_neighbours(podcast_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = "Citrus peels are fine in small amounts."
    code, out, _ = run(["search", query, "-i", str(podcast_cli_index), "-k", "1", "--context", "1"], capsys)
    assert code == 0
    assert out.splitlines()[1:6] == [
        f"   {CONTEXT_MARK}Maya Chen · 0:01:30",
        f"   {CONTEXT_MARK}What goes into a worm bin?",
        f"   {HIT_MARK}Raj Patel · 0:01:41",
        f"   {HIT_MARK}Citrus peels are fine in small amounts.",
        f"   {CONTEXT_MARK}Raj Patel · 0:02:10",
    ]
    code, plain, _ = run(["search", query, "-i", str(podcast_cli_index), "-k", "1"], capsys)
    assert code == 0 and CONTEXT_MARK not in plain and HIT_MARK not in plain  # the default layout is unchanged


def test_search_json_context_is_turn_records(podcast_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "worm bin", "-i", str(podcast_cli_index), "-k", "8", "--context", "2", "--json"], capsys)
    hits = json.loads(out)["hits"]
    doc = ragkit.Index.load(podcast_cli_index).documents["episode.txt"]
    assert code == 0 and hits
    for hit in hits:
        first, last = hit["chunk"]["first_turn"], hit["chunk"]["last_turn"]
        assert hit["before"] == [json.loads(json.dumps(asdict(t))) for t in doc.turns[max(first - 2, 0) : first]]
        assert hit["after"] == [json.loads(json.dumps(asdict(t))) for t in doc.turns[last + 1 : last + 3]]
    assert any(h["before"] and {"speaker", "text", "start", "end", "line"} <= set(h["before"][0]) for h in hits)


def test_ask_context_surrounds_the_quote(podcast_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "Red wigglers eat about half their weight a day.", "-i", str(podcast_cli_index), "--context", "1"], capsys)
    assert code == 0
    lines = out.splitlines()
    head = lines.index("  [1] episode · Raj Patel · 0:02:10")
    assert lines[head + 1 : head + 6] == [
        f"      {CONTEXT_MARK}Raj Patel · 0:01:41",
        f"      {CONTEXT_MARK}Citrus peels are fine in small amounts.",
        f"      {HIT_MARK}“Red wigglers eat about half their weight a day.”",
        f"      {CONTEXT_MARK}Maya Chen · {format_time(3723)}",
        f"      {CONTEXT_MARK}That is a lot of peels.",
    ]


def test_prose_context_has_no_speaker_or_time_line(podcast_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["search", "Welcome to the show. Today we talk about compost.", "-i", str(podcast_cli_index), "-k", "1",
                        "--context", "1"], capsys)
    assert code == 0
    assert out.splitlines()[1:4] == [
        f"   {CONTEXT_MARK}A short page intro before the conversation.",
        f"   {HIT_MARK}Maya Chen · 0:00:05",
        f"   {HIT_MARK}Welcome to the show. Today we talk about compost.",
    ]


@pytest.mark.parametrize("command", ["search", "ask"])
def test_negative_context_is_a_usage_error(podcast_cli_index: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run([command, "worms", "-i", str(podcast_cli_index), "--context", "-1"], capsys)
    assert code == 2 and "--context" in err

