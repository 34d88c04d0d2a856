"""Per-completion frame reliance, and the keyframe reward that ranks completions *within* a group.

Why per completion: the group rule (``kfgrpo.rewards.keyframe``) pays one number per group to every correct
completion, which TRL's group std divides out; nothing there ranks the completions of one group, and a frame-free
shortcut lives exactly there (every correct completion of a question whose answer is the cue's answer is rewarded
alike, whether it read the frames or not). Here every real completion o_i gets its own score.

**Frame reliance** of completion i on probe j, from teacher-forced per-token log-probs of the whole completion
(reasoning and answer) under the real frames (ℓ) and under the probe's frames (ℓ̃):

    δ_t    = exp(ℓ_t) − exp(ℓ̃_t) ∈ [−1, 1]            (``kf_reliance_space: prob``, the default)
           = clip(ℓ_t − ℓ̃_t, −c, c)                    (``logprob``: nats, ``kf_reliance_clip`` c)
    D_ij   = (sum of the k largest δ_t) / k             (``kf_reliance_top_tokens`` k; a completion shorter than k
                                                          counts its missing tokens as 0)
    D_i    = Σ_j w_j·D_ij / Σ_j α_j,  w_j = α_j·(1 + β_s·(S̄(real) − S̄(probe_j)))   (α_j ``kf_probe_bonus``)

D_i > 0: the completion is more likely with the real frames than with the perturbed ones. A fixed k (not a share of
the completion's length) keeps D independent of how much text surrounds the frame-dependent tokens: with a share,
D fell as the reasoning grew, so cutting the reasoning raised D, a lever a policy could pull.

**Eligible** completions are correct (accuracy > ``correct_threshold``) and likely under the real frames too (mean
per-token log-prob ≥ ``kf_likelihood_floor``): a completion the policy itself finds unlikely gets nothing, however
much less likely the probe makes it. Per group, the eligible completions are ranked by D, and completions whose D lie
within ``kf_reliance_noise_floor`` of each other (chained) tie: batching noise never orders two completions. Each
eligible completion gets a centred rank c_i ∈ [−1/2, 1/2] (ties share their mean rank); a group with fewer than two
distinct D levels, and every ineligible completion, gets c_i = 0. ``rank`` skips groups whose completions are all
correct with ``kf_reliance_mixed_groups_only`` (the default; ``shape`` and ``gate`` only act on positive
advantages, which an all-correct group does not have): there GRPO's advantages are 0, and TRL's group std would scale
the ranks up to the group's only learning signal, paid for D alone. Measured on the shortcut benchmark (tuning seed):
without this guard the ``rank`` reward raised D (0.58 → 0.79 with the policy as scorer, 0.63 → 0.68 with the
reference) while entropy rose 4-7× and training accuracy fell from 0.86 to 0.56-0.66. Then, by ``kf_reward``
(``kfgrpo.rewards.rules``):

* ``rank``: a reward column α·c_i with α = Σ_j α_j. The eligible completions' mean is unchanged (centred), so the
  group baseline is GRPO's; the negative half is capped so that, weighted as TRL sums the columns, a correct
  completion never scores below an incorrect one with equal other rewards: w_kf·α·c_i ≥ −w_acc·(acc_i −
  ``correct_threshold``). It needs ``multi_objective_aggregation: sum_then_normalize`` (TRL's default): under
  ``normalize_then_sum`` TRL z-scores each column per group, which would give the ranks the weight of accuracy.
* ``shape`` (VPPO-style): after TRL's normalisation, positive advantages A_i ← A_i·(1 + κ·c_i).
* ``gate``: after TRL's normalisation, positive advantages of *correct* completions A_i ← A_i·g_i, g_i = 1 −
  exp(−max(D_i, 0)/τ) when eligible, 0 when correct but below the likelihood floor: the share of the completion's
  success credited to the real frames. Incorrect completions keep their advantage (a better-formatted wrong answer
  still learns its format).
"""

from __future__ import annotations

import math

import torch
from scipy.stats import rankdata, spearmanr


def reliance_scores(
    real_logps: torch.Tensor,
    probe_logps: torch.Tensor,
    mask: torch.Tensor,
    *,
    top_tokens: int = 16,
    clip: float | None = None,
    space: str = "logprob",
) -> torch.Tensor:
    """D_ij: [N, P] from per-token log-probs ``real_logps`` [N, T], ``probe_logps`` [P, N, T] and ``mask`` [N, T]:
    the sum of the ``top_tokens`` largest per-token gaps divided by ``top_tokens`` (missing tokens count 0).

    ``space="logprob"``: per-token gaps ℓ − ℓ̃ (nats). ``space="prob"``: gaps exp(ℓ) − exp(ℓ̃) ∈ [−1, 1], so only a token
    the real frames made likely can score high: a log-prob gap also grows with the token's own uncertainty."""
    if space == "prob":
        gaps = real_logps.exp().unsqueeze(0) - probe_logps.exp()
    elif space == "logprob":
        gaps = real_logps.unsqueeze(0) - probe_logps
    else:
        raise ValueError(f"unknown reliance space {space!r}")
    if clip is not None:
        gaps = gaps.clamp(-clip, clip)  # [P, N, T]
    valid = mask.bool().unsqueeze(0).expand_as(gaps)
    ordered = gaps.masked_fill(~valid, -math.inf).sort(dim=-1, descending=True).values
    ordered = ordered.masked_fill(torch.isinf(ordered), 0.0)[..., :top_tokens]  # a short completion: zeros after T
    scores = ordered.sum(dim=-1) / float(top_tokens)  # [P, N]
    return scores.T.contiguous()


def combine_probes(scores: torch.Tensor, alphas, saliency_gap: torch.Tensor | None = None, saliency_weight=0.0):
    """D_i: [N] from D_ij [N, P], the per-probe weights α_j and the per-completion saliency gap [N, P]."""
    alphas = torch.as_tensor(alphas, dtype=scores.dtype, device=scores.device).view(1, -1)
    weights = alphas.expand_as(scores)
    if saliency_gap is not None and saliency_weight:
        weights = weights * (1.0 + saliency_weight * torch.nan_to_num(saliency_gap, nan=0.0)).clamp_min(0.0)
    return (scores * weights).sum(dim=1) / alphas.sum().clamp_min(1e-12)


def eligible_mask(accuracy: torch.Tensor, real_logp: torch.Tensor, *, correct_threshold=0.1, floor=-math.inf):
    """Correct completions that are also likely under the real frames (NaN accuracy counts as not correct)."""
    return (torch.nan_to_num(accuracy, nan=-math.inf) > correct_threshold) & (real_logp >= floor)


def centred_ranks(
    reliance: torch.Tensor,
    eligible: torch.Tensor,
    *,
    noise_floor: float = 0.0,
    correct: torch.Tensor | None = None,
) -> torch.Tensor:
    """c: [groups, G] in [−1/2, 1/2]; the rank of D among a group's eligible completions, ties averaged, centred.

    Completions whose D differ by less than ``noise_floor`` from a neighbour in sorted order tie (the same level), so
    noise never ranks two completions. Zero for ineligible completions and for groups with fewer than two levels;
    with ``correct`` ([groups, G]), also for groups where every completion is correct."""
    out = torch.zeros_like(reliance)
    for gi in range(reliance.size(0)):
        idx = eligible[gi].nonzero().flatten()
        n = idx.numel()
        if n < 2 or (correct is not None and bool(correct[gi].all())):
            continue
        levels = noise_levels(reliance[gi, idx].double().cpu().numpy(), noise_floor)
        if levels.max() == levels.min():
            continue
        rank = torch.as_tensor(rankdata(levels, method="average") - 1.0, dtype=reliance.dtype)
        out[gi, idx] = rank.to(out.device) / (n - 1) - 0.5
    return out


def noise_levels(values, noise_floor: float):
    """Integer levels of ``values``: sorted, a new level starts where the step to the previous value reaches
    ``noise_floor`` (a step of exactly 0 never does); values in one level tie."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    steps = np.diff(values[order])
    new = (steps >= noise_floor) & (steps > 0)
    levels = np.empty(len(values), dtype=int)
    levels[order] = np.concatenate([[0], np.cumsum(new)])
    return levels


def rank_reward(
    centred: torch.Tensor,
    accuracy: torch.Tensor,
    alpha: float,
    *,
    correct_threshold: float = 0.1,
    accuracy_weight: float = 1.0,
    column_weight: float = 1.0,
):
    """α·c, its negative part capped so that ``column_weight``·α·c ≥ −``accuracy_weight``·(acc − ``correct_threshold``):
    weighted as TRL sums the columns, a correct completion never falls below an incorrect one."""
    margin = (torch.nan_to_num(accuracy, nan=0.0) - correct_threshold).clamp_min(0.0)
    return torch.maximum(alpha * centred, -margin * accuracy_weight / max(column_weight, 1e-12))


def shape_factor(centred: torch.Tensor, kappa: float) -> torch.Tensor:
    """VPPO-style: the factor 1 + κ·c (clamped at 0) on a completion's positive advantage."""
    return (1.0 + kappa * centred).clamp_min(0.0)


def reliance_gate(
    reliance: torch.Tensor, eligible: torch.Tensor, scale: float, correct: torch.Tensor | None = None
) -> torch.Tensor:
    """g = 1 − exp(−max(D, 0)/τ) for eligible completions, 0 for other correct ones, 1 for incorrect ones (given
    ``correct``; without it every ineligible completion gets 0)."""
    g = 1.0 - torch.exp(-torch.nan_to_num(reliance, nan=0.0).clamp_min(0.0) / max(scale, 1e-12))
    other = torch.zeros_like(g) if correct is None else (~correct).to(g.dtype)
    return torch.where(eligible, g, other)


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant or has < 2 values."""
    x, y = x.double().cpu().numpy(), y.double().cpu().numpy()
    if x.size < 2 or x.min() == x.max() or y.min() == y.max():
        return float("nan")
    return float(spearmanr(x, y).statistic)
