import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kfgrpo.rewards import accuracy_reward, extract_answer
from kfgrpo.rewards.accuracy import interval_iou


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
        ("<answer>there were four</answer>", "4", "numerical", 0.0),
        ("<answer>[1.0, 2.0]</answer>", "[1.0, 2.0]", "temporal_grounding", 1.0),
        ("<answer>[1.5, 2.0]</answer>", "[1.0, 2.0]", "temporal_grounding", 0.5),
        ("<answer>[2.0, 1.0]</answer>", "[1.0, 2.0]", "temporal_grounding", 1.0),  # endpoints in any order
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
    ptype=st.sampled_from(["multiple_choice", "numerical", "free_form", "temporal_grounding"]),
)
def test_never_raises_and_stays_in_range(text, solution, ptype):
    for completion in (text, _conv(text), f"<answer>{text}</answer>"):
        (r,) = accuracy_reward([completion], solution=[solution], problem_type=[ptype])
        assert 0.0 <= r <= 1.0
