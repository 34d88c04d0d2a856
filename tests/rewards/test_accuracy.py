import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfgrpo.rewards import accuracy_reward, extract_answer
from kfgrpo.rewards.accuracy import extract_choice, interval_iou, parse_answer, score_answer, word_error_rate

OPTS = ["A. a red square", "B. a blue circle", "C. A man opening a door", "D. nothing"]


def _conv(text):
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize(
    "text,solution,ptype,expected",
    [
        ("<think>red came first</think><answer>B</answer>", "B", "multiple_choice", 1.0),
        ("<answer>B. blue square</answer>", "B", "multiple_choice", 1.0),
        ("<answer>(C)</answer>", "B", "multiple_choice", 0.0),
        ("B", "B", "multiple_choice", 1.0),  # no tag: the whole completion is the answer
        ("<answer>Because</answer>", "B", "multiple_choice", 0.0),  # letters inside words do not count
        ("<answer>3</answer>", "3", "numerical", 1.0),
        ("<answer>3.001</answer>", "3", "numerical", 1.0),
        ("<answer>3.1</answer>", "3", "numerical", 0.0),
        ("<answer>there were four</answer>", "4", "numerical", 1.0),  # written out: read as 4
        ("<answer>[1.0, 2.0]</answer>", "[1.0, 2.0]", "temporal_grounding", 1.0),
        ("<answer>[1.5, 2.0]</answer>", "[1.0, 2.0]", "temporal_grounding", 0.5),
        ("<answer>[2.0, 1.0]</answer>", "[1.0, 2.0]", "temporal_grounding", 0.0),  # reversed: 0, as VideoChat-R1
        ("<answer>[5, 6]</answer>", "[1.0, 2.0]", "temporal_grounding", 0.0),
        ("<answer>the red square moved</answer>", "the red square moved", "free_form", 1.0),
        ("<answer>nothing</answer>", "the red square moved", "free_form", 0.0),
    ],
)
def test_accuracy_cases(text, solution, ptype, expected):
    (got,) = accuracy_reward([_conv(text)], solution=[solution], problem_type=[ptype])
    assert got == pytest.approx(expected, abs=1e-6)


def test_last_answer_tag_wins_and_plain_strings_work():
    assert extract_answer("<answer>A</answer> wait <answer>C</answer>") == "C"
    assert accuracy_reward(["<answer>C</answer>"], solution=["C"], problem_type=["multiple_choice"]) == [1.0]


def test_unknown_type_gives_none():
    assert accuracy_reward(["A"], solution=["A"], problem_type=["essay"]) == [None]


def test_iou_edge_cases():
    assert interval_iou("[1, 1]", "[1, 1]") == 1.0
    assert interval_iou("[1]", "[1, 2]") == 0.0


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(),
    solution=st.text(max_size=20),
    ptype=st.sampled_from(["multiple_choice", "numerical", "regression", "ocr", "free_form", "temporal_grounding"]),
)
def test_never_raises_and_stays_in_range(text, solution, ptype):  # noqa: D103
    for completion in (text, _conv(text), f"<answer>{text}</answer>"):
        (r,) = accuracy_reward([completion], solution=[solution], problem_type=[ptype])
        assert 0.0 <= r <= 1.0


# Guards for the scoring fixes of the issue "scores users can trust" (its bug number in each test's comment). Cases
# marked "misread before" were scored wrongly by the scorer before those fixes (checked against it); the others pin
# behaviour that already held and must keep holding. New classes: tests/rewards/test_scoring_classes.py.


@pytest.mark.parametrize("letter", ["I", "J"])
def test_options_i_and_j_score(letter):  # bug 1 (held before: guards the A-J alphabet)
    assert score_answer(f"<answer>{letter}</answer>", letter, "multiple_choice") == 1.0
    assert score_answer(f"<answer>({letter}) the tenth</answer>", letter, "multiple_choice") == 1.0


@pytest.mark.parametrize(
    "answer,solution,expected",
    [("1,500", "1,000", 0.0), ("2,500,000", "2,000,000", 0.0), ("1,000", "1000", 1.0), ("1,234.5", "1234.50", 1.0)],
)
def test_thousands_separators(answer, solution, expected):  # bug 2 (every case misread before)
    assert score_answer(f"<answer>{answer}</answer>", solution, "numerical") == expected


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("10.0-15.0", 1.0),  # misread before
        ("10 to 15", 1.0),
        ("10 - 15 s", 1.0),
        ("[10, 15]", 1.0),
        ("15.0-10.0", 0.0),  # misread before
        ("[12.5, 15]", 0.5),
    ],
)
def test_span_forms_and_reversed_spans(answer, expected):  # bug 3
    assert score_answer(f"<answer>{answer}</answer>", "[10.0, 15.0]", "temporal_grounding") == pytest.approx(expected)
    assert interval_iou("[100,200]", "[100, 200]") == 1.0  # "100,200" is a span here, not one hundred thousand


@pytest.mark.parametrize(
    "completion,expected",
    [
        (
            "<think>A woman appears in the first frame and then",
            None,
        ),  # truncated reasoning: no answer (misread before)
        (
            "A woman appears in the first frame and then",
            None,
        ),  # no tags: the article is not an option (misread before)
        ("<think>the door opens first</think><answer>B", "B"),  # unclosed answer: what it says
        ("<think>the door opens first</think>\nB", "B"),  # answer after the reasoning, without tags
        ("<think>so it must be A... or is it</think><answer>C</answer>", "C"),
    ],
)
def test_truncated_completions(completion, expected):  # bug 4
    assert parse_answer(completion, "multiple_choice", OPTS) == expected
    assert score_answer(completion, "A", "multiple_choice", OPTS) == float(expected == "A")


@pytest.mark.parametrize(
    "answer,expected",
    [
        ("A or C", None),  # misread before
        ("A, C", None),  # misread before
        ("Either A or C", None),  # misread before
        ("(A) / (C)", None),  # misread before
        ("A man opening a door", "C"),  # an option's text names that option, article or not (misread before)
        ("a blue circle", "B"),  # misread before
        ("B. a blue circle", "B"),
        ("(B)", "B"),
        ("Answer: C", "C"),
        ("The correct answer is (D).", "D"),
        ("I think it is B", "B"),  # the pronoun is not option I (misread before)
        ("C, because the door opens", "C"),
        ("Because", None),
    ],
)
def test_hedges_and_option_text(answer, expected):  # bug 5
    assert extract_choice(answer, OPTS) == expected


def test_free_form_rouge_is_stemmed():  # bug 6 (misread before)
    got = score_answer("<answer>a man is running</answer>", "a man runs", "free_form")
    assert got == pytest.approx(0.71, abs=0.01)


def test_regression_and_ocr_as_video_r1():  # bug 7 (types absent before)
    assert score_answer("<answer>90</answer>", "100", "regression") == pytest.approx(0.9)
    assert score_answer("<answer>250</answer>", "100", "regression") == 0.0
    assert score_answer("<answer>1,000</answer>", "1000", "regression") == pytest.approx(1.0)
    assert score_answer("<answer>STOP HERE</answer>", "STOP HERE", "ocr") == 1.0
    assert score_answer("<answer>STOP THERE</answer>", "STOP HERE", "ocr") == 0.5
    assert score_answer("<answer></answer>", "STOP HERE", "ocr") == 0.0
    assert word_error_rate("a b c", "a x c d") == pytest.approx(2 / 3)


def test_accuracy_reward_passes_options():
    got = accuracy_reward(["<answer>A man opening a door</answer>"] * 2, solution=["C", "A"], options=[OPTS, OPTS])
    assert got == [1.0, 0.0]
