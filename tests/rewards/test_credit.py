"""The contrastive credit gate from known accuracies (kfgrpo.rewards.credit)."""

import math

import pytest
import torch

from kfgrpo.rewards.credit import contrastive_credit, positive_advantages_times, probe_weights

NAN = float("nan")


def test_credit_is_the_largest_weighted_relative_drop_over_probes():
    real = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0]])  # p = 0.5, 0.75, 0.25
    probe = torch.tensor([[0.25, 0.5], [0.75, 0.0], [0.5, 0.25]])  # [groups, (shuffle, count-blind content probe)]
    w = torch.ones(3, 2)
    g = contrastive_credit(real, probe, w)
    # group 0: drops 0.5 and 0 -> 0.5; group 1: a shuffle cannot change it (0), the content probe drops all -> 1;
    # group 2: the probes do as well or better -> 0
    assert g.tolist() == pytest.approx([0.5, 1.0, 0.0])
    assert contrastive_credit(real, probe, torch.tensor([[1.0, 0.5]] * 3)).tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert contrastive_credit(real, probe, w, floor=0.2).tolist() == pytest.approx([0.5, 1.0, 0.2])


def test_mean_and_min_aggregate_over_the_measured_probes_only():
    real = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])  # p = 0.5, 1, 0.5
    # drops: group 0 (0.5, 0, 1): the blind probe (last) alone loses everything; group 1 (0.5, 1, 0.75);
    # group 2: only the last probe measured, drop 0.5
    probe = torch.tensor([[0.25, 0.5, 0.0], [0.5, 0.0, 0.25], [NAN, NAN, 0.25]])
    w = torch.ones(3, 3)
    assert contrastive_credit(real, probe, w, aggregate="max").tolist() == pytest.approx([1.0, 1.0, 0.5])
    assert contrastive_credit(real, probe, w, aggregate="mean").tolist() == pytest.approx([0.5, 0.75, 0.5])
    assert contrastive_credit(real, probe, w, aggregate="min").tolist() == pytest.approx([0.0, 0.5, 0.5])
    # the weights act before aggregating: (0.5·1, 1·0, 0.5·1) -> mean 1/3; the floor after
    w2 = torch.tensor([[1.0, 1.0, 0.5]] * 3)
    assert contrastive_credit(real, probe, w2, aggregate="mean")[0].item() == pytest.approx(1 / 3)
    assert contrastive_credit(real, probe, w, floor=0.2, aggregate="min").tolist() == pytest.approx([0.2, 0.5, 0.5])
    with pytest.raises(ValueError, match="aggregate"):
        contrastive_credit(real, probe, w, aggregate="median")


def test_groups_without_success_or_probes_are_not_gated():
    real = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.5]])
    probe = torch.tensor([[0.0, 0.0], [NAN, NAN], [NAN, 0.5]])
    g = contrastive_credit(real, probe, torch.ones(3, 2))
    assert g.tolist() == pytest.approx([1.0, 1.0, 0.0])  # p = 0; not probed; only the measured probe counts


def test_free_form_accuracy_is_a_mean():
    real = torch.tensor([[0.8, 0.4]])  # p = 0.6
    assert contrastive_credit(real, torch.tensor([[0.3]]), torch.ones(1, 1)).item() == pytest.approx(0.5)


def test_probe_weights_are_relative_and_capped_at_one():
    gap = torch.tensor([[0.0, 0.4, -0.2]])
    assert probe_weights([1.0, 1.0, 1.0], gap).tolist() == [[1.0, 1.0, 1.0]]
    assert probe_weights([0.3, 0.15, 0.3], gap)[0].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert probe_weights([0.3, 0.15, 0.3], gap, 0.5)[0].tolist() == pytest.approx([1.0, 0.6, 0.9])


def test_only_positive_advantages_are_scaled():
    adv = torch.tensor([1.0, -1.0, 0.0, 2.0])
    out = positive_advantages_times(adv, torch.tensor([0.5, 0.5, 0.5, 0.0]))
    assert out.tolist() == [0.5, -1.0, 0.0, 0.0]
    assert not math.isnan(out.sum().item())
