import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kfgrpo.rewards import kf_contrastive_reward
from kfgrpo.rewards.keyframe import keyframe_bonus


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_equal_accuracy_gives_no_bonus_under_the_strict_rule():
    real = t([[1, 0, 1, 0]])
    bonus, _ = keyframe_bonus(real, t([[0.5]]), [0.3], threshold=1.0, strict=True)
    assert bonus.abs().sum() == 0


def test_only_correct_rollouts_get_the_bonus():
    real = t([[1, 0, 1, 0.05], [0, 0, 0, 0]])
    bonus, per_probe = keyframe_bonus(real, t([[0.0, 0.0], [0.0, 0.0]]), [0.3, 0.2], threshold=1.0, strict=True)
    assert torch.allclose(bonus[0], t([0.5, 0, 0.5, 0]))  # 0.05 is below the correct threshold 0.1
    assert bonus[1].abs().sum() == 0  # p = p̃ = 0: strict rule pays nothing
    assert torch.allclose(per_probe[0], t([0.3, 0.2]))


def test_video_r1_rule_is_non_strict_with_mu_0_8():
    real = t([[1, 1, 1, 0]])  # p = 0.75
    bonus, _ = keyframe_bonus(real, t([[0.9375]]), [0.3], threshold=0.8, strict=False)  # 0.75 >= 0.8 * 0.9375
    assert torch.allclose(bonus, t([[0.3, 0.3, 0.3, 0.0]]))
    bonus, _ = keyframe_bonus(real, t([[0.95]]), [0.3], threshold=0.8, strict=False)
    assert bonus.abs().sum() == 0


def test_soft_rule_and_saliency_weight():
    real = t([[1, 1, 0, 0]])  # p = 0.5
    bonus, per_probe = keyframe_bonus(real, t([[0.25]]), [0.4], rule="soft")
    assert torch.allclose(per_probe, t([[0.4 * 0.5]]))
    bonus, per_probe = keyframe_bonus(real, t([[0.0]]), [0.3], saliency_gap=t([[0.4]]), saliency_weight=0.5)
    assert torch.allclose(per_probe, t([[0.3 * 1.2]])) and torch.allclose(bonus, t([[0.36, 0.36, 0, 0]]))


def test_likelihood_mode():
    real = t([[1, 0]])
    bonus, _ = keyframe_bonus(real, t([[0.2, -0.1]]), [0.3, 0.3], mode="likelihood", margin=0.0)
    assert torch.allclose(bonus, t([[0.3, 0.0]]))
    bonus, _ = keyframe_bonus(real, t([[0.5]]), [0.3], mode="likelihood", rule="soft", scale=2.0)
    assert torch.allclose(bonus, t([[0.075, 0.0]]))


@settings(max_examples=200, deadline=None)
@given(
    real=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    probe=st.lists(st.floats(0, 1), min_size=2, max_size=2),
    gap=st.lists(st.floats(-1, 1), min_size=2, max_size=2),
    rule=st.sampled_from(["hard", "soft"]),
)
def test_bonus_range(real, probe, gap, rule):
    bonus, _ = keyframe_bonus(t([real]), t([probe]), [0.3, 0.2], rule=rule, saliency_gap=t([gap]), saliency_weight=0.5)
    assert (bonus >= 0).all() and (bonus <= 0.5 * 1.5 + 1e-6).all()


def test_placeholder_column_is_ignored_by_trl():
    assert kf_contrastive_reward(["a", "b"]) == [None, None]
