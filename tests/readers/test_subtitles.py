"""Readers for subtitle and speech-to-text formats: WebVTT, SRT, Whisper-style JSON, plain JSON turn lists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ragkit
from ragkit.datatypes import Document, Turn
from ragkit.errors import RagkitError, TranscriptError
from ragkit.readers.corpus import read_corpus, read_document
from ragkit.readers.speakers import MAX_UNLABELED_WORDS, accepted_labels, prefix_label
from ragkit.readers.subtitles import clean_text, span_times, turn_content, turn_parts

FIXTURES = Path(__file__).parents[1] / "fixtures" / "formats"
GOOD = ["voices.vtt", "rolling.vtt", "labels.srt", "diarized.srt", "plain.srt", "whisperx.json", "faster_whisper.json", "turns.json"]
MARKUP = ("-->", "<", "&amp;", "\\", '"text"', "align:")


def read(name: str) -> Document:
    doc = read_document(FIXTURES / name)
    check_offsets(doc)
    return doc


def check_offsets(doc: Document) -> None:
    """Every turn and every part is a verbatim, in-bounds span of the decoded source text."""
    for turn in doc.turns:
        assert doc.text[turn.char_start : turn.char_end] == turn.text
        assert turn.text.strip() == turn.text and turn.text
        for s, e in turn_parts(turn):
            assert turn.char_start <= s < e <= turn.char_end
        if turn.parts:  # v1 readers give a podcast turn the line of its header instead
            assert turn.line == doc.text.count("\n", 0, turn.parts[0][0]) + 1


def contents(doc: Document) -> list[str]:
    return [turn_content(t) for t in doc.turns]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- every format


@pytest.mark.parametrize("name", GOOD)
def test_every_fixture_has_verbatim_offsets_and_clean_content(name: str) -> None:
    doc = read(name)
    assert doc.turns
    for text in contents(doc):
        assert text and not any(m in text for m in MARKUP), text


def test_vtt_voice_tags_settings_and_skipped_blocks() -> None:
    doc = read("voices.vtt")
    assert [t.speaker for t in doc.turns] == ["Alex Wang", "Maria Lopez", "Alex Wang", "Maria Lopez"]
    first = doc.turns[0]
    # Two cues of Alex merge: start of the first, end of the second; the multi-line cue gives two parts.
    assert (first.start, first.end, len(first.parts)) == (1.0, 8.25, 3)
    assert turn_content(first) == (
        "Welcome back to Soil and Cities. Today we talk about composting in small apartments. "
        "Our guest runs a worm farm on a balcony & teaches neighbours."
    )
    # The verbatim span runs from the first cue text to the last, so it holds the cue id and timing line.
    assert "intro-2\n00:00:04.500 --> 00:00:08.250 align:start" in first.text
    assert turn_content(doc.turns[1]).startswith("Thanks for having me. A worm bin needs shade, moisture and no citrus peels.")
    everything = " ".join(contents(doc))
    for skipped in ("exported from the editor", "::cue", "width:40%", "intro-1", "Kind", "checked with her", "position"):
        assert skipped not in everything
    assert (doc.turns[3].start, doc.turns[3].end) == (20.5, 24.0)


def test_vtt_youtube_rolling_cues_are_read_once() -> None:
    doc = read("rolling.vtt")
    assert [t.speaker for t in doc.turns] == [None, None]
    assert contents(doc) == [
        "hey everyone welcome back to the bike repair channel today we fix a flat tire",
        "first take the wheel off then open the quick release lever",
    ]
    # The plain repeat of each line is cited, not the copy with word-timing tags.
    for turn in doc.turns:
        assert all("<" not in doc.text[s:e] for s, e in turn.parts)
    # Split at the 2.8 s pause; each turn keeps the time its first line was spoken.
    assert [(t.start, t.end) for t in doc.turns] == [(0.03, 7.2), (10.0, 15.0)]


def test_vtt_rolling_lines_without_timing_tags(tmp_path: Path) -> None:
    text = (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nthe river rose\n\n"
        "00:00:02.000 --> 00:00:03.000\nthe river rose\nover the old bridge\n\n"
        "00:00:03.000 --> 00:00:04.000\nover the old bridge\nlast night\n"
    )
    doc = read_document(write(tmp_path, "roll.vtt", text))
    check_offsets(doc)
    assert " ".join(contents(doc)) == "the river rose over the old bridge last night"
    assert sum(len(t.parts) for t in doc.turns) == 3


WORDS = st.lists(st.sampled_from("red green blue river stone bridge night owl".split()), min_size=1, max_size=4).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(WORDS, min_size=1, max_size=12), tagged=st.lists(st.booleans(), min_size=12, max_size=12), plain=st.lists(st.booleans(), min_size=12, max_size=12))
def test_rolling_captions_read_every_line_once(tmp_path_factory: pytest.TempPathFactory, lines: list[str], tagged: list[bool], plain: list[bool]) -> None:
    lines = [line for n, line in enumerate(lines) if n == 0 or line != lines[n - 1]]  # a line said twice in a row is read once
    blocks, t = ["WEBVTT\n"], 0
    for n, line in enumerate(lines):
        shown = line.replace(" ", "<00:00:00.500><c> ", 1) + "</c>" if tagged[n] and " " in line else line
        blocks.append(f"00:00:{t:02d}.000 --> 00:00:{t + 1:02d}.000 align:start position:0%\n{lines[n - 1] if n else ' '}\n{shown}\n")
        if plain[n]:  # YouTube's 10 ms cue that repeats the line without tags
            blocks.append(f"00:00:{t + 1:02d}.000 --> 00:00:{t + 1:02d}.010\n{line}\n \n")
        t += 2
    doc = read_document(write(tmp_path_factory.mktemp("roll"), "r.vtt", "\n".join(blocks)))
    check_offsets(doc)
    assert " ".join(contents(doc)) == " ".join(lines)
    assert sum(len(t.parts) for t in doc.turns) == len(lines)
    assert all(e <= s for t in doc.turns for (_, e), (s, _) in zip(t.parts, t.parts[1:]))  # parts in file order


def test_vtt_repeated_line_from_another_speaker_is_kept(tmp_path: Path) -> None:
    text = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\n<v Ann>Yes.\n\n00:00:02.000 --> 00:00:03.000\n<v Bob>Yes.\n"
    doc = read_document(write(tmp_path, "yes.vtt", text))
    check_offsets(doc)
    assert [(t.speaker, turn_content(t)) for t in doc.turns] == [("Ann", "Yes."), ("Bob", "Yes.")]


def test_vtt_zoom_style_name_prefixes_and_crlf_bom(tmp_path: Path) -> None:
    text = (
        "WEBVTT\r\n\r\n1\r\n00:00:00.000 --> 00:00:04.000\r\nLena Ortiz: The pool opens at six.\r\n\r\n"
        "2\r\n00:00:04.000 --> 00:00:06.000\r\nSam Reid: Even on Sundays?\r\n\r\n"
        "3\r\n00:00:06.000 --> 00:00:08.000\r\nLena Ortiz: Yes, from May.\r\n"
    )
    path = tmp_path / "zoom.vtt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    doc = read_document(path)
    check_offsets(doc)
    assert [(t.speaker, turn_content(t)) for t in doc.turns] == [
        ("Lena Ortiz", "The pool opens at six."),
        ("Sam Reid", "Even on Sundays?"),
        ("Lena Ortiz", "Yes, from May."),
    ]


def test_srt_name_prefixes_merge_same_speaker() -> None:
    doc = read("labels.srt")
    assert [t.speaker for t in doc.turns] == ["Priya Shah", "Tom Baker", "Priya Shah", "Tom Baker"]
    first = doc.turns[0]
    # Cue 2 has no prefix: the current speaker carries on, so cues 1-2 are one turn.
    assert (first.start, first.end) == (0.5, 6.0)
    assert turn_content(first) == "Our city added forty kilometres of protected bike lanes last year. Collisions at those junctions fell by a third."
    assert turn_content(doc.turns[2]) == "No. Sales went up, because people on bikes stop more often."
    assert not any("Priya Shah:" in text for text in contents(doc))


def test_srt_bracket_labels_mapped_by_sidecar() -> None:
    doc = read("diarized.srt")
    assert [t.speaker for t in doc.turns] == ["Grace Kim", "Omar Haddad", "Grace Kim"]
    assert doc.speaker_map == {"SPEAKER_00": "Grace Kim", "SPEAKER_01": "Omar Haddad"}
    assert (doc.title, doc.date, doc.url) == ("Library board meeting", "2024-03-02", "https://example.org/library/board-2024-03")
    assert (doc.turns[0].start, doc.turns[0].end) == (1.0, 7.5)
    # Both `[SPEAKER_00]:` and `[SPEAKER_00]` (no colon) are labels, and neither is indexed as text.
    assert turn_content(doc.turns[0]) == "Let's start with the budget for the new library. The roof repair alone costs two hundred thousand."


def test_srt_bracket_labels_without_mapping(tmp_path: Path) -> None:
    path = tmp_path / "meeting.srt"
    shutil.copy(FIXTURES / "diarized.srt", path)
    doc = read_document(path)
    assert [t.speaker for t in doc.turns] == ["SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    assert doc.speaker_map == {}


def test_srt_without_labels_splits_at_sentence_ends_and_pauses() -> None:
    doc = read("plain.srt")
    assert [t.speaker for t in doc.turns] == [None, None, None]
    assert contents(doc) == [
        "Sourdough needs a lively starter and a long, cold proof in the fridge.",  # ends at the full stop
        "Feed the starter twice a day",  # ends at the 3 s pause
        "then bake at two hundred and fifty degrees",
    ]
    assert [(t.start, t.end) for t in doc.turns] == [(0.0, 5.0), (5.0, 7.0), (10.0, 12.0)]


def test_unlabeled_turns_are_capped_when_nothing_else_splits(tmp_path: Path) -> None:
    cues = "".join(f"{i}\n00:00:{i:02d},000 --> 00:00:{i + 1:02d},000\nword{i} and some more words here\n\n" for i in range(1, 41))
    doc = read_document(write(tmp_path, "long.srt", cues))
    check_offsets(doc)
    assert len(doc.turns) > 1
    assert all(len(turn_content(t).split()) <= MAX_UNLABELED_WORDS for t in doc.turns)
    assert " ".join(contents(doc)).split().count("and") == 40


def test_single_colon_line_and_sound_tags_are_not_speakers(tmp_path: Path) -> None:
    text = (
        "1\n00:00:01,000 --> 00:00:02,000\nNote: the bridge is closed.\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\n[Music] la la la.\n\n"
        "3\n00:00:03,000 --> 00:00:04,000\n[Music] la la la again.\n"
    )
    doc = read_document(write(tmp_path, "notes.srt", text))
    check_offsets(doc)
    assert all(t.speaker is None for t in doc.turns)
    assert contents(doc)[0] == "Note: the bridge is closed."


def test_whisperx_segments() -> None:
    doc = read("whisperx.json")
    assert doc.format == "whisper"
    assert [t.speaker for t in doc.turns] == ["SPEAKER_00", "SPEAKER_01", None, "SPEAKER_00"]
    assert [(t.start, t.end) for t in doc.turns] == [(0.031, 8.25), (8.6, 14.0), (14.2, 15.0), (15.5, 19.75)]
    assert contents(doc)[1] == 'Yes. She said "the fish market stays" and the council didn’t object.'
    yes, escaped = doc.turns[1].parts
    # "Yes." also occurs among the first segment's words; the offsets are those of segments[2].text.
    assert doc.text[yes[0] - 10 : yes[1]] == '"text": " Yes.'
    # A value with escapes is cited as its raw JSON literal, quotes included.
    assert doc.text[slice(*escaped)] == '" She said \\"the fish market stays\\" and the council didn\\u2019t object."'
    assert json.loads(doc.text[slice(*escaped)]) == ' She said "the fish market stays" and the council didn’t object.'


def test_faster_whisper_segments_without_speakers() -> None:
    doc = read("faster_whisper.json")
    assert [t.speaker for t in doc.turns] == [None, None, None]
    assert contents(doc) == [
        "Beekeeping starts with a calm colony and a smoker that stays lit.",
        "Check the brood frames every week in spring.",
        "Harvest honey only from capped frames",  # after a 4 s pause; the empty last segment is dropped
    ]


def test_plain_json_turn_list() -> None:
    doc = read("turns.json")
    assert doc.format == "turn-list"
    assert [(t.speaker, t.start, t.end) for t in doc.turns] == [("Nadia", 0.0, 9.0), ("Ben", None, None), ("Nadia", None, None)]
    assert contents(doc)[0] == "The glacier lost eleven metres of thickness since 2010. Most of that melt happened in the last four summers."


def test_empty_subtitle_files_are_skipped_by_the_corpus(tmp_path: Path) -> None:
    write(tmp_path, "empty.vtt", "")
    write(tmp_path, "empty.srt", "\n\n")
    write(tmp_path, "header_only.vtt", "WEBVTT\n\nNOTE nothing yet\n")
    write(tmp_path, "no_segments.json", '{"segments": []}')
    shutil.copy(FIXTURES / "labels.srt", tmp_path / "labels.srt")
    skipped: list[str] = []
    docs = read_corpus(tmp_path, on_skip=skipped.append)
    assert [d.source for d in docs] == ["labels.srt"]
    assert len(skipped) == 4


# ---------------------------------------------------------------- malformed files

MALFORMED = [
    ("bad_timestamp.srt", 14, "bad timestamp '00:00:xx,000 --> 00:00:10,000'; expected HH:MM:SS,mmm --> HH:MM:SS,mmm"),
    ("no_timing.srt", 5, "cue 2 has no timing line"),
    ("blank_in_cue.srt", 5, "expected a cue number or a timing line"),
    ("bad_timestamp.vtt", 6, "bad timestamp '00:00:03.000 --> 00:00:0x.000 align:start'"),
    ("stray_text.vtt", 6, "text outside a cue"),
    ("segment_without_text.json", 4, "segments[1] has no 'text' string"),
    ("segments_not_list.json", 3, "'segments' must be a list"),
    ("bad_start.json", 3, "segments[1].start is 'soon'; expected a number of seconds"),
    ("item_not_object.json", 3, "item [1] is not an object"),
    ("item_without_text.json", 3, "item [1] has no 'text' or 'content' string"),
]


@pytest.mark.parametrize(("name", "line", "message"), MALFORMED)
def test_malformed_files_name_file_and_line(name: str, line: int, message: str) -> None:
    path = FIXTURES / "malformed" / name
    with pytest.raises(TranscriptError) as info:
        read_document(path)
    text = str(info.value)
    assert text.startswith(f"{path} line {line}: "), text
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(("name", "note", "times"), [
    ("backwards.vtt", "line 3: cue ends (3.000 s) before it starts (5.000 s); end set to its start", (5.0, 5.0)),
    ("no_header.vtt", "line 1: no 'WEBVTT' header; read as WebVTT cues anyway", (1.0, 3.0)),
])
def test_repairable_defects_are_repaired_and_noted(name: str, note: str, times: tuple[float, float]) -> None:
    doc = read_document(FIXTURES / "malformed" / name)
    assert doc.notes == (note,)
    assert (doc.turns[0].start, doc.turns[0].end) == times


def test_broken_json_syntax_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "cut.json", '{"segments": [\n  {"start": 0, "text": "hi"},\n  {"start": 1, "text": "cut off')
    with pytest.raises(TranscriptError, match=r"cut\.json.*line 3"):
        read_document(path)


# ---------------------------------------------------------------- speaker names


def test_corpus_speakers_file_applies_and_is_not_a_source(tmp_path: Path) -> None:
    (tmp_path / "show").mkdir()
    shutil.copy(FIXTURES / "whisperx.json", tmp_path / "show" / "ep1.json")
    write(tmp_path, "chat.txt", "SPEAKER_01: Hello there.\nSPEAKER_01: Still me.\nAnn: Hi.\n")
    write(tmp_path, "speakers.json", json.dumps({"SPEAKER_00": "Alex Wang", "speaker_01": "Lucy Guo", "SPEAKER_09": "Nobody"}))
    docs = {d.source: d for d in read_corpus(tmp_path)}
    assert sorted(docs) == ["chat.txt", "show/ep1.json"]
    assert [t.speaker for t in docs["show/ep1.json"].turns] == ["Alex Wang", "Lucy Guo", None, "Alex Wang"]
    # Only the entries used by a source are recorded for it (matched case-insensitively).
    assert docs["show/ep1.json"].speaker_map == {"SPEAKER_00": "Alex Wang", "SPEAKER_01": "Lucy Guo"}
    assert [t.speaker for t in docs["chat.txt"].turns] == ["Lucy Guo", "Lucy Guo", "Ann"]


def test_sidecar_speakers_override_corpus_and_nearest_file_wins(tmp_path: Path) -> None:
    sub = tmp_path / "board"
    sub.mkdir()
    shutil.copy(FIXTURES / "diarized.srt", sub / "march.srt")
    write(sub, "march.json", json.dumps({"title": "March", "speakers": {"SPEAKER_01": "Omar H."}}))
    write(sub, "speakers.json", json.dumps({"SPEAKER_00": "Grace K.", "SPEAKER_01": "Someone Else"}))
    write(tmp_path, "speakers.json", json.dumps({"SPEAKER_00": "Root Name"}))
    (doc,) = read_corpus(tmp_path)
    assert doc.title == "March"
    assert [t.speaker for t in doc.turns] == ["Grace K.", "Omar H.", "Grace K."]
    # A file read on its own uses the speakers.json in its folder.
    assert read_document(sub / "march.srt").speaker_map == {"SPEAKER_00": "Grace K.", "SPEAKER_01": "Omar H."}


@pytest.mark.parametrize("content", ['["SPEAKER_00", "Alex"]', '{"SPEAKER_00": 3}', '{"SPEAKER_00": "Alex"'])
def test_bad_speakers_file_is_a_clear_error(tmp_path: Path, content: str) -> None:
    shutil.copy(FIXTURES / "labels.srt", tmp_path / "labels.srt")
    write(tmp_path, "speakers.json", content)
    with pytest.raises(RagkitError, match=r"speakers\.json.*(map diarization labels|invalid JSON)"):
        read_corpus(tmp_path)


def test_speaker_map_survives_index_save_and_load(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("diarized.srt", "diarized.meta.json"):
        shutil.copy(FIXTURES / name, corpus / name)
    index = ragkit.Index.build(read_corpus(corpus), embedder="hash:256")
    index.save(tmp_path / "idx")
    loaded = ragkit.Index.load(tmp_path / "idx")
    assert loaded.documents["diarized.srt"].speaker_map == {"SPEAKER_00": "Grace Kim", "SPEAKER_01": "Omar Haddad"}
    assert loaded.chunks[0].speakers == ("Grace Kim", "Omar Haddad")


# ---------------------------------------------------------------- helpers


def test_clean_text() -> None:
    assert clean_text("hey<00:00:00.539><c> guys</c><c.colorE5E5E5> back</c>") == "hey guys back"
    assert clean_text("<i>Tom &amp; Jerry</i>  &lt;3 {\\an8}") == "Tom & Jerry <3"
    assert clean_text('" said \\"hi\\" \\u2019"') == 'said "hi" ’'
    assert clean_text("x < y and y > z") == "x < y and y > z"  # not a tag
    assert clean_text("R&D &notation") == "R&D &notation"  # entities need their semicolon


def test_turn_content_of_a_range_and_of_plain_turns() -> None:
    source = "00:00 --> 00:01\n<i>one</i>\n\n00:01 --> 00:02\ntwo &amp; three"
    a, b = source.index("<i>"), source.index("two")
    turn = Turn(None, source[a:], 0.0, None, a, len(source), 2, 2.0, ((a, a + 10), (b, len(source))))
    assert turn_content(turn) == "one two & three"
    assert turn_content(turn, b, b + 3) == "two"
    prose = Turn("Ann", "Some   text\nhere", None, None, 5, 21, 1)
    assert turn_content(prose) == "Some text here"
    assert turn_parts(prose) == [(5, 21)]


def test_span_times_locate_a_quote_inside_a_merged_turn() -> None:
    rolling = read("rolling.vtt").turns[0]
    s, e = turn_parts(rolling)[2]
    assert rolling.text[s - rolling.char_start : e - rolling.char_start] == "today we fix a flat tire"
    assert span_times(rolling, s, e) == (4.57, 7.2)  # the cue where the line was first spoken
    assert span_times(rolling, rolling.char_start, rolling.char_end) == (0.03, 7.2)
    harbour = read("whisperx.json").turns[0]
    (_, _), (s2, e2) = turn_parts(harbour)
    assert span_times(harbour, s2 + 4, e2) == (4.0, 8.25)
    prose = Turn("Ann", "text", 12.0, None, 0, 4, 1, 20.0)
    assert span_times(prose, 0, 2) == (12.0, 20.0)


def test_prefix_labels() -> None:
    assert prefix_label("[SPEAKER_00]: hello") == ("SPEAKER_00", 14)
    assert prefix_label("- Dr. Jane Doe: hi") == ("Dr. Jane Doe", 16)
    assert prefix_label("but here: no") is None
    assert prefix_label("See http://x.org") is None
    assert prefix_label("10:30 is late") is None
    found = ["SPEAKER_01", "Note", "Bob", "Bob", "Music", "Music", "MUSIC PLAYING", "MUSIC PLAYING"]
    assert accepted_labels(found, cues=40) == {"SPEAKER_01", "Bob"}
    # When most cues are labeled, a name that speaks once is a speaker too.
    assert accepted_labels(found, cues=8) == {"SPEAKER_01", "Note", "Bob"}


# ---------------------------------------------------------------- a mixed corpus end to end


def mixed_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "mixed"
    folder.mkdir()
    seeds = Path(__file__).resolve().parents[2] / "seeds"
    for path in seeds.iterdir():
        shutil.copy(path, folder / path.name)
    shutil.copy(Path("/work/shared/datasets/qmsum/test/Bed003.json"), folder / "Bed003.json")
    for name in [*GOOD, "diarized.meta.json"]:
        shutil.copy(FIXTURES / name, folder / name)
    write(folder, "speakers.json", json.dumps({"SPEAKER_00": "Harbour Master", "SPEAKER_01": "Ines Silva"}))
    return folder


@pytest.mark.integration
def test_mixed_folder_reads_builds_saves_loads_and_searches(tmp_path: Path) -> None:
    docs = ragkit.read_corpus(mixed_corpus(tmp_path))
    formats = {d.source: d.format for d in docs}
    assert formats["Bed003.json"] == "qmsum"
    assert formats["whisperx.json"] == "whisper" and formats["turns.json"] == "turn-list"
    assert {".vtt", ".srt", "podcast", "prose"} <= set(formats.values())
    assert len(docs) == len(GOOD) + 3
    for doc in docs:
        check_offsets(doc)
    by_source = {d.source: d for d in docs}
    # The sidecar mapping of diarized.srt overrides the corpus-wide one for the same labels.
    assert by_source["diarized.srt"].speaker_map == {"SPEAKER_00": "Grace Kim", "SPEAKER_01": "Omar Haddad"}
    assert by_source["whisperx.json"].speaker_map == {"SPEAKER_00": "Harbour Master", "SPEAKER_01": "Ines Silva"}

    ragkit.Index.build(docs, embedder="hash:256").save(tmp_path / "index")
    index = ragkit.Index.load(tmp_path / "index")
    cases = {
        "worm bin citrus peels red wigglers": ("voices.vtt", "Maria Lopez", 1.0),
        "dredging the channel salmon run": ("whisperx.json", "Harbour Master", 0.031),
        "roof repair library budget": ("diarized.srt", "Grace Kim", 1.0),
        "protected bike lanes collisions junctions": ("labels.srt", "Priya Shah", 0.5),
    }
    for query, (source, speaker, start) in cases.items():
        hits = index.search(query, k=3)
        top = hits[0].chunk
        assert (top.source, top.start) == (source, start), (query, top)
        assert speaker in top.speakers and top.end is not None and top.end > top.start
    hits = index.search("flat tire quick release lever", k=5, source="rolling.vtt")
    assert hits and hits[0].chunk.speakers == () and hits[0].chunk.start == 0.03


@pytest.mark.integration
def test_real_model_finds_subtitle_passages(tmp_path: Path) -> None:
    corpus = tmp_path / "subs"
    corpus.mkdir()
    for name in [*GOOD, "diarized.meta.json"]:
        shutil.copy(FIXTURES / name, corpus / name)
    index = ragkit.Index.build(ragkit.read_corpus(corpus))
    hit = index.search("How do I keep worms for composting at home?", k=1)[0]
    assert hit.chunk.source == "voices.vtt" and "Maria Lopez" in hit.chunk.speakers
    hit = index.search("When will the boats dock somewhere else?", k=1)[0]
    assert hit.chunk.source == "whisperx.json" and hit.chunk.start == 0.031
