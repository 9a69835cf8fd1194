"""Citations you can jump to: times on hits and citations for every format, deep links, mapped speakers (issue 8)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import PODCAST, QMSUM_TEST, SEEDS

import ragkit
from ragkit.chunking import ChunkSettings
from ragkit.cli import main
from ragkit.datatypes import format_time
from ragkit.errors import UsageError
from ragkit.readers.subtitles import clean_text
from ragkit.search.deep_links import PLACEHOLDERS, check_template, default_link, link_for, with_links

FORMATS = Path(__file__).parents[1] / "fixtures" / "formats"
SMALL = ChunkSettings(max_tokens=16, tokenizer="words")  # long subtitle turns split into pieces with their own cues
BOARD_URL = "https://example.org/library/board-2024-03"  # diarized.meta.json


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def copy_formats(folder: Path) -> Path:
    """The well-formed format fixtures (and their sidecars) plus the podcast transcript, in one folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in FORMATS.glob("*.*"):
        shutil.copy(path, folder / path.name)
    (folder / "episode.txt").write_text(PODCAST, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def formats_index(tmp_path_factory: pytest.TempPathFactory) -> ragkit.Index:
    folder = copy_formats(tmp_path_factory.mktemp("formats") / "corpus")
    return ragkit.Index.build(ragkit.read_corpus(folder), embedder="hash:256", settings=SMALL)


# ------------------------------------------------------------------ times


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0:00:00"), (5.9, "0:00:05"), (114, "0:01:54"), (754.99, "0:12:34"), (3599.5, "0:59:59"), (3723, "1:02:03"), (36001, "10:00:01"), (None, "")],
)
def test_format_time_is_h_mm_ss(seconds: float | None, shown: str) -> None:
    assert format_time(seconds) == shown


# (source, words of the passage, start, end): times read off the fixture files by hand.
CHUNK_TIMES = [
    ("voices.vtt", "Red wigglers eat", 13.0, 16.4),  # second cue of a split two-cue turn, not the turn's 9.0
    ("voices.vtt", "Thanks for having me", 9.0, 13.0),
    ("voices.vtt", "How long until", 17.0, 20.0),
    ("labels.srt", "Collisions at those junctions", 3.2, 6.0),
    ("labels.srt", "Did the shops", 6.4, 9.0),
    ("diarized.srt", "roof repair alone", 4.0, 7.5),
    ("whisperx.json", "ferry terminal", 4.0, 8.25),
    ("whisperx.json", "Dredging the channel", 15.5, 19.75),
    ("faster_whisper.json", "Beekeeping starts", 0.0, 6.0),
    ("rolling.vtt", "first take the wheel off", 10.0, 15.0),
    ("plain.srt", "Sourdough needs", 0.0, 5.0),
    ("turns.json", "How do you measure", None, None),  # a turn list without times
    ("episode.txt", "Red wigglers eat", 130.0, 3723.0),  # podcast: until the next turn starts
    ("episode.txt", "What goes into a worm bin", 90.0, 101.0),
]


@pytest.mark.parametrize(("source", "words", "start", "end"), CHUNK_TIMES)
def test_hits_carry_start_and_end_of_their_own_cues(
    formats_index: ragkit.Index, source: str, words: str, start: float | None, end: float | None
) -> None:
    [chunk] = [c for c in formats_index.chunks if c.source == source and words in c.text]
    assert (chunk.start, chunk.end) == (start, end)
    hit = next(h for h in formats_index.search(chunk.text, k=len(formats_index)) if h.chunk.id == chunk.id)
    assert (hit.chunk.start, hit.chunk.end) == (start, end)


# (exact sentence asked, speaker, start, end) of the citation that quotes it.
CITATION_TIMES = [
    ("Red wigglers eat about half their weight every day.", "Maria Lopez", 13.0, 16.4),
    ("Collisions at those junctions fell by a third.", "Priya Shah", 3.2, 6.0),
    ("The roof repair alone costs two hundred thousand.", "Grace Kim", 4.0, 7.5),  # mapped by diarized.meta.json
    ("The ferry terminal moves to the north pier in June.", "SPEAKER_00", 4.0, 8.25),
    ("Check the brood frames every week in spring.", None, 6.1, 9.0),
    ("With ground radar, dragged on a sled across the ice.", "Nadia", None, None),
    ("Citrus peels are fine in small amounts.", "Raj Patel", 101.0, 130.0),  # podcast text: ends when the next turn starts (02:10)
]


@pytest.mark.parametrize(("sentence", "speaker", "start", "end"), CITATION_TIMES)
def test_citations_carry_speaker_start_and_end(
    formats_index: ragkit.Index, sentence: str, speaker: str | None, start: float | None, end: float | None
) -> None:
    answer = ragkit.ask(formats_index, sentence, k=3)
    [cited] = [c for c in answer.citations if clean_text(c.quote) == sentence]  # quotes are verbatim, cue tags and all
    assert (cited.speaker, cited.start, cited.end) == (speaker, start, end)
    assert formats_index.documents[cited.source].text[cited.char_start : cited.char_end] == cited.quote


# ------------------------------------------------------------------ link templates


def test_default_link_from_the_source_url() -> None:
    assert default_link("https://example.org/ep12", 754.9) == "https://example.org/ep12?t=754"
    assert default_link("https://youtube.com/watch?v=abc", 62.0) == "https://youtube.com/watch?v=abc&t=62"
    assert default_link("https://example.org/ep12#player", 7.0) == "https://example.org/ep12?t=7#player"
    assert default_link("https://example.org/ep12", None) == "https://example.org/ep12"
    assert link_for(None, "ep12.vtt", None, 754.0, 760.0) is None  # no url, no template: no link


def test_every_placeholder_is_filled() -> None:
    template = "|".join("{" + name + "}" for name in PLACEHOLDERS)
    link = link_for(template, "shows/Ep 12.vtt", "https://u.org/x?y=1", 754.5, 761.25)
    assert link == "https://u.org/x?y=1|shows/Ep%2012.vtt|Ep%2012|754.5|754|761.25|762"
    assert set(PLACEHOLDERS) >= {"url", "source", "source_stem", "start", "start_int", "end"}
    assert check_template(template) == tuple(PLACEHOLDERS)


def test_a_link_needing_a_missing_value_is_left_out() -> None:
    assert link_for("{url}?t={start_int}", "a.vtt", None, 5.0, 6.0) is None
    assert link_for("https://e.org/{source_stem}?t={start_int}", "a.vtt", None, None, None) is None
    assert link_for("https://e.org/{source_stem}", "a.vtt", None, None, None) == "https://e.org/a"
    assert link_for("https://e.org/{source}?t={start_int}", "dir/a.vtt", None, 0.0, 1.0) == "https://e.org/dir/a.vtt?t=0"


@pytest.mark.parametrize(
    ("template", "named"),
    [
        ("https://e.org/{stem}?t={start_int}", "{stem}"),
        ("https://e.org/{}", "{}"),
        ("https://e.org/{0}", "{0}"),
        ("{url.host}", "{url.host}"),
        ("{url}?t={start:.1f}", "{start:.1f}"),
        ("{url!r}", "{url!r}"),
        ("https://e.org/{", "Single '{'"),
        ("https://e.org/}", "Single '}'"),
    ],
)
def test_bad_templates_name_the_placeholder_and_list_valid_ones(template: str, named: str) -> None:
    with pytest.raises(UsageError) as exc:
        check_template(template)
    assert named in str(exc.value)
    if "Single" not in named:
        assert all("{" + name + "}" in str(exc.value) for name in PLACEHOLDERS)


def test_with_links_on_hits_and_answers(formats_index: ragkit.Index) -> None:
    hits = with_links(formats_index.search("library budget roof", k=len(formats_index)), None, formats_index.documents)
    by_source = {h.chunk.source: h for h in hits if h.chunk.start is not None}
    assert by_source["diarized.srt"].link == f"{BOARD_URL}?t={int(by_source['diarized.srt'].chunk.start)}"
    assert by_source["voices.vtt"].link is None  # no sidecar url, no template
    template = "https://e.org/{source_stem}?t={start_int}"
    for hit in with_links(hits, template, formats_index.documents):
        expected = None if hit.chunk.start is None else f"https://e.org/{Path(hit.chunk.source).stem}?t={int(hit.chunk.start)}"
        assert hit.link == expected
    answer = with_links(ragkit.ask(formats_index, "The roof repair alone costs two hundred thousand.", k=3), None, formats_index.documents)
    assert answer.citations[0].link == f"{BOARD_URL}?t=4"
    assert {h.chunk.id: h.link for h in answer.hits} == {h.chunk.id: h.link for h in with_links(answer.hits, None, formats_index.documents)}


# ------------------------------------------------------------------ CLI, hash embedder


@pytest.fixture()
def formats_cli_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "idx"
    code, _, err = run(["index", str(copy_formats(tmp_path / "corpus")), "-o", str(out), "-e", "hash:256", "--max-tokens", "24"], capsys)
    assert code == 0, err
    return out


def test_ask_prints_speaker_time_and_the_sidecar_deep_link(formats_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "The roof repair alone costs two hundred thousand.", "-i", str(formats_cli_index)], capsys)
    assert code == 0
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("  [1] "))
    assert lines[head] == "  [1] Library board meeting · Grace Kim · 0:00:04"
    assert lines[head + 1] == "      “The roof repair alone costs two hundred thousand.”"
    assert lines[head + 2] == f"      link: {BOARD_URL}?t=4"


def test_link_template_in_json_and_human_search(formats_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = "https://example.org/{source_stem}?t={start_int}"
    code, out, _ = run(["search", "red wigglers", "-i", str(formats_cli_index), "-k", "40", "--link-template", template, "--json"], capsys)
    hits = json.loads(out)["hits"]
    assert code == 0 and hits
    for hit in hits:
        start = hit["chunk"]["start"]
        assert hit["link"] == (None if start is None else f"https://example.org/{Path(hit['chunk']['source']).stem}?t={int(start)}")
    assert "https://example.org/voices?t=13" in {h["link"] for h in hits}  # the piece spoken at 0:00:13
    code, out, _ = run(["search", "Red wigglers eat about half their weight every day.", "-i", str(formats_cli_index), "-k", "1",
                        "--source", "voices*", "--link-template", template], capsys)
    assert code == 0 and out.startswith(" 1. [") and " · Maria Lopez · 0:00:13\n" in out
    assert re.search(r"\n   \(voices\.vtt#1-1\.\d+\)\n   link: https://example\.org/voices\?t=13$", out.rstrip()), out


def test_ask_json_has_seconds_and_links(formats_cli_index: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["ask", "Collisions at those junctions fell by a third.", "-i", str(formats_cli_index), "--json",
                        "--link-template", "https://e.org/{source}#t={start},{end}"], capsys)
    data = json.loads(out)
    cited = next(c for c in data["citations"] if c["source"] == "labels.srt")
    assert code == 0 and (cited["start"], cited["end"], cited["link"]) == (3.2, 6.0, "https://e.org/labels.srt#t=3.2,6")
    assert all("link" in h for h in data["hits"])


@pytest.mark.parametrize("command", ["search", "ask"])
def test_bad_link_template_is_a_usage_error_before_loading(tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-index-here"
    code, out, err = run([command, "tomatoes", "-i", str(missing), "--link-template", "https://e.org/{episode}?t={start_int}"], capsys)
    assert code == 2 and out == ""
    assert "unknown placeholder {episode}" in err and "{source_stem}" in err and "{start_int}" in err


# ------------------------------------------------------------------ speaker names survive save and load

PANEL_VTT = """\
WEBVTT

00:00:01.000 --> 00:00:04.000
<v SPEAKER_00>Welcome to the river restoration panel.

00:00:04.000 --> 00:00:07.500
<v SPEAKER_00>We start with the weir removal upstream.

00:00:08.000 --> 00:00:12.000
[SPEAKER_01]: Salmon returned within two seasons of removing the weir.

00:00:12.500 --> 00:00:15.000
[SPEAKER_01]: The gravel beds came back first.
"""
PANEL_NAMES = {"SPEAKER_00": "Ines Duarte", "SPEAKER_01": "Kofi Mensah"}


def test_mapped_speakers_and_cue_parts_survive_save_and_load(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "panel.vtt").write_text(PANEL_VTT, encoding="utf-8")
    shutil.copy(FORMATS / "voices.vtt", corpus / "voices.vtt")
    (corpus / "speakers.json").write_text(json.dumps({**PANEL_NAMES, "Maria Lopez": "Maria López"}), encoding="utf-8")
    built = ragkit.Index.build(ragkit.read_corpus(corpus), embedder="hash:256", settings=SMALL)
    built.save(tmp_path / "idx")
    loaded = ragkit.Index.load(tmp_path / "idx")

    sources = {s["path"]: s for s in loaded.source_entries()}
    assert sources["panel.vtt"]["speakers"] == PANEL_NAMES
    assert sources["voices.vtt"]["speakers"] == {"Maria Lopez": "Maria López"}
    for source in ("panel.vtt", "voices.vtt"):
        turns = loaded.documents[source].turns
        assert turns == built.documents[source].turns
        assert all(len(t.parts) == len(t.part_times) >= 1 for t in turns)
    panel = loaded.documents["panel.vtt"].turns
    assert [(t.speaker, t.part_times) for t in panel] == [
        ("Ines Duarte", ((1.0, 4.0), (4.0, 7.5))),
        ("Kofi Mensah", ((8.0, 12.0), (12.5, 15.0))),
    ]
    hits = loaded.search("salmon returned weir", k=len(loaded))
    names = {name for h in hits for name in h.chunk.speakers}
    assert {"Ines Duarte", "Kofi Mensah", "Maria López"} <= names and not any("SPEAKER" in n for n in names)
    answer = ragkit.ask(loaded, "The gravel beds came back first.", k=3)
    cited = next(c for c in answer.citations if c.quote == "The gravel beds came back first.")
    assert (cited.speaker, cited.start, cited.end) == ("Kofi Mensah", 12.5, 15.0)  # its own cue, after loading


# ------------------------------------------------------------------ done when: every format in one folder, real model


@pytest.mark.integration
def test_mixed_folder_indexes_in_one_run_and_asks_with_speakers_times_and_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in SEEDS.iterdir():
        shutil.copy(path, corpus / path.name)
    shutil.copy(QMSUM_TEST / "Bed003.json", corpus / "Bed003.json")
    for path in FORMATS.glob("*.*"):
        shutil.copy(path, corpus / path.name)
    # Corpus-wide names for whisperx.json; diarized.srt's own sidecar overrides them.
    (corpus / "speakers.json").write_text(json.dumps({"SPEAKER_00": "Lena Fischer", "SPEAKER_01": "Jonas Berg"}), encoding="utf-8")
    index = tmp_path / "idx"

    code, out, err = run(["index", str(corpus), "-o", str(index)], capsys)
    assert code == 0, err
    loaded = ragkit.Index.load(index)
    formats = {d.format for d in loaded.documents.values()}
    assert formats >= {"podcast", "prose", "qmsum", ".vtt", ".srt", "whisper", "turn-list"}, formats
    assert len(loaded.documents) == 17  # sidecars and speakers.json are not sources

    expected = [  # (question, a Sources line it must print, the link after that citation or None)
        ("How much does the roof repair cost?", "Library board meeting · Grace Kim · 0:00:04", f"{BOARD_URL}?t=4"),
        ("Where does the ferry terminal move?", "whisperx · Lena Fischer · 0:00:04", None),
        ("What do red wigglers eat?", "voices · Maria Lopez · 0:00:13", None),
        ("Did the shops on Mill Road lose customers?", "labels · Priya Shah · 0:00:09", None),
        ("Why is data the bottleneck?", "Alexandr Wang · 0:01:54", "https://www.accel.com/spotlighton/scale-alexandr-wang?t=114"),
    ]
    for question, where, link in expected:
        code, out, err = run(["ask", question, "-i", str(index)], capsys)
        assert code == 0, err
        lines = out.splitlines()
        heads = [i for i, line in enumerate(lines) if re.match(r"  \[\d+\] ", line) and line.endswith(where)]
        assert heads, f"{question!r}: no citation '{where}' in\n{out}"
        nxt = next((i for i in range(heads[0] + 1, len(lines)) if re.match(r"  \[\d+\] ", lines[i])), len(lines))
        after = lines[heads[0] + 1 : nxt]  # this citation's quote and link, up to the next citation
        if link:
            assert f"      link: {link}" in after, out

    # A link template for every source with times, and context around the cited cue.
    template = "https://example.org/{source_stem}?t={start_int}"
    code, out, err = run(["ask", "What do red wigglers eat?", "-i", str(index), "--link-template", template, "--context", "1"], capsys)
    assert code == 0, err
    assert "      link: https://example.org/voices?t=13" in out
    block = out[out.index("  [1] voices · Maria Lopez · 0:00:13") :]
    before, quote, after = (block.index(s) for s in ("      |  Alex Wang · 0:00:01", "      >> “Red wigglers eat", "      |  Alex Wang · 0:00:17"))
    assert before < quote < after  # the turns around the quoted cue's turn, the quote marked
    code, out, err = run(["ask", "What do red wigglers eat?", "-i", str(index), "--json"], capsys)
    cited = next(c for c in json.loads(out)["citations"] if c["source"] == "voices.vtt")
    assert (cited["speaker"], cited["start"], cited["end"]) == ("Maria Lopez", 13.0, 16.4)
