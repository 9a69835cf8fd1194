"""Real transcript exports (tests/fixtures/real, origins in ORIGIN.md) read with every speaker and start time."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from conftest import assert_offsets

from ragkit.readers.corpus import read_document
from ragkit.readers.subtitles import turn_content

ROOT = Path(__file__).parents[2]
REAL = ROOT / "tests" / "fixtures" / "real"
FORMATS = ROOT / "tests" / "fixtures" / "formats"


def _formats_eval():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("formats_eval", ROOT / "eval" / "formats.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_format_reads_every_speaker_and_start_time() -> None:
    # The expected turns come from eval/formats.py's own small parsers, not from ragkit's readers.
    rows = _formats_eval().measure()
    assert len(rows) >= 7 and sum(r["files"] for r in rows) >= 20
    for row in rows:
        assert row["turns"] > 0, row
        assert row["matched"] == row["turns"] and not row["mismatched_files"], row


@pytest.mark.parametrize("path", sorted(p for p in REAL.iterdir() if p.name != "ORIGIN.md"), ids=lambda p: p.name)
def test_real_files_keep_verbatim_offsets(path: Path) -> None:
    doc = read_document(path)
    assert doc.format not in ("prose", "chat"), doc.format
    if not any(t.parts for t in doc.turns):
        assert_offsets(doc)
    for turn in doc.turns:
        assert doc.text[turn.char_start : turn.char_end] == turn.text


@pytest.mark.parametrize(("fixture", "suffix", "expected"), [
    ("descript_workingcode_049.md", ".txt", "timestamped"),
    ("otter_ladybug_nextjs.txt", ".md", "otter"),
    ("podscript_oxide_kid.txt", ".md", "bracketed"),
    ("bold_gotime_100.md", ".txt", "bold-names"),
    ("sonix_student_interview.txt", ".md", "sonix"),
])
def test_format_is_found_by_content_whatever_the_suffix(tmp_path: Path, fixture: str, suffix: str, expected: str) -> None:
    copy = tmp_path / (Path(fixture).stem + suffix)
    shutil.copy(REAL / fixture, copy)
    assert read_document(copy).format == expected


def test_subtitles_and_json_in_a_txt_file_are_read_as_what_they_are(tmp_path: Path) -> None:
    for source, name, fmt in (("zoom.vtt", "zoom.txt", ".vtt"), ("labels.srt", "labels.txt", ".srt"), ("whisperx.json", "w.txt", "whisper")):
        shutil.copy(FORMATS / source, tmp_path / name)
        doc = read_document(tmp_path / name)
        assert doc.format == fmt and any(t.speaker for t in doc.turns), name


def test_descript_continuation_line_keeps_the_speaker_at_a_new_time(tmp_path: Path) -> None:
    path = tmp_path / "ep.md"
    path.write_text("[00:00:23] **David Laid:** That's interesting.\n\n[00:00:30] just what I do every morning.\n\n"
                    "[00:00:41] **Ana Ruiz:** Tell me more.\n", encoding="utf-8")
    doc = read_document(path)
    assert [(t.speaker, t.start, t.text) for t in doc.turns] == [
        ("David Laid", 23.0, "That's interesting."), ("David Laid", 30.0, "just what I do every morning."), ("Ana Ruiz", 41.0, "Tell me more."),
    ]


@pytest.mark.parametrize("line", ["[00:00:23] David Laid: That's interesting.", "[00:23] David Laid: That's interesting.",
                                  "(00:00:23) David Laid: That's interesting."])
def test_sonix_temi_variants_read_speaker_and_time(tmp_path: Path, line: str) -> None:
    path = tmp_path / "t.txt"
    path.write_text(f"{line}\n{line.replace('David Laid', 'Mo Chen').replace('23', '29')}\n", encoding="utf-8")
    doc = read_document(path)
    assert [(t.speaker, t.start) for t in doc.turns] == [("David Laid", 23.0), ("Mo Chen", 29.0)]


def test_otter_hour_headers_and_multi_paragraph_turns(tmp_path: Path) -> None:
    path = tmp_path / "o.txt"
    path.write_text("Speaker Name  59:58\nFirst paragraph.\n\nSecond paragraph of the same turn.\n\nAna Ruiz  1:02:03\nLater.\n", encoding="utf-8")
    doc = read_document(path)
    assert [(t.speaker, t.start) for t in doc.turns] == [("Speaker Name", 3598.0), ("Ana Ruiz", 3723.0)]
    assert doc.turns[0].text == "First paragraph.\n\nSecond paragraph of the same turn."


def test_zoom_tags_and_unnamed_cues_continue_the_last_named_speaker() -> None:
    doc = read_document(FORMATS / "zoom.vtt")
    assert [t.speaker for t in doc.turns] == ["Ashlee Kupor (SL)", "Dora Demszky", "Ashlee Kupor (SL)", "Jing Liu", "Ashlee Kupor (SL)"]
    assert turn_content(doc.turns[1]) == "by, too. and then we can go through the first transcript together."


def test_aws_word_items_become_turns_with_punctuation_attached() -> None:
    doc = read_document(REAL / "aws_transcribe_diarization.json")
    assert [(t.speaker, t.start, t.end, turn_content(t)) for t in doc.turns] == [
        ("spk_0", 4.87, 6.88, "I've been on hold for an hour."), ("spk_1", 8.49, 9.24, "Sorry about that."),
    ]


def test_whisper_segments_wrapped_in_an_outer_object(tmp_path: Path) -> None:
    for name in ("wrapped_output.json", "wrapped_result.json", "whisper_cpp.json"):
        doc = read_document(FORMATS / name)
        assert doc.format == "whisper" and doc.turns[0].start == 0.0 and doc.turns[-1].end == 10.6, name
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"output": {"words": []}}), encoding="utf-8")
    with pytest.raises(Exception, match=r"odd\.json: unrecognized JSON transcript"):
        read_document(odd)


def test_transcription_service_footers_are_not_the_last_speakers_words(tmp_path: Path) -> None:
    sonix = read_document(REAL / "sonix_student_interview.txt")
    assert sonix.turns[-1].speaker is None and sonix.turns[-1].text.startswith("(Transcribed by Sonix.ai")
    assert sonix.turns[-2].text == "Yes. Thank you. Thank you. That's all for today."
    otter = tmp_path / "o.txt"
    otter.write_text("Kelly  0:18\nWelcome to the show.\n\nAli  0:22\nThanks.\n\nTranscribed by https://otter.ai\n", encoding="utf-8")
    turns = read_document(otter).turns
    assert [(t.speaker, t.text) for t in turns] == [("Kelly", "Welcome to the show."), ("Ali", "Thanks."), (None, "Transcribed by https://otter.ai")]
