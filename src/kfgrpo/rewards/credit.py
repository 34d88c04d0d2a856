"""The contrastive credit gate (``kf_reward: credit``): how much of a group's success its real frames caused.

A frame-free shortcut does not live inside a group (the right answers of one group are nearly one text); it lives in
*which groups* GRPO reinforces: in a group whose right answer is the cue's letter, GRPO reinforces the letter whether
the policy read the frames or not. The contrastive rollout tells the two apart: a policy that reads its frames
answers worse when they are shuffled, their salient frames swapped or removed (``blind``: the question alone); a
policy that follows the cue answers as well. For a group with real accuracy p > 0 and probe accuracies p̃_j:

    g = max(g_min, agg_j w_j · clip((p − p̃_j) / p, 0, 1)),   w_j = min(1, (α_j / max_k α_k)·(1 + β_s·(S̄ − S̄_j)))

(α_j ``kf_probe_bonus`` as relative probe weights, β_s ``kf_saliency_weight``, g_min ``kf_credit_floor``, agg
``kf_credit_aggregate`` over the group's measured probes). ``max`` (the default) counts the largest drop over order
*and* content probes: a shuffle cannot change a count, so an order probe alone would deny credit to every count
question. Its weakness is measured (docs/benchmarks.md, "Why withholding credit does not stop the cue"): the probe
least like the training input (``blind``) drops most, so it alone pays a group full credit that shuffle and swap
answered as well. ``mean`` pays the average drop, so one probe cannot grant full credit; ``min`` pays only what every
probe took away. After TRL has normalized the rewards, the group's *positive* advantages are
multiplied by g; negative ones stay (a wrong answer is still wrong). Unlike a reward constant (T-GRPO, the method
spec's group rule), which TRL's group std divides out, a multiplier after normalization cannot be divided out: it
withholds reinforcement from exactly the right answers the frames did not cause. A probe the policy cannot survive
(p̃ = 0, weight 1) gives g = 1, GRPO's advantages exactly; a group answered as well without its frames gets g = g_min.
"""

from __future__ import annotations

import torch


def probe_weights(alphas, saliency_gap: torch.Tensor, saliency_weight: float = 0.0) -> torch.Tensor:
    """w: [groups, P] in [0, 1] from the probe weights α_j (relative: divided by the largest) and the saliency gap."""
    alphas = torch.as_tensor(alphas, dtype=saliency_gap.dtype, device=saliency_gap.device).view(1, -1)
    w = (alphas / alphas.max().clamp_min(1e-12)).expand_as(saliency_gap)
    if saliency_weight:
        w = w * (1.0 + saliency_weight * torch.nan_to_num(saliency_gap, nan=0.0))
    return w.clamp(0.0, 1.0)


AGGREGATES = ("max", "mean", "min")


def contrastive_credit(
    real_accuracy: torch.Tensor,
    probe_accuracy: torch.Tensor,
    weights: torch.Tensor,
    floor: float = 0.0,
    aggregate: str = "max",
) -> torch.Tensor:
    """g: [groups] in [floor, 1] from the real accuracies [groups, G], the probes' mean accuracies [groups, P] (NaN:
    not probed) and the probe weights [groups, P], the weighted drops combined over a group's measured probes by
    ``aggregate`` (max, mean or min). A group with p ≤ 0 or no probe measured gets 1 (nothing to gate)."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    p = torch.nanmean(real_accuracy, dim=1, keepdim=True)  # [groups, 1]
    drop = ((p - probe_accuracy) / p.clamp_min(1e-12)).clamp(0.0, 1.0)
    measured = ~torch.isnan(probe_accuracy)
    weighted = weights * torch.nan_to_num(drop, nan=0.0)  # in [0, 1]
    if aggregate == "max":
        credit = torch.where(measured, weighted, torch.zeros_like(weighted)).amax(dim=1)
    elif aggregate == "min":
        credit = torch.where(measured, weighted, torch.ones_like(weighted)).amin(dim=1)
    else:
        credit = torch.where(measured, weighted, torch.zeros_like(weighted)).sum(dim=1) / measured.sum(1).clamp_min(1)
    credit = credit.clamp_min(floor)
    gated = (p.squeeze(1) > 0) & measured.any(dim=1)
    return torch.where(gated, credit, torch.ones_like(credit))


def positive_advantages_times(advantages: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Positive advantages multiplied by ``factor`` (per completion); the others unchanged."""
    return torch.where(advantages > 0, advantages * factor, advantages)
