"""`ragkit eval` through the CLI: gold files, thresholds, --out, and the QMSum benchmark."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import QMSUM_TEST

from ragkit.cli import main

QMSUM = QMSUM_TEST
SHOW = (
    "Ann (00:01):\nThe harvest failed because the rain came late in the spring.\n\n"
    "Bob (00:20):\nMarkets were calm and prices held steady all year.\n\n"
    "Cleo (00:41):\nThe cooperative bought two new tractors with the subsidy.\n"
)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture()
def gold_setup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "farm.txt").write_text(SHOW, encoding="utf-8")
    gold = tmp_path / "gold.jsonl"
    rows = [
        {"id": "a", "question": "why did the harvest fail rain", "evidence": [{"source": "farm.txt", "quote": "the rain came late"}]},
        {"id": "b", "question": "tractors subsidy cooperative", "evidence": [{"source": "farm.txt", "quote": "two new tractors"}]},
        {"id": "c", "question": "zebra quantum", "evidence": []},
    ]
    gold.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    code, _, err = run(["index", str(corpus), "-o", str(tmp_path / "idx"), "-e", "hash:64"], capsys)
    assert code == 0, err
    return gold, tmp_path / "idx"


def test_eval_gold_table_json_and_out(gold_setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold, idx = gold_setup
    code, out, _ = run(["eval", str(gold), "-i", str(idx), "-k", "1"], capsys)
    assert code == 0 and "hit@1" in out and "why did the harvest fail" in out
    report_file = tmp_path / "r" / "report.json"
    code, out, _ = run(["eval", str(gold), "-i", str(idx), "-k", "1", "--json", "--out", str(report_file)], capsys)
    data = json.loads(out)
    assert code == 0 and data == json.loads(report_file.read_text())
    assert data["summary"]["questions"] == 3 and data["summary"]["answerable"] == 2
    assert [q["id"] for q in data["questions"]] == ["a", "b", "c"]
    assert data["manifest"]["embedder"]["spec"] == "hash:64" and data["machine"]["cores"] >= 1 and data["ragkit_version"]


def test_fail_under_exits_1_and_names_the_metric(gold_setup: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    gold, idx = gold_setup
    code, _, err = run(["eval", str(gold), "-i", str(idx), "--fail-under", "hit@k=1.01"], capsys)
    assert code == 1 and "hit@k" in err and "below 1.01" in err
    code, _, _ = run(["eval", str(gold), "-i", str(idx), "--fail-under", "hit@k=0.0"], capsys)
    assert code == 0


def test_bad_threshold_and_missing_gold_are_usage_errors(gold_setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold, idx = gold_setup
    code, _, err = run(["eval", str(gold), "-i", str(idx), "--fail-under", "speed=3"], capsys)
    assert code == 2 and "METRIC=VALUE" in err
    code, _, err = run(["eval", str(tmp_path / "nope.jsonl"), "-i", str(idx)], capsys)
    assert code == 2 and "nope.jsonl" in err


def test_qmsum_on_a_synthetic_meeting_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "meetings"
    folder.mkdir()
    turns = [{"speaker": "A", "content": f"filler talk number {i} about lunch"} for i in range(12)]
    turns[7] = {"speaker": "B", "content": "the remote control needs a bigger battery"}
    meeting = {"meeting_transcripts": turns, "specific_query_list": [{"query": "what about the remote battery", "answer": "", "relevant_text_span": [["7", "7"]]}]}
    (folder / "m1.json").write_text(json.dumps(meeting), encoding="utf-8")
    code, out, err = run(["eval", "qmsum", str(folder), "-e", "hash:64", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert [r["setting"] for r in data["results"]] == ["per-meeting", "pooled"]
    assert data["queries"] == 1 and data["results"][0]["summary"]["hit_at_k"] == 1.0


@pytest.mark.integration
def test_qmsum_benchmark_on_three_real_meetings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "q"
    folder.mkdir()
    for name in ("ES2004a.json", "IS1003a.json", "education_17.json"):
        shutil.copy(QMSUM / name, folder / name)
    assert len(list(folder.iterdir())) == 3
    code, out, err = run(["eval", "qmsum", str(folder), "--setting", "pooled", "--out", str(tmp_path / "q.json")], capsys)
    assert code == 0, err
    assert out.startswith("setting") and "pooled" in out
    data = json.loads((tmp_path / "q.json").read_text())
    assert data["results"][0]["summary"]["hit_at_5"] >= 0.5
