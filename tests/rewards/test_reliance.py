"""Per-completion frame reliance and the within-group keyframe reward, from known inputs."""

import math

import pytest
import torch

from kfgrpo.rewards.credit import positive_advantages_times
from kfgrpo.rewards.reliance import (
    centred_ranks,
    combine_probes,
    eligible_mask,
    rank_reward,
    reliance_gate,
    reliance_scores,
    shape_factor,
    spearman,
)


def test_reliance_is_the_top_k_sum_over_k_of_clipped_gaps_with_the_right_sign():
    real = torch.tensor([[-0.1, -0.2, -0.3, -0.4], [-1.0, -1.0, 0.0, 0.0]])
    probe = torch.tensor([[[-3.1, -0.2, -0.4, -9.9], [-1.0, -2.0, 0.0, 0.0]]])  # one probe
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    # gaps row 0: 3.0, 0.0, 0.1, 9.5 -> clipped at 2: 2, 0, 0.1, 2; top 2: (2 + 2) / 2 = 2
    # gaps row 1 (2 valid tokens): 0, 1 -> top 2: (1 + 0) / 2
    d = reliance_scores(real, probe, mask, top_tokens=2, clip=2.0)
    assert d.shape == (2, 1)
    assert d[:, 0].tolist() == pytest.approx([2.0, 0.5])
    # k = 4, no clip: row 1 has 2 tokens, its missing ones count 0
    d = reliance_scores(real, probe, mask, top_tokens=4)
    assert d[:, 0].tolist() == pytest.approx([(3.0 + 0 + 0.1 + 9.5) / 4, 1.0 / 4])
    # a probe that makes the completion *more* likely gives a negative reliance
    d = reliance_scores(real, real.unsqueeze(0) + 0.5, mask, top_tokens=2)
    assert d[:, 0].tolist() == pytest.approx([-0.5, -0.5])


def test_reliance_does_not_grow_when_the_reasoning_is_cut():
    """m frame-dependent tokens (gap 0.8) among T tokens: D is the same for T = 8 and T = 64 (with a share of T, as
    before, D fell as T grew, so cutting the reasoning raised D)."""

    def d(t, m=4, k=16):
        real = torch.zeros(1, t)
        probe = torch.zeros(1, 1, t)
        probe[0, 0, :m] = -0.8
        return reliance_scores(real, probe, torch.ones(1, t), top_tokens=k)[0, 0].item()

    assert d(8) == pytest.approx(d(64)) == pytest.approx(4 * 0.8 / 16)
    assert d(4) <= d(64)  # a completion of only its frame tokens gains nothing either


def test_identical_frames_give_zero_reliance():
    real = torch.randn(3, 5)
    assert torch.equal(reliance_scores(real, real.unsqueeze(0), torch.ones(3, 5)), torch.zeros(3, 1))


def test_probes_combine_with_alpha_and_saliency_weights():
    scores = torch.tensor([[1.0, 3.0]])
    assert combine_probes(scores, [0.3, 0.3]).item() == pytest.approx(2.0)
    assert combine_probes(scores, [0.3, 0.1]).item() == pytest.approx((0.3 + 0.3) / 0.4)
    # a content probe that removed saliency 0.4 weighs (1 + 0.5·0.4) = 1.2
    gap = torch.tensor([[0.0, 0.4]])
    assert combine_probes(scores, [0.3, 0.3], gap, 0.5).item() == pytest.approx((0.3 * 1 + 0.3 * 1.2 * 3) / 0.6)


def test_centred_ranks_order_eligible_completions_and_tie_identical_ones():
    d = torch.tensor([[0.1, 0.5, 0.3, 9.0], [0.2, 0.2, 0.7, 0.0]])
    ok = torch.tensor([[True, True, True, False], [True, True, True, False]])
    c = centred_ranks(d, ok)
    assert c[0].tolist() == pytest.approx([-0.5, 0.5, 0.0, 0.0])  # the ineligible 9.0 is not ranked
    assert c[1].tolist() == pytest.approx([-0.25, -0.25, 0.5, 0.0])  # ties share their mean rank
    assert c.sum(dim=1).tolist() == pytest.approx([0.0, 0.0])  # centred


def test_equal_reliance_single_correct_or_spread_below_the_noise_floor_gives_a_zero_column():
    ok = torch.ones(1, 4, dtype=torch.bool)
    assert torch.equal(centred_ranks(torch.full((1, 4), 0.7), ok), torch.zeros(1, 4))
    one = torch.tensor([[True, False, False, False]])
    assert torch.equal(centred_ranks(torch.tensor([[0.1, 0.2, 0.3, 0.4]]), one), torch.zeros(1, 4))
    close = torch.tensor([[0.5, 0.5 + 1e-6, 0.5 - 1e-6, 0.5]])
    assert torch.equal(centred_ranks(close, ok, noise_floor=1e-3), torch.zeros(1, 4))


def test_completions_within_the_noise_floor_tie_even_when_the_group_spreads():
    """The group's spread (0.4) is above the floor, but completions 0 and 1 differ by batching noise only: they tie
    (before, only the whole group's spread was checked and they got distinct ranks)."""
    d = torch.tensor([[0.5, 0.5 + 1e-6, 0.1, 0.3]])
    ok = torch.ones(1, 4, dtype=torch.bool)
    c = centred_ranks(d, ok, noise_floor=1e-3)
    assert c[0, 0] == c[0, 1]
    assert c[0].tolist() == pytest.approx([1 / 3, 1 / 3, -0.5, -1 / 6])  # ranks 2.5, 2.5, 0, 1 (of 0..3) / 3 − 1/2


def test_eligibility_needs_a_correct_answer_and_the_likelihood_floor():
    acc = torch.tensor([1.0, 1.0, 0.0, float("nan"), 0.5])
    logp = torch.tensor([-0.2, -3.0, -0.1, -0.1, -0.4])
    assert eligible_mask(acc, logp, correct_threshold=0.1, floor=-1.5).tolist() == [True, False, False, False, True]


def test_rank_reward_keeps_correct_above_incorrect_and_caps_partial_credit():
    c = torch.tensor([-0.5, 0.5, 0.0, -0.5])
    acc = torch.tensor([1.0, 1.0, 0.0, 0.3])
    r = rank_reward(c, acc, 0.6, correct_threshold=0.1)
    assert r.tolist() == pytest.approx([-0.3, 0.3, 0.0, -0.2])  # the 0.3-accuracy answer keeps its 0.2 margin
    assert (acc + r)[[0, 1, 3]].min() >= 0.1 - 1e-6 and (acc + r)[2] <= 0.1


def test_rank_reward_cap_is_in_the_weighted_units_trl_sums():
    """reward_weights [0.2 (accuracy), 1 (column)]: the cap must hold for 0.2·acc + 1·column, not acc + column."""
    c = torch.tensor([-0.5, 0.5, 0.0, 0.0])
    acc = torch.tensor([1.0, 1.0, 0.0, 0.0])
    r = rank_reward(c, acc, 0.6, correct_threshold=0.1, accuracy_weight=0.2, column_weight=1.0)
    total = 0.2 * acc + r
    assert total[:2].min() >= 0.2 * 0.1 - 1e-6 >= total[2:].max() - 1e-6
    assert r[0].item() == pytest.approx(-0.2 * 0.9)


def test_shaping_and_gating_touch_only_positive_advantages():
    adv = torch.tensor([1.0, 1.0, -1.0, 0.0])
    c = torch.tensor([0.5, -0.5, 0.5, 0.0])
    assert positive_advantages_times(adv, shape_factor(c, 1.0)).tolist() == pytest.approx([1.5, 0.5, -1.0, 0.0])
    assert positive_advantages_times(adv, shape_factor(c, 4.0)).tolist() == pytest.approx([3.0, 0.0, -1.0, 0.0])
    d = torch.tensor([0.5, -0.2, 2.0, 1.0])
    ok = torch.tensor([True, True, True, False])
    g = reliance_gate(d, ok, 0.5)
    assert g.tolist() == pytest.approx([1 - math.exp(-1), 0.0, 1 - math.exp(-4), 0.0])
    assert positive_advantages_times(adv, g).tolist() == pytest.approx([1 - math.exp(-1), 0.0, -1.0, 0.0])


def test_gate_leaves_incorrect_completions_alone():
    """An all-wrong group where a better-formatted wrong answer has a positive advantage: it keeps it (before, every
    ineligible completion was gated to 0, so format learning stopped). A correct one below the likelihood floor gets 0."""
    d = torch.tensor([float("nan"), float("nan"), 0.5, float("nan")])
    eligible = torch.tensor([False, False, True, False])
    correct = torch.tensor([False, False, True, True])
    g = reliance_gate(d, eligible, 0.5, correct=correct)
    assert g.tolist() == pytest.approx([1.0, 1.0, 1 - math.exp(-1), 0.0])


def test_spearman():
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert math.isnan(spearman(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])))


def test_all_correct_groups_are_not_ranked_when_asked():
    d = torch.tensor([[0.1, 0.5, 0.3, 0.2], [0.1, 0.5, 0.3, 0.2]])
    ok = torch.ones(2, 4, dtype=torch.bool)
    correct = torch.tensor([[True, True, True, True], [True, True, True, False]])
    c = centred_ranks(d, ok & correct, correct=correct)
    assert torch.equal(c[0], torch.zeros(4))  # all correct: GRPO leaves it still, so does the reliance reward
    assert c[1].tolist() == pytest.approx([-0.5, 0.5, 0.0, 0.0])


def test_probability_space_gaps_favour_tokens_the_real_frames_made_likely():
    """A confident token (p 0.9 → 0.1) outscores an uncertain one (p 0.05 → 0.005) in probability space, though the
    uncertain one has the larger log-prob gap (2.3 vs 2.2 nats)."""
    real = torch.log(torch.tensor([[0.9], [0.05]]))
    probe = torch.log(torch.tensor([[[0.1], [0.005]]]))
    mask = torch.ones(2, 1)
    d_log = reliance_scores(real, probe, mask, top_tokens=1)[:, 0]
    d_prob = reliance_scores(real, probe, mask, space="prob", top_tokens=1)[:, 0]
    assert d_log[1] > d_log[0]
    assert d_prob.tolist() == pytest.approx([0.8, 0.045])
