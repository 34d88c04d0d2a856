from hypothesis import given
from hypothesis import strategies as st

from kfgrpo.rewards import format_reward


def test_format_cases():
    good = "<think>the red square came first</think>\n<answer>B</answer>"
    assert format_reward([good, [{"role": "assistant", "content": good}]]) == [1.0, 1.0]
    assert format_reward(["<answer>B</answer>", "<think>x</think><answer>B</answer> trailing", "B"]) == [0.0] * 3


@given(st.text())
def test_format_never_raises_and_is_binary(text):
    assert format_reward([text])[0] in (0.0, 1.0)
