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


@pytest.mark.parametrize(
    "preset,extra,names,expected",
    [
        ("t-grpo", {}, ["accuracy", "format"], 3),  # the Video-R1 baseline trains with its length control
        ("t-grpo", {}, ["accuracy", "format", "length"], 3),  # not twice
        ("t-grpo", {"kf_length_reward": False}, ["accuracy", "format"], 2),
        ("kf-grpo", {}, ["accuracy", "format"], 2),
        ("grpo", {}, ["accuracy"], 1),
    ],
)
def test_t_grpo_preset_adds_video_r1_length_reward(tmp_path, preset, extra, names, expected):
    from kfgrpo.config import KFGRPOConfig
    from kfgrpo.rewards import LengthReward

    cfg = KFGRPOConfig(output_dir=str(tmp_path), kf_preset=preset, num_generations=4, per_device_train_batch_size=4,
                       use_cpu=True, reward_weights=[1.0] * len(names), **extra)  # fmt: skip
    funcs = get_reward_funcs(names, cfg)
    assert len(funcs) == expected == len(cfg.reward_weights)
    assert any(isinstance(f, LengthReward) for f in funcs) == (expected > len(names) or "length" in names)
    if preset == "t-grpo" and not extra:
        length = next(f for f in funcs if isinstance(f, LengthReward))
        assert (length.min_tokens, length.max_tokens, length.bonus) == (320, 512, 0.2)
