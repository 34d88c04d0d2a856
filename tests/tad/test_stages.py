"""Sanity tests of the three TAD stages (method spec §2.7)."""

import numpy as np
import pytest
import torch

from kfgrpo.tad import detect_apexes, distill, priority_scores, soft_apex_score, uniform_positions, variation_scores
from kfgrpo.tad.stages import default_window


def _segments(bounds, dim=8):
    n = bounds[-1]
    f = np.zeros((n, dim))
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        f[a:b, i % dim] = 1.0
    return f


@pytest.mark.parametrize("bounds", [[0, 10, 25, 40, 60], [0, 5, 30, 31, 50], [0, 3, 7, 12, 18, 25, 33, 40]])
@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_constant_segments_give_apexes_exactly_at_the_cuts(bounds, sigma):
    f = _segments(bounds)
    _, smooth, norm = variation_scores(f, sigma=sigma)
    apexes = detect_apexes(smooth, norm, window=1)
    cuts = [b for b in bounds[1:-1]]
    if min(np.diff(bounds)) > 2:
        assert list(apexes) == cuts
    else:  # cuts closer than the NMS distance: the stronger one wins, every apex is still on a cut
        assert set(apexes) <= set(cuts) and len(apexes) >= len(cuts) - 1


def test_noise_gives_few_apexes_and_near_uniform_fill():
    rng = np.random.default_rng(0)
    n, k = 200, 8
    f = rng.normal(size=(n, 64))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    _, smooth, norm = variation_scores(f)
    w = default_window(n, k)
    apexes = detect_apexes(smooth, norm, w)
    assert len(apexes) <= n // (w + 1) + 1  # NMS-limited
    prio, _ = priority_scores(norm, soft_apex_score(smooth, norm, w))
    pos, _ = distill(prio, np.array([], dtype=int), k, apex_fraction=0.0)
    gaps = np.diff(np.concatenate([[0], pos, [n - 1]]))
    assert gaps.max() < 2.5 * n / k  # no large hole: coverage close to uniform
    assert np.abs(pos - uniform_positions(n, k)).mean() < n / k / 2


def test_distill_apexes_first_then_fill_chronological():
    n, k = 40, 6
    prio = np.zeros(n)
    apexes = np.array([5, 12, 20, 33])
    prio[apexes] = [4.0, 3.0, 2.0, 1.0]
    pos, is_apex = distill(prio, apexes, k, apex_fraction=0.5, uniform_mix=1.0)
    assert len(pos) == k and list(pos) == sorted(set(pos.tolist()))
    assert set(pos[is_apex]) == {5, 12, 20}  # ⌈ρK⌉ = 3 apexes, highest priority first; 33 is not a cell's target
    assert is_apex.sum() == 3
    # With snapping, a fill slot whose cell holds the unchosen apex 33 takes it, and it is flagged as an apex.
    pos, is_apex = distill(prio, apexes, k, apex_fraction=0.5, uniform_mix=1.0, snap=apexes)
    assert set(pos[is_apex]) == {5, 12, 20, 33} and is_apex.sum() == 4
    pos, _ = distill(prio, apexes, 50)  # K >= N: every candidate
    assert list(pos) == list(range(n))


def test_distill_min_gap():
    prio = np.linspace(0, 1, 30) ** 4
    pos, _ = distill(prio, np.array([29, 28, 27]), 5, apex_fraction=1.0, min_gap=3)
    assert np.diff(pos).min() >= 3


def test_soft_apex_score_is_high_at_apexes_and_differentiable():
    f = _segments([0, 10, 25, 40])
    _, smooth, norm = variation_scores(f, sigma=1.0)
    alpha = soft_apex_score(smooth, norm, window=2)
    apexes = detect_apexes(smooth, norm, 2)
    others = np.setdiff1d(np.arange(len(alpha)), apexes)
    # At an exact local maximum the local-max gate is σ(δ/τ_2) ≈ 0.5; everywhere else α is lower.
    assert alpha[apexes].min() > 0.45 and alpha[apexes].min() > alpha[others].max() + 0.1
    s = torch.tensor(smooth, requires_grad=True)
    z = torch.tensor(norm, requires_grad=True)
    out = soft_apex_score(s, z, window=2)
    out.sum().backward()
    assert torch.isfinite(s.grad).all() and torch.isfinite(z.grad).all() and s.grad.abs().sum() > 0


def test_priority_and_saliency_ranges():
    norm = np.array([-1.0, 0.0, 2.0, 10.0])
    p, s = priority_scores(norm, np.zeros(4), variation_clip=3.0)
    assert p.tolist() == [0.0, 0.0, 2.0, 3.0]
    assert s.min() == 0.0 and 0.99 < s.max() <= 1.0
    p, _ = priority_scores(norm, np.zeros(4), relevance=np.array([0.0, 1.0, 0.0, 0.0]), lambda_query=0.5)
    assert p[1] == pytest.approx(0.5, abs=1e-5)


def test_log_scale_keeps_ranking_large_changes():
    norm = np.array([-2.0, 0.0, 1.0, 3.0, 10.0, 40.0])
    p, s = priority_scores(norm, np.zeros(6), variation_log_scale=3.0)
    assert np.all(np.diff(p[1:]) > 0) and p[0] == p[1] == 0.0
    assert p[2] == pytest.approx(3 * np.log(4 / 3)) and p[5] - p[4] > 1.0  # a hard cut still outranks a weaker one
    assert np.diff(s[3:]).min() > 0.1  # saliency spreads the large changes instead of tying them at 1
    clipped, _ = priority_scores(norm, np.zeros(6), variation_clip=3.0)
    assert clipped[3] == clipped[4] == clipped[5]


def test_fill_snaps_to_the_strongest_change_in_its_cell():
    n = 40
    prio = np.zeros(n)
    prio[[10, 26]] = [10.0, 5.0]
    kw = dict(apex_fraction=0.3, uniform_mix=1.0)  # one apex slot (10); two fill slots in the cells of [11, 39)
    plain, _ = distill(prio, np.array([10, 26]), 3, **kw)
    snapped, is_apex = distill(prio, np.array([10, 26]), 3, snap=np.array([10, 26]), **kw)
    assert plain.tolist() == [10, 17, 31]  # cell midpoints
    # the second cut got no apex slot but is still hit; the other cell keeps its slot
    assert snapped.tolist() == [10, 17, 26]
    assert is_apex.tolist() == [True, False, True]  # the snapped slot sits on a detected apex


def test_edge_weight_covers_the_opening_and_closing_stretches():
    n = 40
    prio = np.zeros(n)
    prio[[8, 20, 32]] = 5.0
    apexes = np.array([8, 20, 32])
    flat, _ = distill(prio, apexes, 4, apex_fraction=0.75, edge_weight=1.0)
    edged, _ = distill(prio, apexes, 4, apex_fraction=0.75, edge_weight=2.0)
    assert flat.min() == 8 and edged.min() < 8  # 7 candidates before the first apex now weigh 14 > 11
