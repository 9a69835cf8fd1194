"""What a question asks for (a number, a count, money, a name), and question words that are names or compounds."""

from __future__ import annotations

import pytest

from ragkit.answer.expects import Expects, expects, satisfies
from ragkit.answer.relevance import Question, is_navigation, is_question


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many shark fins had to be reworked?", Expects.COUNT),
        ("How long did Rob Pike wait for each build?", Expects.NUMBER),
        ("In which year was Go 1.0 released?", Expects.NUMBER),
        ("When was the episode recorded?", Expects.NUMBER),
        ("When should founders start a company?", None),  # a condition, not a date
        ("How often do the compost bins need turning?", None),  # "weekly" answers it
        ("What is Scale AI's annual revenue?", Expects.MONEY),
        ("How much did the chamber testing cost?", Expects.MONEY),
        ("How much of the world's data is private?", Expects.NUMBER),
        ("Who supported the team in the early days?", Expects.NAME),
        ("Which programming language is the game written in?", Expects.NAME),
        ("Which front-end world has Sidney been working in?", None),
        ("What did Alex's parents do for work?", None),
    ],
)
def test_what_a_question_expects(question: str, kind: Expects | None) -> None:
    expected = expects(question)
    assert (expected.kind if expected else None) is kind


@pytest.mark.parametrize(
    ("question", "quote", "ok"),
    [
        ("How many shark fins had to be reworked?", "it was, 1,136 sharp shark fins, total rework in 5 days.", True),
        ("How many companies work on AI sales?", "there are probably literally 50 if not more companies working on it", True),
        ("How many listeners joined the live recording?", "Today is the 100th episode.", False),  # an ordinal counts nothing
        ("How many listeners joined the live recording?", "And our two guests today are Rob and Robert.", False),  # guests, not listeners
        ("How long did the build take?", "I had to wait 45 minutes for another build.", True),
        ("How long did the build take?", "It took one of those long afternoons.", False),  # "one of" is not a number
        ("How long did the build take?", "It took a few hours on the old cluster.", True),
        ("How much did the testing cost?", "The roof repair alone costs two hundred thousand.", True),
        ("How much did the testing cost?", "It has been one of the indispensable forces since 2016.", False),  # a year, no price
        ("How much did the testing cost?", "We paid $40k for the week.", True),
        ("Who supported the Go team?", "He's still working on Go now.", False),  # the question's own word is not the answer
        ("Who supported the Go team?", "Our boss, Bill Coughran, was extremely supportive.", True),
        ("Which language did he grow up with?", 'When you decided "Hey, let\'s write a language."', False),  # quoted speech opens a sentence
        ("Which language did he grow up with?", "I grew up with Pascal and its successors.", True),
        ("Which language did he grow up with?", "Welcome to Go Time! We have a show.", True),
        ("Which language did he grow up with?", "Welcome, everybody! We have a show today.", False),  # "We" opens a sentence
    ],
)
def test_whether_a_quote_holds_what_is_asked(question: str, quote: str, ok: bool) -> None:
    assert satisfies(expects(question), quote) is ok


def test_written_apart_a_compound_still_covers_the_question_word() -> None:
    asked = Question({"midjourney": 4.0, "interface": 2.0})
    assert asked.cover(["mid", "journey", "came", "out"]) == pytest.approx(4.0 / 6.0)
    assert asked.unknown_names(["mid", "journey"]) == []


def test_names_the_passages_never_mention() -> None:
    asked = Question({"promo": 4.0, "vonage": 5.0}, names=(("ladybug",), ("vonage",), ("ken", "thompson")))
    assert asked.unknown_names(["ladybug", "podcast", "ken"]) == [("vonage",)]


def test_tag_questions_and_page_links() -> None:
    assert is_question("Did you measure your meter?")
    assert not is_question("And that's a totally valid reason to switch, right?")
    assert not is_question("It works, you know?")
    assert is_navigation("**Read another blog about [Trent Alexander-Arnold: ](./20240416-trent)**")
    assert not is_navigation("As [Sam](https://x.org) said, scaling works.")
