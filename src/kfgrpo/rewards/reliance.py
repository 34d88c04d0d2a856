"""Per-completion frame reliance, and the keyframe reward that ranks completions *within* a group.

Why per completion: the group rule (``kfgrpo.rewards.keyframe``) pays one number per group to every correct
completion, which TRL's group std divides out; nothing there ranks the completions of one group, and a frame-free
shortcut lives exactly there (every correct completion of a question whose answer is the cue's answer is rewarded
alike, whether it read the frames or not). Here every real completion o_i gets its own score.

**Frame reliance** of completion i on probe j, from teacher-forced per-token log-probs of the whole completion
(reasoning and answer) under the real frames (ℓ) and under the probe's frames (ℓ̃):

    δ_t    = clip(ℓ_t − ℓ̃_t, −c, c)                                   (per token, nats; ``kf_reliance_clip``)
    D_ij   = mean of the ⌈ρ·T_i⌉ largest δ_t                            (``kf_reliance_top_fraction`` ρ)
    D_i    = Σ_j w_j·D_ij / Σ_j α_j,  w_j = α_j·(1 + β_s·(S̄(real) − S̄(probe_j)))   (α_j ``kf_probe_bonus``)

D_i > 0: the completion is more likely with the real frames than with the perturbed ones.

**Eligible** completions are correct (accuracy > ``correct_threshold``) and likely under the real frames too (mean
per-token log-prob ≥ ``kf_likelihood_floor``): a completion the policy itself finds unlikely gets nothing, however
much less likely the probe makes it. Per group, with at least two eligible completions whose D spread reaches
``kf_reliance_noise_floor``, each eligible completion gets a centred rank c_i ∈ [−1/2, 1/2] (ties share their mean
rank, so identical completions score alike); every other completion gets c_i = 0. With
``kf_reliance_mixed_groups_only`` (the default) a group whose completions are all correct is not ranked either: there
GRPO's advantages are 0, and TRL's group std would scale the ranks up to the group's only learning signal, paid for D
alone. Measured on the shortcut benchmark (tuning seed): without this guard the ``rank`` reward raised D (0.58 → 0.79
with the policy as scorer, 0.63 → 0.68 with the reference) while entropy rose 4-7× and training accuracy fell from 0.86
to 0.56-0.66. Then, by ``kf_reward``:

* ``rank``: a reward column α·c_i with α = Σ_j α_j. The eligible completions' mean is unchanged (centred), so the
  group baseline is GRPO's; the negative half is capped at the completion's accuracy margin above
  ``correct_threshold``, so a correct completion never scores below an incorrect one with equal other rewards.
  Being within-group, the column survives ``scale_rewards: group | batch | none`` and both
  ``multi_objective_aggregation`` modes.
* ``shape`` (VPPO-style): after TRL's normalisation, positive advantages A_i ← A_i·(1 + κ·c_i).
* ``gate``: after TRL's normalisation, positive advantages A_i ← A_i·g_i, g_i = 1 − exp(−max(D_i, 0)/τ) for an
  eligible completion (0 otherwise): the share of the completion's success credited to the real frames. No group is
  pushed harder than GRPO pushes it; an unearned right answer is not reinforced.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import rankdata, spearmanr

KF_REWARDS = ("group", "rank", "shape", "gate")


def reliance_scores(
    real_logps: torch.Tensor,
    probe_logps: torch.Tensor,
    mask: torch.Tensor,
    *,
    top_fraction: float = 1.0,
    clip: float = math.inf,
    space: str = "logprob",
) -> torch.Tensor:
    """D_ij: [N, P] from per-token log-probs ``real_logps`` [N, T], ``probe_logps`` [P, N, T] and ``mask`` [N, T].

    ``space="logprob"``: per-token gaps ℓ − ℓ̃ (nats). ``space="prob"``: gaps exp(ℓ) − exp(ℓ̃) ∈ [−1, 1], so only a token
    the real frames made likely can score high: a log-prob gap also grows with the token's own uncertainty."""
    if space == "prob":
        gaps = real_logps.exp().unsqueeze(0) - probe_logps.exp()
    elif space == "logprob":
        gaps = real_logps.unsqueeze(0) - probe_logps
    else:
        raise ValueError(f"unknown reliance space {space!r}")
    gaps = gaps.clamp(-clip, clip)  # [P, N, T]
    valid = mask.bool().unsqueeze(0).expand_as(gaps)
    lengths = mask.sum(dim=1).clamp_min(1)  # [N]
    k = torch.ceil(top_fraction * lengths).clamp(1).long()  # tokens kept per completion
    ordered = gaps.masked_fill(~valid, -math.inf).sort(dim=-1, descending=True).values
    ordered = ordered.masked_fill(torch.isinf(ordered), 0.0)
    keep = torch.arange(gaps.size(-1), device=gaps.device).view(1, 1, -1) < k.view(1, -1, 1)
    scores = (ordered * keep).sum(dim=-1) / k.to(gaps.dtype).view(1, -1)  # [P, N]
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

    Zero for ineligible completions and for groups with fewer than two eligible completions or a D spread (max − min)
    below ``noise_floor``; with ``correct`` ([groups, G]), also for groups where every completion is correct."""
    out = torch.zeros_like(reliance)
    for gi in range(reliance.size(0)):
        idx = eligible[gi].nonzero().flatten()
        n = idx.numel()
        if n < 2 or (correct is not None and bool(correct[gi].all())):
            continue
        d = reliance[gi, idx]
        if (d.max() - d.min()).item() < noise_floor or (d.max() - d.min()).item() == 0.0:
            continue
        rank = torch.as_tensor(rankdata(d.double().cpu().numpy(), method="average") - 1.0, dtype=d.dtype)
        out[gi, idx] = rank.to(out.device) / (n - 1) - 0.5
    return out


def rank_reward(centred: torch.Tensor, accuracy: torch.Tensor, alpha: float, *, correct_threshold: float = 0.1):
    """α·c, its negative part capped at the completion's accuracy margin above ``correct_threshold``."""
    margin = (torch.nan_to_num(accuracy, nan=0.0) - correct_threshold).clamp_min(0.0)
    return torch.maximum(alpha * centred, -margin)


def shape_advantages(advantages: torch.Tensor, centred: torch.Tensor, kappa: float) -> torch.Tensor:
    """VPPO-style: positive advantages scaled by 1 + κ·c (clamped at 0); the others unchanged."""
    factor = (1.0 + kappa * centred).clamp_min(0.0)
    return torch.where(advantages > 0, advantages * factor, advantages)


def reliance_gate(reliance: torch.Tensor, eligible: torch.Tensor, scale: float) -> torch.Tensor:
    """g = 1 − exp(−max(D, 0)/τ) for eligible completions, 0 otherwise."""
    g = 1.0 - torch.exp(-reliance.clamp_min(0.0) / max(scale, 1e-12))
    return torch.where(eligible, g, torch.zeros_like(g))


def gate_advantages(advantages: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Positive advantages multiplied by the gate g ∈ [0, 1]; the others unchanged."""
    return torch.where(advantages > 0, advantages * gate, advantages)


def spearman(x: torch.Tensor, y: torch.Tensor) -> float:
    """Spearman's rank correlation (ties averaged); NaN when either side is constant or has < 2 values."""
    x, y = x.double().cpu().numpy(), y.double().cpu().numpy()
    if x.size < 2 or x.min() == x.max() or y.min() == y.max():
        return float("nan")
    return float(spearmanr(x, y).statistic)
