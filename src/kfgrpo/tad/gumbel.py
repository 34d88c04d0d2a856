"""Stochastic, differentiable keyframe selection: Gumbel-top-k sampling from a Plackett–Luce policy over priorities.

Sampling g_t ~ Gumbel(0, 1) and taking the top-K of (P_t/τ + g_t), in descending order, draws an ordered subset from
the Plackett–Luce distribution with logits P/τ, whose exact log-probability is

    log π(S) = Σ_j [ P_{s_j}/τ − log Σ_{t ∉ {s_1..s_{j−1}}} exp(P_t/τ) ].

That log-probability is differentiable in P, so a selector can be trained by policy gradient (−A·log π(S));
:func:`relaxed_topk` gives a straight-through k-hot mask for supervised signals.
"""

from __future__ import annotations

import torch


def sample_gumbel(like: torch.Tensor, generator: torch.Generator | None = None, eps: float = 1e-20) -> torch.Tensor:
    """Standard Gumbel noise shaped like ``like``: −log(−log U), U ~ Uniform(0, 1)."""
    u = torch.rand(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return -torch.log((-torch.log(u.clamp_min(eps))).clamp_min(eps))


def plackett_luce_log_prob(scores: torch.Tensor, order: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Exact log-probability of drawing ``order`` (K distinct indices, in draw order) from PL(``scores``/τ)."""
    logits = scores / tau
    k, n = order.shape[-1], logits.shape[-1]
    picked = torch.nn.functional.one_hot(order, n).to(torch.bool)  # (K, N)
    removed = torch.cumsum(picked, dim=0) - picked.to(torch.long)  # removed before step j
    masked = logits.expand(k, n).masked_fill(removed.to(torch.bool), float("-inf"))
    return (logits[order] - torch.logsumexp(masked, dim=-1)).sum()


def gumbel_topk(scores: torch.Tensor, k: int, tau: float = 1.0, generator: torch.Generator | None = None):
    """Samples K indices (in draw order) from PL(``scores``/τ); returns ``(order, log_prob)``."""
    order = torch.topk(scores.detach() / tau + sample_gumbel(scores, generator), k).indices
    return order, plackett_luce_log_prob(scores, order, tau)


def relaxed_topk(
    scores: torch.Tensor, k: int, tau: float = 1.0, generator: torch.Generator | None = None, hard: bool = True
) -> torch.Tensor:
    """A k-hot selection mask from Gumbel-perturbed scores: k successive softmaxes, each with the mass of the previous
    picks removed (a relaxed top-k). ``hard=True`` returns the exact top-k mask with the relaxed gradient
    (straight-through)."""
    logits = scores / tau + sample_gumbel(scores, generator)
    soft = torch.zeros_like(scores)
    keep = torch.zeros_like(scores)
    for _ in range(k):
        p = torch.softmax(logits + torch.log1p(-keep.clamp(max=1 - 1e-6)), dim=-1)
        keep = keep + p
        soft = soft + p
    if not hard:
        return soft
    mask = torch.zeros_like(scores).scatter(-1, torch.topk(logits.detach(), k).indices, 1.0)
    return mask + soft - soft.detach()
