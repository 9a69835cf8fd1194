"""Hostile and messy input: encodings, line ends, huge or odd files, duplicates, and property-based reader/chunker tests."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from conftest import PODCAST, assert_chunks, assert_offsets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragkit
from ragkit.chunking import ChunkSettings, TokenCounter, chunk_document, tiktoken_counter, word_counter
from ragkit.datatypes import Chunk, Document, Turn
from ragkit.errors import CorpusError
from ragkit.readers.corpus import decode_bytes, read_chat, read_corpus, read_document, read_podcast, read_prose
from ragkit.readers.text_formats import _CHAT, _CONTINUE, _HEADER, _HEADING_MD, _front_matter, _is_heading_like, _Lines

CheckChunks = Callable[[Document, Sequence[Chunk], TokenCounter, int], None]
ACCENTED = PODCAST.replace("Maya Chen", "Maÿa Chén").replace("compost", "compost — “naïve” café")


def turns_of(doc: Document) -> list[tuple]:
    return [(t.speaker, t.start, t.section, t.line, t.text) for t in doc.turns]


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- encodings and line ends


@pytest.mark.parametrize(
    ("encoded", "label"),
    [
        (ACCENTED.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + ACCENTED.encode("utf-8"), "utf-8-sig"),
        (ACCENTED.encode("utf-16"), "utf-16-le"),  # Python writes the BOM in native (little-endian) order
        (b"\xfe\xff" + ACCENTED.encode("utf-16-be"), "utf-16-be"),
        (ACCENTED.encode("utf-32"), "utf-32-le"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf32-bom"],
)
def test_unicode_encodings_decode_exactly_without_warnings(
    tmp_path: Path, encoded: bytes, label: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ragkit")
    assert decode_bytes(encoded).encoding == label
    doc = read_document(write_bytes(tmp_path, "ep.txt", encoded))
    assert doc.text == ACCENTED  # BOM gone, every character kept
    assert_offsets(doc)
    assert turns_of(doc) == turns_of(read_document(write_bytes(tmp_path, "plain.txt", ACCENTED.encode())))
    assert not caplog.records


def test_utf16_without_bom_is_detected_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ragkit")
    doc = read_document(write_bytes(tmp_path, "ep.txt", ACCENTED.encode("utf-16-le")))
    assert doc.text == ACCENTED
    assert "no byte order mark" in caplog.text and "utf-16-le" in caplog.text
    # Before: decoded as UTF-8 with a NUL between every two characters, and no warning.


def test_cp1252_text_decodes_with_a_warning_naming_the_first_bad_byte(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ragkit")
    text = "Ana (00:01): Café – naïve “quotes” cost €5.\nBo (00:04): Très bien.\n"
    data = text.encode("cp1252")
    doc = read_document(write_bytes(tmp_path, "legacy.txt", data))
    assert doc.text == text
    assert [t.text for t in doc.turns] == ["Café – naïve “quotes” cost €5.", "Très bien."]
    first_bad = data.index(b"\xe9")
    assert f"{tmp_path / 'legacy.txt'}: not valid UTF-8 (first bad byte at offset {first_bad}); decoded as cp1252" in caplog.text


@pytest.mark.parametrize(
    ("data", "kept", "replaced", "offset"),
    [
        ("café ok ".encode() + b"\xff\xfe broken \xc3 end", ["café ok", "broken", "end"], 3, 9),
        (b"\xef\xbb\xbfplain \xff text", ["plain", "text"], 1, 9),  # the offset counts the BOM
        (b"cp1252 \xe9t\xe9 with \x81 undefined", ["cp1252", "t", "with", "undefined"], 1, 16),
    ],
    ids=["damaged-utf8", "bom-then-bad", "cp1252-undefined-byte"],
)
def test_invalid_bytes_become_counted_replacements(
    tmp_path: Path, data: bytes, kept: list[str], replaced: int, offset: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ragkit")
    decoded = decode_bytes(data, "x.txt")
    assert decoded.replaced == replaced and decoded.text.count("\ufffd") == replaced
    assert all(word in decoded.text for word in kept)  # nothing around the bad bytes is lost
    assert f"x.txt: {replaced} invalid byte sequence(s)" in caplog.text
    assert f"first at byte offset {offset}" in caplog.text
    doc = read_document(write_bytes(tmp_path, "x.txt", data))
    assert "".join(t.text for t in doc.turns).count("\ufffd") == replaced


def test_damaged_utf8_is_not_garbled_as_cp1252(tmp_path: Path) -> None:
    # Before the fix one stray byte made the whole file cp1252: every "é" became "Ã©".
    doc = read_document(write_bytes(tmp_path, "x.txt", "Zoë said café.\n".encode() + b"\x92 stray\n"))
    assert doc.text == "Zoë said café.\n\ufffd stray\n"


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "lone-cr"])
def test_crlf_and_lone_cr_give_the_same_turns_as_lf(tmp_path: Path, newline: str) -> None:
    lf = read_document(write_bytes(tmp_path, "lf.txt", PODCAST.encode()))
    other = read_document(write_bytes(tmp_path, "other.txt", PODCAST.replace("\n", newline).encode()))
    assert other.text == PODCAST
    assert_offsets(other)
    assert turns_of(other) == turns_of(lf)
    assert [(t.char_start, t.char_end) for t in other.turns] == [(t.char_start, t.char_end) for t in lf.turns]


def test_terminal_escapes_and_control_characters_are_kept_verbatim(tmp_path: Path) -> None:
    text = "Ana (00:01): red \x1b[31malert\x1b[0m and a bell \x07 and NUL \x00 kept.\nBo (00:02): ok.\n"
    doc = read_document(write_bytes(tmp_path, "esc.txt", text.encode()))
    assert doc.turns[0].text == "red \x1b[31malert\x1b[0m and a bell \x07 and NUL \x00 kept."
    assert "\x1b[31malert" in chunk_document(doc, ChunkSettings(), word_counter)[0].text


# ---------------------------------------------------------------- huge and odd files


def test_a_5mb_single_line_without_spaces_reads_and_chunks_within_budget(tmp_path: Path) -> None:
    line = "".join(chr(ord("a") + (i * 7919) % 26) + ("/" if i % 97 == 0 else "") for i in range(5_000_000))
    assert len(line) > 5_000_000 and " " not in line
    doc = read_document(write_bytes(tmp_path, "blob.txt", line.encode()))
    assert len(doc.turns) == 1 and doc.turns[0].text == line
    count = tiktoken_counter()
    chunks = chunk_document(doc, ChunkSettings(), count)
    assert_chunks(doc, chunks, count, 200)
    assert "".join(c.text for c in chunks) == line  # character windows partition the line
    assert len(chunks) < len(line) // 300  # windows are sized to the budget, not to a few characters
    # The word counter sees one word: it fits, so the turn is one chunk.
    assert len(chunk_document(doc, ChunkSettings(), word_counter)) == 1


@pytest.mark.parametrize("style", ["podcast", "chat"])
def test_10000_one_word_turns(tmp_path: Path, style: str) -> None:
    def line(i: int) -> str:
        name = ("Ana", "Bo", "Cy")[i % 3]
        return f"{name} ({i // 3600}:{i // 60 % 60:02d}:{i % 60:02d}): w{i}" if style == "podcast" else f"{name}: w{i}"

    path = write_bytes(tmp_path, "many.txt", "\n".join(line(i) for i in range(10_000)).encode())
    doc = read_document(path)
    assert doc.format == style and len(doc.turns) == 10_000
    assert_offsets(doc)
    assert [t.text for t in doc.turns[-2:]] == ["w9998", "w9999"]
    assert doc.turns[-1].start == (9999.0 if style == "podcast" else None)
    count = tiktoken_counter()
    chunks = chunk_document(doc, ChunkSettings(), count)
    assert_chunks(doc, chunks, count, 200)
    assert chunk_document(doc, ChunkSettings(), count) == chunks


def test_speaker_labels_of_300_characters(tmp_path: Path) -> None:
    label = ("Speaker With A Remarkably Long Name And Title " * 7)[:299] + "x"
    assert len(label) == 300 and not label[-2].isspace()
    too_long = label + "y" * (301 - len(label))
    text = f"{label} (00:01): First.\n\n{too_long} (00:05): kept as text.\n\nBo (00:09): Second.\n\nBo (00:12): End.\n"
    doc = read_document(write_bytes(tmp_path, "long.txt", text.encode()))
    assert_offsets(doc)
    assert [t.speaker for t in doc.turns] == [label, "Bo", "Bo"]
    assert f"{too_long} (00:05): kept as text." in doc.turns[0].text  # a 301-character label is not a header
    count = tiktoken_counter()
    for budget in (16, 200):
        chunks = chunk_document(doc, ChunkSettings(max_tokens=budget), count)
        assert_chunks(doc, chunks, count, budget)
        assert chunks[0].speakers[0] == label
    chat = read_chat(f"{label}: hello\nBo: hi\n")
    assert [t.text for t in chat] == [f"{label}: hello", "hi"]  # chat names stop at 80 characters; text kept


def test_impossible_timestamps_are_not_headers_and_their_text_is_kept() -> None:
    text = "Ana (00:01): Hi.\nBo (99:99): bad minutes.\n\nCy (1:2:3:4): four parts.\n\n(99:99): not a continuation.\n\nAna (00:05): Bye.\n"
    turns = read_podcast(text)
    assert [(t.speaker, t.start) for t in turns] == [("Ana", 1.0), ("Ana", 5.0)]
    assert turns[0].text == "Hi.\nBo (99:99): bad minutes.\n\nCy (1:2:3:4): four parts.\n\n(99:99): not a continuation."


def test_pathological_lines_read_in_linear_time(tmp_path: Path) -> None:
    # Each of these took quadratic regex time before the fix (about 11 s per 40,000 characters).
    n = 100_000
    text = f"title: x{' ' * n}y\n\n# {'#' * n}x\n\nA{' ' * n}(00:01): z\n\nAna (00:01): ok.\nBo (00:02): ok.\n"
    doc = read_document(write_bytes(tmp_path, "slow.md", text.encode()))
    assert_offsets(doc)
    assert any(t.text.startswith("A ") for t in doc.turns)


# ---------------------------------------------------------------- corpus: front matter only, empty, duplicates


def test_front_matter_only_file_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ragkit")
    (tmp_path / "meta.md").write_text("---\ntitle: Nothing yet\ndate: 2024-01-01\n---\n", encoding="utf-8")
    (tmp_path / "bare.md").write_text("title: Also nothing\ndate: 2024-01-02\n", encoding="utf-8")
    (tmp_path / "ep.txt").write_text(PODCAST, encoding="utf-8")
    skipped: list[str] = []
    docs = read_corpus(tmp_path, on_skip=skipped.append)
    assert [d.source for d in docs] == ["ep.txt"]
    assert len(skipped) == 2 and all("only front matter" in m for m in skipped)
    assert "meta.md" in caplog.text and "bare.md" in caplog.text


def test_all_empty_corpus_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "meta.md").write_text("---\ntitle: Nothing\n---\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b" \r\n\t\r\n")
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf\n")
    with pytest.raises(CorpusError, match="every file is empty or unreadable; nothing to index"):
        read_corpus(tmp_path)


def test_duplicates_under_two_names_are_reported_and_indexed_once(tmp_path: Path, hash_spec: str) -> None:
    (tmp_path / "a.txt").write_text(PODCAST, encoding="utf-8")
    (tmp_path / "copy of a.txt").write_text(PODCAST, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a-crlf.txt").write_bytes(b"\xef\xbb\xbf" + PODCAST.replace("\n", "\r\n").encode())
    (tmp_path / "other.txt").write_text(PODCAST.replace("compost", "gardens"), encoding="utf-8")
    skipped: list[str] = []
    docs = read_corpus(tmp_path, on_skip=skipped.append)
    assert [d.source for d in docs] == ["a.txt", "other.txt"]
    assert sorted(skipped) == ["copy of a.txt: same text as a.txt; indexed once", "sub/a-crlf.txt: same text as a.txt; indexed once"]
    index = ragkit.Index.build(docs, embedder=hash_spec)
    hits = index.search("worm bin citrus peels", k=len(index.chunks))
    texts = [(h.chunk.source, h.chunk.text) for h in hits]
    assert len(texts) == len(set(texts)) and {s for s, _ in texts} == {"a.txt", "other.txt"}


# ---------------------------------------------------------------- property-based: readers and chunker

NAMES = st.sampled_from(["Ana", "Bo Li", "Dr. Q", "Zoë Ångström", "李雷", "x" * 300, "O'Neil-Smith Jr"])
TS = st.one_of(
    st.builds("{:02d}:{:02d}".format, st.integers(0, 99), st.integers(0, 59)),
    st.builds("{}:{:02d}:{:02d}".format, st.integers(0, 9), st.integers(0, 59), st.integers(0, 59)),
    st.sampled_from(["99:99", "1:2:3:4", "123:45", "1:60", ""]),
)
CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r")
WORD = st.one_of(
    st.text(CHARS, min_size=1, max_size=12),
    st.sampled_from(["the", "data", "wall.", "“quoted.”", "(aside.)", "Really?!", "…", "a:b", "#tag", "- item", "\u200b", "🎙️"]),
)
BODY = st.lists(WORD, max_size=25).map(" ".join)
LONG_WORD = st.text(st.sampled_from("abcdefghij"), min_size=200, max_size=3000)
LINE = st.one_of(
    st.builds("{} ({}): {}".format, NAMES, TS, BODY),
    st.builds("{} ({}):".format, NAMES, TS),
    st.builds("({}): {}".format, TS, BODY),
    st.builds("{} {}".format, st.sampled_from(["#", "##", "###"]), BODY),
    st.builds("{}: {}".format, NAMES, BODY),
    st.sampled_from(["", "", " ", "\t", "---", "title: T", "date: 2024-01-01", "  - yaml item", "Short Heading"]),
    BODY,
    LONG_WORD,
)
# A blank line after a line half of the time, so paragraphs, headings between turns and footers are common.
TEXT = st.lists(st.tuples(LINE, st.booleans()).map(lambda pair: pair[0] + "\n" * pair[1]), max_size=40).map("\n".join)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def allowed_gaps(text: str, kinds: str, turns: Sequence[Turn]) -> list[tuple[int, int]]:
    """Source ranges a reader may leave out of turns: turn headers, headings that became sections, front matter."""
    lines = _Lines(text)
    spans = lines.spans()
    starts = [t.char_start for t in turns]
    out = [(0, _front_matter(text, lines)[1])] if "f" in kinds else []

    def is_section(i: int, s: int, e: int) -> bool:
        # A short line is a heading only when a turn header follows or the next turn carries it as its section.
        after = next((text[a:b] for a, b in spans[i + 1 :] if text[a:b].strip()), "")
        k = bisect.bisect_left(starts, e)
        return bool(_HEADER.match(after) or _CONTINUE.match(after)) or (k < len(turns) and turns[k].section == text[s:e].strip())

    for i, (s, e) in enumerate(spans):
        line = text[s:e]
        header = (_HEADER.match(line) or _CONTINUE.match(line)) if "p" in kinds else None
        chat = _CHAT.match(line) if "c" in kinds else None
        if _HEADING_MD.match(line) or ("p" in kinds and _is_heading_like(line) and is_section(i, s, e)):
            out.append((s, e))
        elif header or chat:
            out.append((s, s + (header or chat).end()))
    return out


def assert_reader_keeps_text(text: str, turns: Sequence[Turn], kinds: str) -> None:
    """Turns are verbatim, ordered, non-overlapping, stripped; no other non-blank text is lost."""
    assert_offsets(Document("x", "x", text, tuple(turns)))
    assert all(t.text and t.text == t.text.strip() for t in turns)
    covered = sorted([(t.char_start, t.char_end) for t in turns] + allowed_gaps(text, kinds, turns))
    pos = 0
    for start, end in covered:
        assert not text[pos:start].strip(), f"text dropped at {pos}: {text[pos:start][:80]!r}"
        pos = max(pos, end)
    assert not text[pos:].strip(), f"text dropped at {pos}: {text[pos:][:80]!r}"


@FAST
@given(TEXT)
def test_property_podcast_reader_keeps_every_character(text: str) -> None:
    assert_reader_keeps_text(text, read_podcast(text), "p")


@FAST
@given(TEXT)
def test_property_chat_and_prose_readers_keep_every_character(text: str) -> None:
    assert_reader_keeps_text(text, read_chat(text), "c")
    assert_reader_keeps_text(text, read_prose(text), "")


@FAST
@given(TEXT, st.sampled_from([".txt", ".md"]), st.sampled_from(["\n", "\r\n", "\r"]), st.booleans())
def test_property_read_document_decodes_and_keeps_every_character(
    tmp_path_factory: pytest.TempPathFactory, text: str, suffix: str, newline: str, bom: bool
) -> None:
    path = tmp_path_factory.mktemp("doc") / f"t{suffix}"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", newline).encode())
    doc = read_document(path)
    assert doc.text == text.replace("\r\n", "\n").replace("\r", "\n")
    assert_reader_keeps_text(doc.text, doc.turns, {"podcast": "pf", "chat": "cf"}.get(doc.format, "f"))


@FAST
@given(TEXT, st.integers(16, 80), st.integers(0, 3))
def test_property_chunks_with_the_word_counter(text: str, budget: int, overlap: int) -> None:
    check_chunker(read_podcast(text) or read_chat(text), text, word_counter, ChunkSettings(max_tokens=budget, overlap_turns=overlap))


@FAST
@given(TEXT, st.integers(16, 80), st.integers(0, 2))
def test_property_chunks_with_tiktoken(text: str, budget: int, overlap: int) -> None:
    check_chunker(read_podcast(text), text, tiktoken_counter(), ChunkSettings(max_tokens=budget, overlap_turns=overlap))


def check_chunker(turns: Sequence[Turn], text: str, count: TokenCounter, chunking: ChunkSettings) -> None:
    """Non-empty, within budget, in order, covering every non-blank turn character, and deterministic."""
    doc = Document("t.txt", "t", text, tuple(turns))
    chunks = chunk_document(doc, chunking, count)
    assert_chunks(doc, chunks, count, chunking.max_tokens)
    assert chunk_document(doc, chunking, count) == chunks
    assert (len(chunks) > 0) == any(t.text.strip() for t in turns)
