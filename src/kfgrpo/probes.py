"""Perturbed frame sets for KF-GRPO probes: pure functions of a row's frames, saliency and distractors.

Each returns ``(frames, saliency)`` for the perturbed set. Order probes (``shuffle``, ``reverse``) keep the frames
and change their order. Content probes act on the ⌈ηK⌉ most salient frames (at least one frame always stays):
``swap_salient`` replaces them with the lowest-saliency candidates (``distractor_images``) and re-sorts by time,
``drop_salient`` removes them, ``drop_random`` removes ⌈ηK⌉ random frames. Rows without TAD columns fall back:
without ``saliency``, ``swap_salient`` and ``drop_salient`` act on random frames; without ``distractor_images``,
``swap_salient`` drops the frames instead. The prompt text (including stated timestamps) is never changed.
"""

from __future__ import annotations

import math
import random


def _count(k: int, fraction: float) -> int:
    return min(max(1, math.ceil(fraction * k)), max(k - 1, 0))


def _targets(k: int, n: int, saliency, rng: random.Random) -> list[int]:
    if saliency is not None and len(saliency) == k:
        return sorted(sorted(range(k), key=lambda i: (-saliency[i], i))[:n])
    return sorted(rng.sample(range(k), n))


def perturb(
    kind: str,
    frames: list,
    rng: random.Random,
    saliency=None,
    timestamps=None,
    distractors=None,
    distractor_timestamps=None,
    distractor_saliency=None,
    fraction: float = 0.5,
):
    """The ``kind`` probe of one row; returns ``(frames, saliency_or_None)``."""
    k = len(frames)
    sal = list(saliency) if saliency is not None and len(saliency) == k else None
    if kind in ("shuffle", "reverse"):
        order = list(range(k))[::-1] if kind == "reverse" else list(range(k))
        if kind == "shuffle" and k > 1:
            while order == list(range(k)):  # a shuffle that keeps the order probes nothing
                rng.shuffle(order)
        return [frames[i] for i in order], ([sal[i] for i in order] if sal else None)
    n = _count(k, fraction)
    if n == 0:
        return list(frames), sal
    if kind == "drop_random":
        drop = set(rng.sample(range(k), n))
    elif kind in ("drop_salient", "swap_salient"):
        drop = set(_targets(k, n, sal, rng))
    else:
        raise ValueError(f"unknown probe {kind!r}")
    kept = [i for i in range(k) if i not in drop]
    if kind != "swap_salient" or not distractors:
        return [frames[i] for i in kept], ([sal[i] for i in kept] if sal else None)
    # swap: the dropped frames make room for distractors; everything re-sorted by time when times are known
    m = min(n, len(distractors))
    items = [(timestamps[i] if timestamps else i, frames[i], sal[i] if sal else None) for i in kept]
    for j in range(m):
        t = distractor_timestamps[j] if distractor_timestamps else k + j
        s = distractor_saliency[j] if distractor_saliency else 0.0
        items.append((t, distractors[j], s))
    if timestamps and distractor_timestamps:
        items.sort(key=lambda x: x[0])
    return [x[1] for x in items], ([x[2] for x in items] if sal else None)
