"""Per-format accuracy of the readers on real transcript exports: the share of turns whose speaker and start time
match the file, checked against small parsers written here independently of ragkit's readers.

    python eval/formats.py            # writes eval/results/formats.md and prints it

tests/readers/test_real_formats.py imports this module and asserts 100% on every format.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "tests" / "fixtures" / "real"
FORMATS = ROOT / "tests" / "fixtures" / "formats"

Expected = list[tuple[str | None, float | None]]


def _secs(*parts: str | None) -> float:
    total = 0.0
    for p in parts:
        if p is not None:
            total = total * 60 + float(p)
    return total


def _by_line(pattern: str, make: Callable[[re.Match[str], str | None], tuple[str | None, float | None] | None]) -> Callable[[str], Expected]:
    compiled = re.compile(pattern)

    def parse(text: str) -> Expected:
        out: Expected = []
        for line in text.splitlines():
            m = compiled.match(line)
            if m and (row := make(m, out[-1][0] if out else None)):
                out.append(row)
        return out

    return parse


# `[00:00:23] **Name:** text`, and `[00:00:30] text` continuing the last speaker.
descript = _by_line(
    r"^\[(\d\d):(\d\d):(\d\d)\] (?:\*\*(.+?):\*\*)?",
    lambda m, last: (m[4] or last, _secs(m[1], m[2], m[3])),
)
bold = _by_line(r"^\*\*(.+?):\*\*", lambda m, last: (m[1], None))
podscript = _by_line(r"^\[(.+?)\] \[(\d\d):(\d\d)(?::(\d\d))?\]", lambda m, last: (m[1], _secs(m[2], m[3], m[4])))
sonix = _by_line(r"^(.+?): \[(\d\d):(\d\d):(\d\d)\]", lambda m, last: (m[1], _secs(m[2], m[3], m[4])))
otter = _by_line(r"^(\S.*?)\s+(\d+):(\d\d)\s*$", lambda m, last: (m[1], _secs(m[2], m[3])))


def aws(text: str) -> Expected:
    results = json.loads(text)["results"]
    if results.get("audio_segments"):
        return [(s["speaker_label"], float(s["start_time"])) for s in results["audio_segments"]]
    out: Expected = []
    for item in results["items"]:
        if not out or out[-1][0] != item["speaker_label"]:
            out.append((item["speaker_label"], float(item["start_time"])))
    return out


def whisper(text: str) -> Expected:
    data = json.loads(text)
    if isinstance(data.get("transcription"), list):  # whisper.cpp: times in milliseconds
        return [(None, data["transcription"][0]["offsets"]["from"] / 1000)]  # unlabeled segments join into one turn
    segments = next(v["segments"] for v in (data, *data.values()) if isinstance(v, dict) and "segments" in v)
    return [(segments[0].get("speaker"), float(segments[0]["start"]))]


def webvtt(text: str) -> Expected:
    """Cues of `Name (Tag): text` (Zoom) or `<v Name>` (Teams); a cue without a name continues the last speaker."""
    out: Expected = []
    blocks = text.split("\n\n")[1:]
    for block in blocks:
        lines = block.strip().split("\n")
        timing = next(i for i, ln in enumerate(lines) if "-->" in ln)
        h, m, s = lines[timing].split(" --> ")[0].split(":")
        payload = lines[timing + 1]
        named = re.match(r"<v ([^>]+)>", payload) or re.match(r"([A-Z][\w ]+?(?: \(\w+\))?): ", payload)
        speaker = named[1] if named else out[-1][0]
        if not out or out[-1][0] != speaker:
            out.append((speaker, _secs(h, m, s)))
    return out


CASES: dict[str, tuple[Callable[[str], Expected], list[Path]]] = {
    "Descript markdown `[00:00:23] **Name:**`": (descript, sorted(REAL.glob("descript_*.md"))),
    "Markdown bold names `**Name:**`": (bold, sorted(REAL.glob("bold_*.md"))),
    "Podscript `[Speaker 1] [00:20]`": (podscript, sorted(REAL.glob("podscript_*.txt"))),
    "Sonix `Name: [00:00:23]`": (sonix, sorted(REAL.glob("sonix_*.txt"))),
    "Otter.ai `Name  0:03`": (otter, sorted(REAL.glob("otter_*.txt"))),
    "AWS Transcribe JSON": (aws, [REAL / "aws_transcribe_diarization.json", FORMATS / "aws_audio_segments.json"]),
    "Whisper JSON wrapped / whisper.cpp": (whisper, [FORMATS / n for n in ("whisper_cpp.json", "wrapped_output.json", "wrapped_result.json")]),
    "Zoom / Teams WebVTT": (webvtt, [FORMATS / "zoom.vtt", FORMATS / "teams.vtt"]),
}


def measure() -> list[dict]:
    """Per format: files, turns expected, turns whose speaker and start match, and the files with a mismatch."""
    sys.path.insert(0, str(ROOT))
    from ragkit.readers.corpus import read_document

    rows = []
    for label, (oracle, files) in CASES.items():
        expected_total = matched = 0
        bad = []
        for path in files:
            expected = oracle(path.read_text(encoding="utf-8"))
            got = [(t.speaker, t.start) for t in read_document(path).turns if t.speaker or t.start is not None]
            hits = sum(1 for e, g in zip(expected, got) if e[0] == g[0] and (e[1] is None) == (g[1] is None)
                       and (e[1] is None or abs(e[1] - g[1]) < 1e-6))  # type: ignore[operator]
            expected_total += len(expected)
            matched += hits if len(expected) == len(got) else min(hits, len(expected) - abs(len(expected) - len(got)))
            if hits != len(expected) or len(got) != len(expected):
                bad.append(path.name)
        rows.append({"format": label, "files": len(files), "turns": expected_total, "matched": matched, "mismatched_files": bad})
    return rows


def main() -> None:
    rows = measure()
    lines = [
        "# Reader accuracy per format",
        "",
        "Share of turns whose speaker and start time match the file, checked by the independent parsers in",
        "`eval/formats.py` (not ragkit's readers). Fixtures and their origins: `tests/fixtures/real/ORIGIN.md`.",
        "",
        "| format | files | turns | matched | share |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['format']} | {r['files']} | {r['turns']} | {r['matched']} | {r['matched'] / max(r['turns'], 1):.1%} |")
    total_f, total_t, total_m = sum(r["files"] for r in rows), sum(r["turns"] for r in rows), sum(r["matched"] for r in rows)
    lines.append(f"| **all** | {total_f} | {total_t} | {total_m} | {total_m / max(total_t, 1):.1%} |")
    out = ROOT / "eval" / "results" / "formats.md"
    kept = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("Before this change")] if out.exists() else []
    out.write_text("\n".join(lines + ([""] + kept if kept else [])) + "\n", encoding="utf-8")  # keep the one-off "before" line
    print("\n".join(lines))


if __name__ == "__main__":
    main()
