"""QMSum meetings as gold questions; per-meeting and pooled settings."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import QMSUM_TEST

from ragkit.chunking import ChunkSettings
from ragkit.errors import CorpusError, UsageError
from ragkit.evaluation.gold import GoldError
from ragkit.evaluation.qmsum import meeting_gold, parse_settings, read_meetings, render_qmsum, run_qmsum
from ragkit.readers.corpus import read_document

QMSUM = QMSUM_TEST
SMALL = ChunkSettings(max_tokens=16, tokenizer="words")  # every synthetic turn (>= 9 words) is its own chunk
METRICS = ("hit_at_k", "hit_at_5", "recall_at_k", "mrr_at_10", "ndcg_at_10", "recall_at_budget")

MEETING_A = {
    "meeting_transcripts": [
        {"speaker": "Project Manager", "content": "Okay let us start the meeting about the new remote control design today ."},
        {"speaker": "Project Manager", "content": "The budget for the remote control is twelve euros fifty per unit ."},
        {"speaker": "Industrial Designer", "content": "I think the buttons should be made of soft rubber for comfort {vocalsound} ."},
        {"speaker": "Marketing", "content": "Market research shows that young people want a trendy fruit shaped case ."},
        {"speaker": "Project Manager", "content": "Let us close the meeting and meet again after the lunch break ."},
    ],
    "specific_query_list": [
        {"query": "What did they say about the budget per unit?", "answer": "...", "relevant_text_span": [["1", "1"]]},
        {"query": "What did the industrial designer think the buttons should be made of?", "answer": "...",
         "relevant_text_span": [["2", "3"], ["3", "3"]]},
    ],
}
MEETING_B = {
    "meeting_transcripts": [
        {"speaker": "Chair", "content": "The committee will now hear evidence on the housing bill this morning ."},
        {"speaker": "Member", "content": "What did they say about the budget per unit of social housing ?"},
        {"speaker": "Chair", "content": "Thank you all , the committee session is now adjourned until Monday ."},
    ],
    "specific_query_list": [
        {"query": "When is the committee session adjourned?", "answer": "...", "relevant_text_span": [["2", "2"]]},
    ],
}


@pytest.fixture
def meetings(tmp_path: Path) -> Path:
    folder = tmp_path / "qmsum"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(MEETING_A, indent=1), encoding="utf-8")
    (folder / "b.json").write_text(json.dumps(MEETING_B), encoding="utf-8")
    return folder


def test_meeting_gold_maps_spans_to_turns(meetings: Path) -> None:
    doc = read_document(meetings / "a.json")
    budget, design = meeting_gold(doc)
    assert (budget.id, design.id) == ("a#0", "a#1")
    assert budget.question == "What did they say about the budget per unit?"
    # inclusive spans; the overlapping second span adds no turn twice
    assert [doc.text[e.char_start : e.char_end] for e in design.evidence] == [t["content"] for t in MEETING_A["meeting_transcripts"][2:4]]
    assert [(e.char_start, e.char_end) for e in budget.evidence] == [(doc.turns[1].char_start, doc.turns[1].char_end)]


@pytest.mark.parametrize(
    ("span", "message"),
    [
        ([["3", "5"]], "relevant_text_span [3, 5] is outside the meeting's 5 turns"),
        ([["4", "2"]], "relevant_text_span [4, 2] is outside"),
        ([["x", "2"]], "is not a [start, end] pair"),
        ([["1"]], "is not a [start, end] pair"),
    ],
)
def test_meeting_gold_rejects_bad_spans(tmp_path: Path, span: list, message: str) -> None:
    data = {**MEETING_A, "specific_query_list": [{"query": "q", "relevant_text_span": span}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(GoldError) as err:
        meeting_gold(read_document(path))
    assert "bad.json: specific_query_list[0]" in str(err.value) and message in str(err.value)


def test_read_meetings_errors(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such folder"):
        read_meetings(tmp_path / "missing")
    with pytest.raises(CorpusError, match="no \\*.json meeting files"):
        read_meetings(tmp_path)
    (tmp_path / "other.json").write_text(json.dumps({"segments": [{"text": "hi", "start": 0, "end": 1}]}))
    with pytest.raises((GoldError, Exception), match="other.json"):
        read_meetings(tmp_path)


def test_parse_settings() -> None:
    assert parse_settings("both") == ("per-meeting", "pooled")
    assert parse_settings("pooled") == ("pooled",)
    with pytest.raises(UsageError, match="per-meeting, pooled or both"):
        parse_settings("global")


def test_run_qmsum_both_settings(meetings: Path) -> None:
    report = run_qmsum(meetings, embedder="hash:256", k=1, chunking=SMALL)
    assert (report.meetings, report.queries, report.turns, report.chunks) == (2, 3, 8, 8)
    per, pooled = report.results
    assert (per.setting, pooled.setting) == ("per-meeting", "pooled")
    rows_per = {r.id: r for r in per.questions}
    rows_pool = {r.id: r for r in pooled.questions}
    for r in per.questions:  # per-meeting search never leaves the query's meeting
        assert all(cid.startswith(r.id.split("#")[0] + ".json#") for cid in r.top)
    # Meeting b has a turn nearly identical to a#0's query: pooled ranks it first, per-meeting cannot see it.
    assert rows_pool["a#0"].top[0].startswith("b.json#") and rows_pool["a#0"].mrr_at_10 == 0.5
    assert rows_per["a#0"].mrr_at_10 == 1.0 and rows_per["a#0"].hit_at_k == 1.0
    assert rows_per["a#1"].recall_at_k == 0.5  # k=1 passage covers one of the two gold turns
    for qid, row in rows_per.items():  # restricting the search can only help a query
        for m in METRICS:
            assert getattr(row, m) >= getattr(rows_pool[qid], m), (qid, m)
    assert per.summary.mrr_at_10 > pooled.summary.mrr_at_10
    text = render_qmsum(report)
    assert "per-meeting" in text and "pooled" in text and "2 meetings, 3 queries" in text
    assert json.loads(json.dumps(asdict(report)))["results"][0]["summary"]["questions"] == 3


def test_run_qmsum_pluggable_search(meetings: Path) -> None:
    from ragkit.evaluation.qmsum import dense_search

    scopes: list[str | None] = []

    def factory(index):  # noqa: ANN001, ANN202
        inner = dense_search(index)

        def search(question: str, k: int, source: str | None):  # noqa: ANN202
            scopes.append(source)
            return inner(question, k, source)

        return search

    report = run_qmsum(meetings, embedder="hash:256", settings="per-meeting", k=2, chunking=SMALL, search=factory)
    assert [r.setting for r in report.results] == ["per-meeting"]
    assert scopes == ["a.json", "a.json", "b.json"]
    run_qmsum(meetings, embedder="hash:256", settings="pooled", k=2, chunking=SMALL, search=factory)
    assert scopes[3:] == [None, None, None]


@pytest.mark.integration
def test_qmsum_three_meetings_real_model(tmp_path: Path) -> None:
    folder = tmp_path / "qmsum"
    folder.mkdir()
    names = ["ES2004a.json", "IS1003a.json", "education_17.json"]  # small meetings from AMI and the Welsh Parliament
    for name in names:
        shutil.copy(QMSUM / name, folder / name)
    expected = sum(len(json.loads((QMSUM / n).read_text())["specific_query_list"]) for n in names)
    report = run_qmsum(folder, k=10)
    assert report.queries == expected and report.meetings == 3 and report.embedder == "st:all-MiniLM-L6-v2"
    per, pooled = report.results
    # Measured on these 3 meetings (24 queries, default chunking): per-meeting hit@5 0.833, MRR@10 0.654, R@1k 0.488;
    # pooled hit@5 0.792, MRR@10 0.623, R@1k 0.396. The floors sit clearly below.
    assert per.summary.hit_at_5 >= 0.6 and per.summary.mrr_at_10 >= 0.45 and per.summary.recall_at_budget >= 0.3
    assert pooled.summary.hit_at_5 >= 0.55 and pooled.summary.recall_at_budget >= 0.25
    rows_pool = {r.id: r for r in pooled.questions}
    for row in per.questions:
        assert all(cid.startswith(row.id.split("#")[0] + ".json#") for cid in row.top)
        for m in METRICS:
            assert getattr(row, m) >= getattr(rows_pool[row.id], m) - 1e-9, (row.id, m)
