"""Answer classes the scorer once misread, each against its hand label. Every case here failed on the scorer before
this file existed (checked against that version); the labels are what a person reading the answer would say."""

import pytest

from kfgrpo.rewards.accuracy import interval_iou, parse_answer, parse_span, score_answer

OPTIONS = ["A. a red square", "B. a blue circle", "C. a green star", "D. a white square"]


@pytest.mark.parametrize(
    "text,label",
    [
        ("<answer>b</answer>", "B"),  # a lowercase letter as the whole answer
        ("b", "B"),  # a bare completion
        ("<answer>**B**</answer>", "B"),  # markdown bold
        ("<answer>*C*</answer>", "C"),  # markdown italics
        ("<answer>Ｂ</answer>", "B"),  # a full-width letter
        ("<answer>B - a blue circle</answer>", "B"),  # letter, dash, option text
        ("<answer>A. a red square is wrong; the answer is B</answer>", "B"),  # the stated answer wins
    ],
)
def test_multiple_choice_answer_classes(text, label):
    assert parse_answer(text, "multiple_choice", OPTIONS) == label
    assert score_answer(text, label, "multiple_choice", OPTIONS) == 1.0
    wrong = "D" if label != "D" else "A"
    assert score_answer(text, wrong, "multiple_choice", OPTIONS) == 0.0


def test_an_article_is_still_not_an_option():
    assert parse_answer("<answer>a man opens a door</answer>", "multiple_choice") is None


@pytest.mark.parametrize(
    "text", ["<answer>3 or 4</answer>", "<answer>between 3 and 5</answer>", "<answer>3-4</answer>"]
)
def test_hedged_numbers_are_no_answer(text):
    assert score_answer(text, "3", "numerical") == 0.0
    assert parse_answer(text, "numerical") is None


def test_numbers_that_are_not_hedges_still_score():
    assert score_answer("<answer>3 people and 2 dogs</answer>", "3", "numerical") == 1.0
    assert score_answer("<answer>-5</answer>", "-5", "numerical") == 1.0


def test_negative_span_start_keeps_its_sign():
    assert parse_span("-5 to 10") == (-5.0, 10.0)
    assert interval_iou("-5 to 10", "[0, 10]") == pytest.approx(10 / 15)
    assert parse_span("10-15") == (10.0, 15.0)  # a dash between numbers is a separator, not a sign


@pytest.mark.parametrize(
    "text,span",
    [("00:10 to 00:15", (10.0, 15.0)), ("from 1:05 until 1:20", (65.0, 80.0)), ("[0:01:02, 0:01:10.5]", (62.0, 70.5))],
)
def test_clock_time_spans(text, span):
    assert parse_span(text) == span
    assert interval_iou(text, f"[{span[0]}, {span[1]}]") == pytest.approx(1.0)


# Numbers in the forms a careful grader accepts (each misread before: written out, fractions, Unicode forms, spaced
# groups, scale words), and what must stay wrong: another number, a hedge between two numbers in any of these forms.
@pytest.mark.parametrize(
    "answer,solution",
    [
        ("three", "3"),
        ("There were four people.", "4"),
        ("twenty-one", "21"),
        ("one hundred and five", "105"),
        ("a dozen", "12"),
        ("none", "0"),
        ("1/2", "0.5"),
        ("half", "0.5"),
        ("two and a half", "2.5"),
        ("2 and a half", "2.5"),
        ("1 1/2", "1.5"),
        ("½", "0.5"),
        ("three quarters", "0.75"),
        ("2/3", "0.67"),
        ("３", "3"),
        ("−5", "-5"),
        ("12 500", "12500"),
        ("1.5 million", "1500000"),
        ("0.5", "1/2"),
    ],
)
def test_numbers_a_grader_accepts(answer, solution):
    assert score_answer(f"<answer>{answer}</answer>", solution, "numerical") == 1.0


@pytest.mark.parametrize(
    "answer,solution",
    [
        ("four", "3"),
        ("three or four", "3"),
        ("between three and five", "3"),
        ("three and four", "3"),
        ("1/2", "1"),
        ("12 500", "12"),
        ("one of the 3 cars", "1"),  # an answer with digits is read from its digits
        ("a man runs", "1"),
    ],
)
def test_numbers_that_stay_wrong(answer, solution):
    assert score_answer(f"<answer>{answer}</answer>", solution, "numerical") == 0.0
