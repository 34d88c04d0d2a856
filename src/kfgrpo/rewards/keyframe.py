"""The contrastive keyframe reward of KF-GRPO (method spec §2.5), as a pure function of group statistics.

For a group (one prompt) with real-frame accuracy p and, per probe j, probe statistic p̃_j:

* sample probes, hard rule: b_j = α_j · 1[p > μ·p̃_j]  (``strict=False``: ≥, Video-R1's code)
* sample probes, soft rule: b_j = α_j · clip((p − μ·p̃_j) / max(p, ε), 0, 1)
* likelihood probes (p̃_j is the per-token log-prob gap Δ_j = ℓ_real − ℓ_probe, nats): hard b_j = α_j·1[Δ_j > m],
  soft b_j = α_j·clip(Δ_j / scale, 0, 1)

Each b_j is scaled by the saliency the probe removed, (1 + β_s·(S̄(real) − S̄(probe_j))) (zero gap for order probes),
and the group's bonus r_kf = Σ_j b_j is paid only to real completions whose accuracy exceeds ``correct_threshold``.

``kf_contrastive_reward`` is the reward column that carries r_kf: [`KFGRPOTrainer`] fills it from its probe rollouts
(so ``reward_weights`` and TRL's per-reward logging apply). Called on its own it has no probes to compare and
returns ``None`` for every completion, which TRL ignores.
"""

from __future__ import annotations

import torch


def keyframe_bonus(
    real_accuracy: torch.Tensor,
    probe_scores: torch.Tensor,
    alphas,
    *,
    threshold: float = 1.0,
    strict: bool = True,
    rule: str = "hard",
    correct_threshold: float = 0.1,
    saliency_gap: torch.Tensor | None = None,
    saliency_weight: float = 0.0,
    mode: str = "sample",
    margin: float = 0.0,
    scale: float = 1.0,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``(per_completion_bonus [groups, G], per_probe_group_bonus [groups, P])``.

    ``real_accuracy``: [groups, G] accuracies of the real completions. ``probe_scores``: [groups, P] mean probe
    accuracy (``mode="sample"``) or log-prob gap (``mode="likelihood"``). ``saliency_gap``: [groups, P] or None.
    """
    alphas = torch.as_tensor(alphas, dtype=real_accuracy.dtype, device=real_accuracy.device)
    p = torch.nanmean(real_accuracy, dim=1, keepdim=True)  # [groups, 1]
    if mode == "sample":
        if rule == "hard":
            passed = (p > threshold * probe_scores) if strict else (p >= threshold * probe_scores)
            value = passed.to(real_accuracy.dtype)
        else:
            value = ((p - threshold * probe_scores) / p.clamp_min(eps)).clamp(0.0, 1.0)
    elif mode == "likelihood":
        if rule == "hard":
            value = (probe_scores > margin).to(real_accuracy.dtype)
        else:
            value = (probe_scores / scale).clamp(0.0, 1.0)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    value = torch.nan_to_num(value, nan=0.0) * alphas
    if saliency_gap is not None and saliency_weight:
        value = value * (1.0 + saliency_weight * torch.nan_to_num(saliency_gap, nan=0.0)).clamp_min(0.0)
    group_bonus = value.sum(dim=1, keepdim=True)  # [groups, 1]
    correct = (real_accuracy > correct_threshold).to(real_accuracy.dtype)
    return group_bonus * correct, value


def kf_contrastive_reward(completions, **kwargs) -> list[None]:
    """Placeholder column for the contrastive keyframe reward; [`KFGRPOTrainer`] writes the values."""
    return [None] * len(completions)
