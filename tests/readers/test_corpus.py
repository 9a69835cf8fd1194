"""Readers: podcast, chat, prose/markdown with front matter, QMSum JSON; offsets, lines and the seeds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import QMSUM_TEST, SEEDS

from ragkit.chunking import chunk_document, turn_content, word_counter
from ragkit.datatypes import Document
from ragkit.errors import TranscriptError
from ragkit.readers.corpus import detect_format, read_chat, read_document, read_podcast, read_prose

Check = Callable[[Document], None]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rows(doc_or_turns) -> list[tuple]:  # noqa: ANN001 - a Document or a list of Turns
    turns = doc_or_turns.turns if isinstance(doc_or_turns, Document) else doc_or_turns
    return [(t.speaker, t.start, t.section, t.line, t.text) for t in turns]


# ---------------------------------------------------------------- podcast


def test_podcast_fixture_turns_speakers_times_sections_and_lines(podcast_file: Path, check_offsets: Check) -> None:
    doc = read_document(podcast_file)
    assert doc.format == "podcast"
    check_offsets(doc)
    section = "Worm bins and kitchen scraps"
    assert rows(doc) == [
        (None, None, None, 1, "Episode 7 show notes"),  # page text before the first turn is prose
        (None, None, None, 3, "A short page intro before the conversation."),
        ("Maya Chen", 5.0, None, 5, "Welcome to the show. Today we talk about compost."),  # text on the next lines
        ("Raj Patel", 12.0, None, 9, "Thanks for having me.\nGlad to be here."),  # inline text plus the line below
        ("Maya Chen", 90.0, section, 14, "What goes into a worm bin?"),  # the heading line between turns
        ("Raj Patel", 101.0, section, 18, "Citrus peels are fine in small amounts."),
        ("Raj Patel", 130.0, section, 22, "Red wigglers eat about half their weight a day."),  # (mm:ss): continuation
        ("Maya Chen", 3723.0, section, 24, "That is a lot of peels."),  # h:mm:ss
    ]


def test_podcast_with_front_matter_gives_title_date_and_turns(tmp_path: Path, check_offsets: Check) -> None:
    path = write(tmp_path, "ep.txt", "title: Worms at Home\ndate: 2024-05-01\n\nAna (00:01): Hi.\nBo (00:03): Hello.\n")
    doc = read_document(path)
    check_offsets(doc)
    assert (doc.title, doc.date, doc.format) == ("Worms at Home", "2024-05-01", "podcast")
    assert rows(doc) == [("Ana", 1.0, None, 4, "Hi."), ("Bo", 3.0, None, 5, "Hello.")]


def test_podcast_header_without_text_adds_no_empty_turn() -> None:
    text = "Ana (00:01):\n\nBo (00:02): Only Bo speaks.\n\nAna (00:09):\n"
    assert rows(read_podcast(text)) == [("Bo", 2.0, None, 3, "Only Bo speaks.")]


def test_podcast_short_lines_after_the_last_turn_are_kept_as_text() -> None:
    # Before the fix, stacked short lines were all taken as section headings and vanished.
    text = "Ana (00:01): Hi.\n\nBo (00:02): Bye.\n\nShare\n\nSubscribe\n\nCredits\n"
    got = rows(read_podcast(text))
    assert [r[4] for r in got] == ["Hi.", "Bye.", "Share", "Subscribe", "Credits"]
    assert [r[0] for r in got] == ["Ana", "Bo", None, None, None]


def test_podcast_heading_followed_by_prose_sets_the_section_of_the_prose() -> None:
    text = "Ana (00:01): Hi.\n\nBo (00:02): Bye.\n\nAbout the host\n\nAna hosts a show about worms.\n"
    assert rows(read_podcast(text))[-1] == (None, None, "About the host", 7, "Ana hosts a show about worms.")


def test_continuation_before_any_header_is_kept_as_prose() -> None:
    text = "(00:01): stray line\n\nAna (00:02): Hi.\n\nBo (00:03): Yo.\n"
    got = rows(read_podcast(text))
    assert got[0] == (None, None, None, 1, "(00:01): stray line")
    assert [r[0] for r in got[1:]] == ["Ana", "Bo"]


# ---------------------------------------------------------------- chat


def test_chat_lines_continuations_and_leading_prose(tmp_path: Path, check_offsets: Check) -> None:
    text = "Team sync notes\n\nAlice: we shipped the parser\nBob: nice work\nand the tests too\nAlice: thanks\nBob: bye\n"
    path = write(tmp_path, "sync.txt", text)
    doc = read_document(path)
    assert doc.format == "chat"
    check_offsets(doc)
    assert rows(doc) == [
        (None, None, None, 1, "Team sync notes"),
        ("Alice", None, None, 3, "we shipped the parser"),
        ("Bob", None, None, 4, "nice work\nand the tests too"),
        ("Alice", None, None, 6, "thanks"),
        ("Bob", None, None, 7, "bye"),
    ]


def test_chat_needs_most_lines_to_be_chat_lines() -> None:
    prose = "Note: this is a blog post.\n\nIt has paragraphs.\n\nAnd more paragraphs.\n\nWarning: colons happen.\n"
    assert detect_format(Path("post.txt"), prose) == "prose"
    assert detect_format(Path("chat.txt"), "A: hi\nB: yo\nA: ok\n") == "chat"


def test_front_matter_without_fence_does_not_eat_chat_lines(tmp_path: Path) -> None:
    # Before the fix every `Name: text` line counted as a front-matter key and the file came out empty.
    doc = read_document(write(tmp_path, "c.txt", "title: Standup\nAlice: hi there\nBob: morning\n"))
    assert doc.title == "Standup"
    assert rows(doc) == [("Alice", None, None, 2, "hi there"), ("Bob", None, None, 3, "morning")]


def test_read_chat_direct() -> None:
    assert rows(read_chat("A: one\nB: two\n")) == [("A", None, None, 1, "one"), ("B", None, None, 2, "two")]


# ---------------------------------------------------------------- prose and markdown


def test_markdown_headings_are_sections_paragraphs_are_units(tmp_path: Path, check_offsets: Check) -> None:
    text = "# Guide ##\n\nIntro line one\nline two.\n\n## Bins\n\nUse a lid.\n\n### C#\n\nSharp.\n"
    doc = read_document(write(tmp_path, "guide.md", text))
    check_offsets(doc)
    assert (doc.format, doc.title) == ("prose", "guide")
    assert rows(doc) == [
        (None, None, "Guide", 3, "Intro line one\nline two."),
        (None, None, "Bins", 8, "Use a lid."),
        (None, None, "C#", 12, "Sharp."),
    ]


@pytest.mark.parametrize(
    "head",
    [
        "---\ntitle: \"Fenced Title\"\ndate: 2024-06-12\ntags:\n  - a\n  - b\n---\n",
        "title: \"Fenced Title\"\ndate: \"2024-06-12\"\ntags: [a, b]\n",
    ],
    ids=["fenced", "unfenced"],
)
def test_front_matter_gives_title_and_date(tmp_path: Path, head: str, check_offsets: Check) -> None:
    doc = read_document(write(tmp_path, "post.md", head + "\nBody paragraph.\n"))
    check_offsets(doc)
    assert (doc.title, doc.date) == ("Fenced Title", "2024-06-12")
    assert [t.text for t in doc.turns] == ["Body paragraph."]


def test_unclosed_fence_is_text_not_front_matter() -> None:
    assert [t.text for t in read_prose("---\ntitle: x\n\nBody.\n")] == ["---\ntitle: x", "Body."]


def test_title_falls_back_to_the_file_name(tmp_path: Path) -> None:
    assert read_document(write(tmp_path, "my_first-post.md", "Hello.\n")).title == "my first post"


# ---------------------------------------------------------------- QMSum JSON


def qmsum_json(items: list[dict]) -> str:
    # Queries come first, as in QMSum, and repeat a content string verbatim: the locator must not match there.
    data = {
        "topic_list": [{"topic": "Okay .", "relevant_text_span": [["0", "1"]]}],
        "general_query_list": [{"query": "Summarize", "answer": "Grad A said Okay ."}],
        "meeting_transcripts": items,
    }
    return json.dumps(data, indent=4)


def test_qmsum_turn_i_is_meeting_transcripts_i(tmp_path: Path, check_offsets: Check) -> None:
    items = [
        {"speaker": "Grad A", "content": "Okay ."},
        {"speaker": "Professor B", "content": 'He said " hello " \u2014 twice .'},  # escaped in the file
        {"speaker": "Grad A", "content": ""},
        {"speaker": "Grad C", "content": "  padded text  "},
        {"speaker": "Grad A", "content": "A"},
    ]
    path = write(tmp_path, "Bed999.json", qmsum_json(items).replace("\u2014", "\\u2014"))
    doc = read_document(path)
    assert doc.format == "qmsum"
    check_offsets(doc)
    assert [t.speaker for t in doc.turns] == [i["speaker"] for i in items]
    assert [turn_content(t) for t in doc.turns] == [" ".join(i["content"].split()) for i in items]
    transcripts_at = doc.text.index('"meeting_transcripts"')
    assert all(t.char_start > transcripts_at for t in doc.turns)
    assert doc.turns[0].text == "Okay ."
    assert doc.turns[1].parts == ((doc.turns[1].char_start, doc.turns[1].char_end),)
    assert json.loads(doc.turns[1].text) == items[1]["content"]  # the quoted literal is what the file holds
    assert doc.turns[3].text == "padded text" and not doc.turns[3].parts
    # The chunker embeds decoded text and skips the empty utterance.
    (chunk,) = chunk_document(doc, count=word_counter)
    assert chunk.text.splitlines() == [
        "Grad A: Okay .", 'Professor B: He said " hello " \u2014 twice .', "Grad C: padded text", "Grad A: A",
    ]


def test_json_errors_name_the_file_and_position(tmp_path: Path) -> None:
    with pytest.raises(TranscriptError, match=r"bad\.json: invalid JSON at line 2, column"):
        read_document(write(tmp_path, "bad.json", '{"meeting_transcripts": [\n  {"speaker": "A", }]}'))
    with pytest.raises(TranscriptError, match=r"nocontent\.json: meeting_transcripts\[0\] has no 'content' string"):
        read_document(write(tmp_path, "nocontent.json", '{"meeting_transcripts": [{"speaker": "A"}]}'))


# ---------------------------------------------------------------- seeds and QMSum (integration)


@pytest.mark.integration
def test_seed_blog_post_parses_with_title_date_and_sections(check_offsets: Check) -> None:
    doc = read_document(SEEDS / "alex-wang-data-not-compute-summary.md")
    check_offsets(doc)
    assert doc.format == "prose"
    assert doc.title == "Alex Wang: Why Data Not Compute is the Bottleneck to Foundation Model Performance | E1164"
    assert doc.date == "2024-06-12"
    assert all(t.speaker is None and t.start is None for t in doc.turns)
    wall = [t for t in doc.turns if "data wall" in t.text]
    assert wall and wall[0].section == "Diminishing Returns and the Data Wall"
    assert not any(t.text.startswith(("title:", "date:")) for t in doc.turns)


@pytest.mark.integration
def test_seed_podcast_parses_with_speakers_and_timestamps(check_offsets: Check) -> None:
    doc = read_document(SEEDS / "spotlight-on-scale-ai-alexandr-wang.txt")
    check_offsets(doc)
    assert doc.format == "podcast"
    assert doc.title.startswith("Spotlight On: Scale AI's Alexandr Wang")  # from the .meta.json sidecar
    spoken = [t for t in doc.turns if t.speaker]
    assert {t.speaker for t in spoken} == {"Daniel Levine", "Alexandr Wang"}
    assert (spoken[0].speaker, spoken[0].start) == ("Daniel Levine", 4.0)
    assert spoken[0].text.startswith("Welcome to Spotlight On.")
    assert all(a.start <= b.start for a, b in zip(spoken, spoken[1:]))  # times never go back
    squirrel = [t for t in spoken if "squirrel" in t.text.lower()]
    assert [(t.speaker, t.start) for t in squirrel][:1] == [("Alexandr Wang", 35 * 60 + 7.0)]
    first_turn = doc.turns.index(spoken[0])
    assert first_turn > 0 and all(t.speaker is None for t in doc.turns[:first_turn])  # page text kept as prose
    assert any(t.section == "Alex’s introduction to Machine Learning and early projects" for t in spoken)


@pytest.mark.integration
@pytest.mark.skipif(not QMSUM_TEST.is_dir(), reason="the QMSum test split is not on this machine")
def test_every_qmsum_test_meeting_reads_turn_for_turn(check_offsets: Check) -> None:
    files = sorted(QMSUM_TEST.glob("*.json"))
    assert len(files) >= 30
    for path in files:
        items = json.loads(path.read_text(encoding="utf-8"))["meeting_transcripts"]
        doc = read_document(path)
        check_offsets(doc)
        assert doc.format == "qmsum" and len(doc.turns) == len(items), path.name
        for turn, item in zip(doc.turns, items):
            assert turn.speaker == (item["speaker"] or None)
            assert turn_content(turn) == " ".join(item["content"].split()), (path.name, turn.char_start)
