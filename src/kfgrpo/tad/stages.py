"""The three stages of Temporal Apex Distillation, each a small pure function on arrays.

1. :func:`variation_scores` — multi-scale semantic change, Gaussian smoothing, robust (median/MAD) normalisation.
2. :func:`detect_apexes` — local maxima of the smoothed variation (the inflection points of the cumulative semantic
   trajectory) with NMS, threshold and curvature check; :func:`soft_apex_score` is its differentiable counterpart.
3. :func:`distill` — apexes first (up to ⌈ρK⌉, by priority), then coverage fill: the timeline is split at the chosen
   apexes (and the anchors), each segment gets fill slots in proportion to its length, and inside a segment the slots
   sit at the midpoint quantiles of the density P^γ, optionally mixed with a uniform share β (inverse-transform
   sampling); chronological output.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks


def variation_scores(
    features: np.ndarray,
    scales=(1, 2, 4),
    weights=(0.5, 0.3, 0.2),
    sigma: float = 1.0,
    mad_scale: float = 1.4826,
    eps: float = 1e-6,
):
    """``(v, ṽ, v̂)`` for unit-norm ``features`` of shape (N, d).

    v_t = Σ_k w_k (1 − cos(f_t, f_{t−k})) with the first frame repeated as padding; ṽ = Gaussian-smoothed v;
    v̂ = (ṽ − median ṽ) / (mad_scale · MAD ṽ + eps).
    """
    f = np.asarray(features, dtype=np.float64)
    n = len(f)
    v = np.zeros(n)
    for k, w in zip(scales, weights):
        prev = f[np.maximum(np.arange(n) - k, 0)]
        v += w * (1.0 - np.clip(np.sum(f * prev, axis=1), -1.0, 1.0))
    smooth = gaussian_filter1d(v, sigma, mode="nearest") if sigma > 0 and n > 1 else v.copy()
    med = np.median(smooth)
    mad = np.median(np.abs(smooth - med))
    norm = (smooth - med) / (mad_scale * mad + eps)
    return v, smooth, norm


def default_window(num_candidates: int, k: int) -> int:
    return max(1, num_candidates // (2 * max(1, k)))


def detect_apexes(
    smooth: np.ndarray, norm: np.ndarray, window: int, threshold: float = 0.5, curvature_threshold: float = 0.0
) -> np.ndarray:
    """Positions t where ṽ_t is the maximum of ṽ[t−w..t+w] (NMS: the higher peak wins), v̂_t > κ and the curvature
    ṽ_{t+1} − 2ṽ_t + ṽ_{t−1} < −τ_a. The first candidate counts when it is a strict maximum of its window."""
    smooth = np.asarray(smooth, dtype=np.float64)
    if len(smooth) == 0:
        return np.zeros(0, dtype=int)
    # Pad both ends below every value, so that the first and last candidates can be maxima too.
    lo = smooth.min() - 1.0
    padded = np.concatenate([[lo], smooth, [lo]])
    peaks, _ = find_peaks(padded, distance=window + 1)
    curvature = padded[peaks + 1] - 2 * padded[peaks] + padded[peaks - 1]
    keep = (np.asarray(norm)[peaks - 1] > threshold) & (curvature < -curvature_threshold)
    return peaks[keep] - 1


def soft_apex_score(
    smooth, norm, window: int, threshold: float = 0.5, tau1: float = 0.5, tau2: float = 0.05, delta: float = 1e-3
):
    """α_t = σ((v̂_t − κ)/τ_1) · σ((ṽ_t − maxpool_w(ṽ)_t + δ)/τ_2), differentiable in torch.

    Accepts numpy arrays (returns numpy) or torch tensors (returns a tensor that carries gradients)."""
    import torch
    import torch.nn.functional as F

    is_numpy = not isinstance(smooth, torch.Tensor)
    s = torch.as_tensor(smooth, dtype=torch.float64) if is_numpy else smooth
    z = torch.as_tensor(norm, dtype=s.dtype) if is_numpy else norm
    pooled = F.max_pool1d(s[None, None], kernel_size=2 * window + 1, stride=1, padding=window)[0, 0]
    alpha = torch.sigmoid((z - threshold) / tau1) * torch.sigmoid((s - pooled + delta) / tau2)
    return alpha.numpy() if is_numpy else alpha


def priority_scores(
    norm: np.ndarray,
    apex_score: np.ndarray,
    relevance: np.ndarray | None = None,
    lambda_variation: float = 1.0,
    lambda_apex: float = 1.0,
    lambda_query: float = 0.0,
    variation_clip: float | None = None,
    variation_log_scale: float | None = None,
):
    """``(P, s)``: P_t = λ_v·g(max(v̂_t, 0)) + λ_a·α_t + λ_q·r̂_t and saliency s = min-max(P) in [0, 1].

    g clips at ``variation_clip`` (if set), then compresses with c·ln(1 + x/c) for c = ``variation_log_scale`` (if
    set): about x for small changes, logarithmic for large ones, so a hard cut (v̂ ≈ 40) does not outweigh several
    ordinary events yet still outranks a weaker cut (a hard clip would tie them at saliency 1)."""
    vpos = np.maximum(np.asarray(norm, dtype=np.float64), 0.0)
    if variation_clip is not None:
        vpos = np.minimum(vpos, variation_clip)
    if variation_log_scale:
        vpos = variation_log_scale * np.log1p(vpos / variation_log_scale)
    p = lambda_variation * vpos + lambda_apex * np.asarray(apex_score)
    if relevance is not None and lambda_query:
        r = np.asarray(relevance, dtype=np.float64)
        r = (r - r.min()) / (r.max() - r.min() + 1e-6)
        p = p + lambda_query * r
    s = (p - p.min()) / (p.max() - p.min() + 1e-6)
    return p, s


def _free(pos: int, taken: list[int], min_gap: int) -> bool:
    return all(abs(pos - t) >= min_gap for t in taken)


def distill(
    priority: np.ndarray,
    apexes: np.ndarray,
    k: int,
    *,
    apex_fraction: float = 0.5,
    gamma: float = 2.0,
    min_gap: int = 1,
    use_anchors: bool = True,
    uniform_mix: float = 0.0,
    snap: np.ndarray | None = None,
    edge_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Chooses ``k`` candidate positions; returns ``(positions, is_apex)`` in chronological order.

    ``snap``: candidate positions a fill slot may move to inside its cell (TAD passes the local maxima of the
    variation above κ, i.e. every change strong enough to be an apex, before NMS); None keeps the midpoints."""
    p = np.asarray(priority, dtype=np.float64)
    n = len(p)
    if k >= n:
        pos = np.arange(n)
        return pos, np.isin(pos, apexes)
    min_gap = max(1, min_gap)
    # 1. Apexes by descending priority (ties: earlier first), up to ⌈ρK⌉ slots.
    k_apex = min(k, math.ceil(apex_fraction * k))
    chosen: list[int] = []
    for a in sorted((int(a) for a in apexes), key=lambda a: (-p[a], a)):
        if len(chosen) == k_apex:
            break
        if _free(a, chosen, min_gap):
            chosen.append(a)
    # 2. Split the timeline at the chosen apexes (and the anchors) and allocate fill slots by segment length.
    bounds = sorted(set(chosen) | ({0, n - 1} if use_anchors else set()))
    edges = [-1] + bounds + [n]
    segments = [(a + 1, b) for a, b in zip(edges[:-1], edges[1:]) if b - a > 1]  # half-open [start, stop)
    n_fill = k - len(chosen)
    lengths = np.array([b - a for a, b in segments], dtype=np.float64)
    if len(segments):  # the video's ends: no keyframe beyond them, so the farthest point is a whole segment away
        lengths[0] *= edge_weight if segments[0][0] <= 1 else 1.0
        lengths[-1] *= edge_weight if segments[-1][1] >= n - 1 and len(segments) > 1 else 1.0
    quota = n_fill * lengths / lengths.sum() if len(segments) else np.zeros(0)
    alloc = np.floor(quota).astype(int)
    for i in np.argsort(-(quota - alloc), kind="stable")[: n_fill - alloc.sum()]:
        alloc[i] += 1
    # 3. Inside a segment, each slot owns a cell between consecutive quantiles of the fill density (P^γ mixed with a
    #    uniform share β) and sits at the cell's midpoint quantile (inverse-transform sampling); with ``snap``, it
    #    moves to the strongest change inside its cell instead, so a cut that got no apex slot is still hit without
    #    the slot leaving its share of the timeline (no piling onto the plateau that follows an apex).
    weights = np.power(np.maximum(p, 0.0) + 1e-12, gamma)
    weights = (1.0 - uniform_mix) * weights / weights.mean() + uniform_mix
    snap_set = set(int(x) for x in snap) if snap is not None else set()
    for (a, b), m in zip(segments, alloc):
        if m == 0:
            continue
        w = weights[a:b]
        cdf = np.cumsum(w) / w.sum()
        cells = np.minimum(a + np.searchsorted(cdf, np.arange(m + 1) / m), b)
        cells[0], cells[-1] = a, b
        for j, q in enumerate((np.arange(m) + 0.5) / m):
            target = min(a + int(np.searchsorted(cdf, q)), b - 1)
            peaks = [c for c in range(cells[j], max(cells[j + 1], cells[j] + 1)) if c in snap_set]
            peaks = [c for c in peaks if _free(c, chosen, min_gap)]
            if peaks:
                target = max(peaks, key=lambda c: (p[c], -c))
            if _free(target, chosen, min_gap):
                chosen.append(target)
            else:  # nearest free candidate in the segment, higher priority first among equals
                free = [c for c in range(a, b) if _free(c, chosen, min_gap)]
                if free:
                    chosen.append(min(free, key=lambda c: (abs(c - target), -p[c], c)))
    # Slots still open (a segment ran out of room): highest-priority free candidates anywhere.
    for c in sorted(range(n), key=lambda c: (-p[c], c)):
        if len(chosen) >= k:
            break
        if _free(c, chosen, min_gap):
            chosen.append(c)
    pos = np.array(sorted(chosen[:k]), dtype=int)
    return pos, np.isin(pos, apexes)  # a fill slot that snapped onto a detected apex is an apex keyframe too


def uniform_positions(n: int, k: int) -> np.ndarray:
    """qwen-vl-utils' rule on the candidate grid: round(linspace(0, n − 1, k)), de-duplicated."""
    if n <= 0 or k <= 0:
        return np.zeros(0, dtype=int)
    return np.unique(np.round(np.linspace(0, n - 1, min(k, n))).astype(int))
