"""KF-GRPO probes, in one place: the registry, the perturbed frame sets, their saliency, and the prompt fitted to them.

A probe is a perturbed frame set of one row, shown to the policy with the row's unchanged question. The trainer
(``KFGRPOTrainer``) probes every training group with it; ``kfgrpo eval --probe shuffle`` uses the same code to measure
frame sensitivity on a held-out split.

``perturb`` returns ``(frames, saliency)`` for the perturbed set. Order probes (``shuffle``, ``reverse``) keep the frames
and change their order. Content probes act on the ⌈ηK⌉ most salient frames (at least one frame always stays):
``swap_salient`` replaces them with the lowest-saliency candidates (``distractor_images``) and re-sorts by time,
``drop_salient`` removes them, ``drop_random`` removes ⌈ηK⌉ random frames. ``blind`` removes every frame: the question
alone, the limit of the content probes, which catches a text prior directly (a group answered as well blind as with its
frames is answered from the text). ``identity`` (a control) changes nothing. Rows without TAD columns fall back:
without ``saliency``, ``swap_salient`` and ``drop_salient`` act on random frames; without ``distractor_images``,
``swap_salient`` drops the frames instead. The prompt text (including stated timestamps) is never changed.
"""

from __future__ import annotations

import copy
import math
import random

PROBES = ("shuffle", "reverse", "swap_salient", "drop_salient", "drop_random", "blind", "identity")
ORDER_PROBES = ("shuffle", "reverse")  # same frames, another order; the others change the content
# ``identity`` is a control: the real frames, unchanged. Any signal it produces is noise (a probe that changes nothing
# must leave KF-GRPO's advantages equal to GRPO's; tests/test_trainer.py).


def probe_rng(*key) -> random.Random:
    """A generator seeded by ``key`` (seed, step, rank, row, probe...): reproducible and independent per probe."""
    return random.Random("|".join(str(k) for k in key))


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
    *,
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
    if kind == "identity":
        return list(frames), sal
    if kind == "blind":
        return [], ([] if sal is not None else None)
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


def perturb_row(kind: str, row: dict, rng: random.Random, fraction: float = 0.5):
    """The ``kind`` probe of a TAD cache row (``images`` plus the optional TAD columns)."""
    return perturb(
        kind,
        list(row.get("images") or []),
        rng,
        saliency=row.get("saliency"),
        timestamps=row.get("timestamps"),
        distractors=row.get("distractor_images"),
        distractor_timestamps=row.get("distractor_timestamps"),
        distractor_saliency=row.get("distractor_saliency"),
        fraction=fraction,
    )


def mean_saliency(values) -> float:
    values = list(values) if values is not None else []
    return float(sum(values) / len(values)) if values else float("nan")


def saliency_gap(kind: str, real_saliency, probe_saliency) -> float:
    """S̄(real) − S̄(probe) for content probes (``blind``: S̄(real), every frame removed); 0 for order probes and when
    saliency is unknown."""
    if kind in ORDER_PROBES or probe_saliency is None:
        return 0.0
    real = mean_saliency(real_saliency)
    if kind == "blind" or not len(probe_saliency):
        return 0.0 if math.isnan(real) else real
    return 0.0 if math.isnan(real) else real - mean_saliency(probe_saliency)


def fit_prompt_to_frames(prompt: list[dict], num_frames: int) -> list[dict]:
    """A structured prompt with at most ``num_frames`` image placeholders: extra trailing placeholders are removed with
    the frame label before each (probes that drop frames). String prompts are returned unchanged.

    Frames carry labels when every image has a text part right before it; the question text is never taken for a
    label (with ``question_position: before`` and no ``frame_template`` it is the first part and no text follows)."""
    out = []
    for message in prompt:
        content = message.get("content")
        if isinstance(content, list):
            message = {**message, "content": _fit_parts(list(content), num_frames)}
        out.append(message)
    return out


def _fit_parts(parts: list[dict], num_frames: int) -> list[dict]:
    images = [i for i, part in enumerate(parts) if part.get("type") == "image"]
    n = len(images)
    text_after = any(part.get("type") == "text" for part in parts[images[-1] + 1 :]) if images else False
    labelled = bool(images) and all(i > 0 and parts[i - 1].get("type") == "text" for i in images)
    while n > num_frames:
        j = max(i for i, part in enumerate(parts) if part.get("type") == "image")
        drop = {j, j - 1} if labelled and (j - 1 > 0 or text_after) else {j}
        parts = [part for i, part in enumerate(parts) if i not in drop]
        n -= 1
    return parts


def probe_prompt(prompt: list[dict], frames: list) -> list[dict]:
    """The conversation a probe sends: ``prompt`` fitted to ``frames``, with the frames in its image parts (TRL's
    ``prepare_multimodal_messages``). The text, including stated timestamps, is unchanged."""
    from trl.data_utils import prepare_multimodal_messages

    fitted = fit_prompt_to_frames(copy.deepcopy(prompt), len(frames))
    return prepare_multimodal_messages(fitted, images=list(frames) or None)
