"""Reward functions by recipe name or by dotted import path (as TRL's GRPO script takes them)."""

import pytest

from kfgrpo.rewards import accuracy_reward, format_reward, get_reward_funcs


def test_names_and_dotted_paths():
    funcs = get_reward_funcs(["accuracy", "format", "kfgrpo.rewards.format.format_reward", "os.path.basename"])
    assert funcs[:3] == [accuracy_reward, format_reward, format_reward]
    assert funcs[3]("a/b") == "b"  # any importable callable


@pytest.mark.parametrize(
    "name, match",
    [
        ("acuracy", "use one of"),
        ("no_such_package.rewards.fn", "does not import: ModuleNotFoundError"),
        ("kfgrpo.rewards.no_such_fn", "does not import: AttributeError"),
        ("kfgrpo.rewards.REWARD_NAMES", "not a callable"),
    ],
)
def test_bad_reward_names_say_why(name, match):
    with pytest.raises(ValueError, match=match):
        get_reward_funcs([name])
