"""Issue 14 on the command line: a build survives bad files, `info` reports how each file was read, and the nine
bugs found while trying real archives stay fixed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_main as run

from ragkit.datatypes import format_time
from ragkit.index.core import Index

FIXTURES = Path(__file__).parents[1] / "fixtures"
REAL, FORMATS = FIXTURES / "real", FIXTURES / "formats"
HASH = ["-e", "hash:256"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.resolve().iterdir()}


def indexed(tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str | Path], *options: str) -> tuple[Path, Path]:
    """A corpus folder of files (text, or a fixture path to copy) indexed with the hash embedder: (corpus, index)."""
    corpus, idx = tmp_path / "c", tmp_path / "idx"
    corpus.mkdir()
    for name, content in files.items():
        if isinstance(content, Path):
            shutil.copy(content, corpus / name)
        else:
            (corpus / name).write_text(content, encoding="utf-8")
    code, _, err = run(["index", str(corpus), "-o", str(idx), *HASH, *options], capsys)
    assert code == 0, err
    return corpus, idx


@pytest.fixture()
def mixed(tmp_path: Path) -> Path:
    """Good real files and bad ones side by side."""
    corpus = tmp_path / "archive"
    corpus.mkdir()
    for name in ("otter_ladybug_nextjs.txt", "descript_workingcode_049.md"):
        shutil.copy(REAL / name, corpus / name)
    shutil.copy(FORMATS / "malformed" / "bad_timestamp.srt", corpus / "bad_timestamp.srt")  # undecodable structure
    shutil.copy(FORMATS / "malformed" / "backwards.vtt", corpus / "backwards.vtt")  # repairable
    (corpus / "unknown.json").write_text(json.dumps({"episode": 3, "words": ["a", "b"]}), encoding="utf-8")
    return corpus


# ------------------------------------------------------------------ a build that survives bad files


def test_bad_files_are_skipped_each_named_and_the_build_goes_on(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["index", str(mixed), "-o", str(tmp_path / "idx"), *HASH], capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    # Every problem of the run, one line each, naming file, line and reason.
    assert any("bad_timestamp.srt line 14: bad timestamp" in w and w.endswith("skipped") for w in warnings), err
    assert any("unknown.json: unrecognized JSON transcript" in w for w in warnings), err
    assert any("backwards.vtt: repaired 1 defect(s): line 3: cue ends" in w for w in warnings), err
    assert "2 files skipped; 1 file repaired" in out, out
    sources = {s["path"] for s in Index.load(tmp_path / "idx").manifest["sources"]}
    assert sources == {"otter_ladybug_nextjs.txt", "descript_workingcode_049.md", "backwards.vtt"}


def test_strict_turns_skips_into_an_error_and_leaves_the_index_untouched(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(REAL / "otter_radical_ai.txt", good / "a.txt")
    idx = tmp_path / "idx"
    assert run(["index", str(good), "-o", str(idx), *HASH], capsys)[0] == 0
    before = snapshot(idx)
    code, out, err = run(["index", str(mixed), "-o", str(idx), *HASH, "--strict"], capsys)
    assert code == 1 and out == "", (out, err)
    assert "error: 2 file(s) could not be read (each reported above); fix them, or leave out --strict" in err
    assert "bad_timestamp.srt line 14" in err and "unknown.json" in err  # both reported before the error
    assert snapshot(idx) == before


def test_an_unreadable_file_is_skipped_with_the_reason(mixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    locked = mixed / "locked.txt"
    shutil.copy(REAL / "otter_radical_ai.txt", locked)
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads any file: make this one fail as a permission error would
        real = Path.read_bytes

        def read_bytes(self: Path) -> bytes:
            if self.name == "locked.txt":
                raise PermissionError(13, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(Path, "read_bytes", read_bytes)
    code, out, err = run(["index", str(mixed), "-o", str(tmp_path / "idx"), *HASH], capsys)
    assert code == 0, err
    assert "locked.txt: cannot read (Permission denied)" in err and "3 files skipped" in out


def test_a_transcript_read_as_prose_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    lines = [f"{m:02d}:{s:02d} — Alex — we talked about item {m * 60 + s} of the roadmap today." for m in range(3) for s in range(0, 60, 3)]
    (corpus / "odd-export.txt").write_text("\n\n".join(lines), encoding="utf-8")
    assert len((corpus / "odd-export.txt").read_bytes()) > 2048
    code, out, err = run(["index", str(corpus), "-o", str(tmp_path / "idx"), *HASH], capsys)
    assert code == 0 and "odd-export.txt: read as plain prose: no speakers or times recognised" in err, err
    assert "1 file read as plain prose" in out


def test_info_lists_format_turns_speakers_and_time_span(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, idx = indexed(tmp_path, capsys, {"ladybug.txt": REAL / "otter_ladybug_nextjs.txt", "gotime.md": REAL / "bold_gotime_100.md"})
    code, out, err = run(["info", "-i", str(idx)], capsys)
    assert code == 0, err
    assert "ladybug.txt  [unchanged]  otter, 14 turns, 4 speakers, 0:00:00-0:16:28," in out, out
    assert "gotime.md  [unchanged]  bold-names, 19 turns, 4 speakers," in out, out
    sources = json.loads(run(["info", "-i", str(idx), "--json"], capsys)[1])["manifest"]["sources"]
    assert {s["path"]: (s["format"], s["speakers_found"], s["span"]) for s in sources} == {
        "ladybug.txt": ("otter", 4, [0.0, 988.0]), "gotime.md": ("bold-names", 4, None),
    }


# ------------------------------------------------------------------ the nine bugs


def test_bug1_same_file_name_in_two_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for ep, fixture in (("ep1", "labels.srt"), ("ep2", "diarized.srt")):
        (tmp_path / ep).mkdir()
        shutil.copy(FORMATS / fixture, tmp_path / ep / "captions.srt")
    idx = tmp_path / "idx"
    code, _, err = run(["index", str(tmp_path / "ep1"), str(tmp_path / "ep2"), "-o", str(idx), *HASH], capsys)
    assert code == 0, err
    assert {(s["path"], s["title"]) for s in Index.load(idx).source_entries()} == {("ep1/captions.srt", "ep1 captions"), ("ep2/captions.srt", "ep2 captions")}
    code, out, err = run(["info", "-i", str(idx)], capsys)
    assert code == 0 and "up to date" in out, err
    code, out, err = run(["search", "shops", "-i", str(idx), "--json"], capsys)
    assert code == 0 and json.loads(out)["hits"], err
    assert run(["index", "--force", "-o", str(idx), *HASH], capsys)[0] == 0  # rebuilt from the recorded folders


def test_bug2_speaker_filter_quotes_only_that_speaker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, idx = indexed(tmp_path, capsys, {"launch.txt": (
        "Marketing (00:01): The launch campaign starts in May with a budget of forty thousand dollars for the launch.\n\n"
        "Engineering (00:09): The launch build freezes in April so the launch campaign has a stable product to show.\n\n"
        "Marketing (00:17): Our launch video goes out the same week the launch campaign opens to the press.\n\n"
        "Engineering (00:25): The launch servers are sized for the launch campaign traffic we expect in May.\n"
    )})
    assert len(Index.load(idx).chunks) == 1  # both speakers share the one chunk
    code, out, err = run(["ask", "When does the launch campaign start?", "-i", str(idx), "--speaker", "marketing", "--json"], capsys)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["citations"] and {c["speaker"] for c in answer["citations"]} == {"Marketing"}
    spoken = [t.text for t in Index.load(idx).documents["launch.txt"].turns if t.speaker == "Marketing"]
    for c in answer["citations"]:
        assert any(c["quote"] in text for text in spoken)


def test_bug3_info_sees_a_file_added_to_the_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, idx = indexed(tmp_path, capsys, {"one.txt": REAL / "otter_radical_ai.txt"})
    shutil.copy(REAL / "podscript_oxide_cad.txt", corpus / "two.txt")
    code, out, _ = run(["info", "-i", str(idx)], capsys)
    assert code == 0
    assert "two.txt  [new]  not indexed yet" in out and "up to date" not in out, out
    assert "1 source(s) new or changed since indexing" in out


def test_bug4_context_inside_one_long_turn_shows_neighbouring_sentences(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sentences = [f"Sentence number {i} talks about topic {i} in some detail." for i in range(40)]
    sentences[20] = "The lighthouse keeper painted the tower red in spring."
    _, idx = indexed(tmp_path, capsys, {"talk.txt": "Lecturer (00:00): " + " ".join(sentences) + "\n"}, "--max-tokens", "20")
    code, out, err = run(["search", "lighthouse keeper painted the tower", "-i", str(idx), "-k", "1", "--context", "1", "--json"], capsys)
    assert code == 0, err
    hit = json.loads(out)["hits"][0]
    assert "lighthouse" in hit["chunk"]["text"]
    doc_text = Index.load(idx).documents["talk.txt"].text
    assert hit["before"] and hit["after"], hit
    for turn in hit["before"] + hit["after"]:
        assert doc_text[turn["char_start"] : turn["char_end"]] == turn["text"] and turn["text"] in sentences
    assert hit["before"][-1]["char_end"] <= hit["chunk"]["char_start"] and hit["after"][0]["char_start"] >= hit["chunk"]["char_end"]


def test_bug5_source_filter_is_case_insensitive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, idx = indexed(tmp_path, capsys, {"Ladybug.txt": REAL / "otter_ladybug_nextjs.txt", "gotime.md": REAL / "bold_gotime_100.md"})
    for pattern in ("ladybug.TXT", "LADY*", "ladybug.txt"):
        code, out, err = run(["search", "react", "-i", str(idx), "--source", pattern, "--json"], capsys)
        hits = json.loads(out)["hits"]
        assert code == 0 and hits and {h["chunk"]["source"] for h in hits} == {"Ladybug.txt"}, (pattern, err)


def test_bug6_index_given_twice_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["search", "x", "-i", "a", "-i", "b"], ["ask", "x", "--index", "a", "--index=b"], ["index", "c", "-o", "a", "-i", "b"]):
        code, out, err = run(argv, capsys)
        assert code == 2 and out == "" and "given 2 times" in err and err.count("\n") == 1, (argv, err)


def test_bug7_unknown_answerer_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, idx = indexed(tmp_path, capsys, {"a.txt": REAL / "otter_radical_ai.txt"})
    code, _, err = run(["ask", "who leads automation?", "-i", str(idx), "-a", "gpt"], capsys)
    assert code == 2 and "usage error: -a/--answerer 'gpt': unknown" in err, err


def test_bug8_no_lock_file_is_left_beside_the_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("\n", encoding="utf-8")
    out_dir = tmp_path / "indexes"
    out_dir.mkdir()
    assert run(["index", str(empty), "-o", str(out_dir / "mine"), *HASH], capsys)[0] == 1  # a failed build
    assert sorted(os.listdir(out_dir)) == []
    good = tmp_path / "good"
    good.mkdir()
    shutil.copy(REAL / "otter_radical_ai.txt", good / "a.txt")
    assert run(["index", str(good), "-o", str(out_dir / "mine"), *HASH], capsys)[0] == 0
    assert not [n for n in os.listdir(out_dir) if n.endswith(".lock")]


def test_bug9_hit_carries_the_time_and_speaker_of_the_matching_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, idx = indexed(tmp_path, capsys, {"ep.txt": (
        "Host (00:01): Welcome back to the show, everyone.\n\n"
        "Guest (00:20): Thanks, glad to be here again.\n\n"
        "Host (01:05): Tell us about the glacier expedition in Patagonia.\n\n"
        "Guest (01:12): We crossed the glacier in nine days.\n"
    )})
    assert len(Index.load(idx).chunks) == 1 and Index.load(idx).chunks[0].start == 1.0
    code, out, err = run(["search", "glacier expedition Patagonia", "-i", str(idx), "--json"], capsys)
    hit = json.loads(out)["hits"][0]
    assert code == 0 and (hit["speaker"], hit["start"]) == ("Host", 65.0), hit
    code, out, _ = run(["search", "glacier expedition Patagonia", "-i", str(idx), "--link-template", "https://example.org/{source_stem}?t={start_int}"], capsys)
    assert f"ep · Host · {format_time(65)}" in out and "link: https://example.org/ep?t=65" in out, out
