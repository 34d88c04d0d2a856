"""``select_keyframes``: one video in, K chronological keyframes (with timestamps and saliency) out.

Candidates are decoded in one streaming pass at ``candidate_fps``, the last frame included (at least
``min_candidates_per_frame`` · K of them for short videos, at most ``max_candidates``), so exactly K keyframes come
back whenever the video has K decodable frames; features come from
the decoder's YUV planes (``pixel``) or a transformers encoder (``hf:...``). The decoded candidates are held, not
converted; only the K kept frames and the distractors are converted to RGB, already at a patch-aligned size inside
``[min_pixels, max_pixels]`` so that the HF processor and vLLM see identical frames. Memory is bounded by
``max_candidates`` decoded frames, whatever the video's length.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field, replace

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image

from ..video import VideoError, VideoInfo, fit_to_patches, probe, uniform_indices
from .config import METHODS, TADConfig
from .features import PixelFeatures, get_hf_encoder
from .stages import default_window, detect_apexes, distill, priority_scores, soft_apex_score, uniform_positions
from .stages import variation_scores as _variation


@dataclass
class CandidateCurve:
    """TAD's per-candidate signals (all arrays of length N)."""

    frame_indices: np.ndarray
    timestamps: np.ndarray
    variation: np.ndarray  # v: raw multi-scale change
    smoothed: np.ndarray  # ṽ
    normalized: np.ndarray  # v̂
    apex_score: np.ndarray  # α (soft)
    priority: np.ndarray  # P
    saliency: np.ndarray  # s = min-max(P) in [0, 1]
    apexes: np.ndarray  # candidate positions of the detected apexes
    relevance: np.ndarray | None = None  # query relevance r̂ (hf encoder with a text tower and a query)
    peaks: np.ndarray | None = None  # every local maximum of ṽ with v̂ > κ (apexes before NMS): where fill snaps
    distinctiveness: np.ndarray | None = None  # robust z-score of each candidate's distance from the mean feature


@dataclass
class Selection:
    """The keyframes of one video, chronological; ``frames`` are RGB PIL images at the output size."""

    frame_indices: list[int]
    timestamps: list[float]
    saliency: list[float]
    is_apex: list[bool]
    frames: list[Image.Image]
    curve: CandidateCurve
    distractor_indices: list[int] = field(default_factory=list)
    distractor_timestamps: list[float] = field(default_factory=list)
    distractor_saliency: list[float] = field(default_factory=list)
    distractor_frames: list[Image.Image] = field(default_factory=list)
    method: str = "tad"
    info: VideoInfo | None = None
    positions: np.ndarray | None = None  # candidate positions of the keyframes
    short_video: bool = False  # the video has fewer decodable frames than the K asked: every frame was kept


def candidate_indices(
    info: VideoInfo, candidate_fps: float, max_candidates: int, min_candidates: int = 0
) -> list[int]:
    """Frames on a regular grid at ``candidate_fps``, plus the last frame (so a change near the end can be hit).

    A grid shorter than ``min_candidates`` (a short video) or longer than ``max_candidates`` (a long one) is replaced
    by that many frames spread evenly from the first to the last frame, never more than the video has."""
    n = info.num_frames
    if n <= 0:
        return []
    step = info.fps / candidate_fps if info.fps > 0 else 1.0
    grid = np.unique(np.round(np.arange(0, n, max(step, 1.0))).astype(int))
    grid = grid[grid < n].tolist()
    if grid[-1] != n - 1:
        grid.append(n - 1)
    if min_candidates <= len(grid) <= max_candidates:
        return grid
    return uniform_indices(n, min(max_candidates, max(len(grid), min_candidates)))


def _packet_index(path: str) -> tuple[list, list] | None:
    """Decode-order ``(pts, is_keyframe)`` of every video packet, read by demuxing alone (no decoding: ~1 % of a
    decode), and the presentation-order pts. None when the pts cannot name frames (missing or repeated pts): the
    caller then decodes every frame, counting them."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size]
    pts = [p for p, _ in packets]
    if not pts or any(p is None for p in pts) or len(set(pts)) != len(pts):
        return None
    return packets, sorted(pts)


def decode_plan(packets: list, wanted: set) -> list[bool]:
    """Which packets (decode order) must reach the decoder so that every frame whose pts is in ``wanted`` decodes
    exactly as in a full decode.

    A GOP (a keyframe packet and the packets after it, up to the next keyframe) is sent up to its last wanted packet:
    every frame's references come before it in decode order, so what follows is needed only by the next GOP's
    leading pictures (an open GOP: frames after its keyframe in decode order but before it in time), and when one of
    those is wanted the whole GOP is sent. GOPs with nothing wanted are not sent at all (long videos, sparse grids).
    """
    gops: list[list[int]] = []
    for i, (_, key) in enumerate(packets):
        if key or not gops:
            gops.append([])
        gops[-1].append(i)
    send = [False] * len(packets)
    for g, members in enumerate(gops):
        nxt = gops[g + 1] if g + 1 < len(gops) else []
        leading = any(packets[i][0] in wanted and packets[i][0] < packets[nxt[0]][0] for i in nxt)
        hits = [i for i in members if packets[i][0] in wanted]
        last = members[-1] if leading else (hits[-1] if hits else None)
        for i in members:
            send[i] = last is not None and i <= last
    return send


def _decode_candidates(path: str, indices: list[int], cfg: TADConfig, info: VideoInfo, rgb_size=None):
    """(frames held, timestamps, indices found, rgb arrays at ``rgb_size`` or None).

    With ``cfg.decode_skip`` (default) only what the candidates need is decoded: a demux pass maps frame indices to
    pts, GOP tails and GOPs without a candidate are never sent (:func:`decode_plan`), and non-reference frames that
    are not candidates are skipped by the decoder (``skip_frame="NONREF"``, switched per packet). Candidates come
    out bit-identical to a full decode (tests/tad/test_select.py). Otherwise every frame is decoded and counted."""

    def _hold(i, frame):
        held.append(frame)
        stamps.append(float(frame.pts * frame.time_base) if frame.pts is not None else i / info.fps)
        found.append(i)
        if rgb_size is not None:
            rgb.append(scaler.reformat(frame, width=rgb_size[1], height=rgb_size[0], format="rgb24").to_ndarray())

    held, stamps, found, rgb = [], [], [], []
    scaler = VideoReformatter()
    decoded = 0
    try:
        index = _packet_index(path) if cfg.decode_skip else None
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = cfg.decode_thread_type
            stream.codec_context.thread_count = cfg.decode_threads
            if index is not None:
                decoded = _decode_planned(container, stream, index, indices, _hold)
            else:
                decoded = _decode_all(container, stream, indices, found, _hold)
    except av.error.FFmpegError as exc:
        raise VideoError(f"corrupt video stream after {decoded} frames ({type(exc).__name__}: {exc}): {path}") from exc
    if decoded < cfg.min_video_frames:
        raise VideoError(f"too short: {decoded} decodable frame(s), need {cfg.min_video_frames}: {path}")
    if len(found) < cfg.truncation_tolerance * len(indices):
        raise VideoError(f"truncated: {decoded} of {info.num_frames} declared frames decode: {path}")
    return held, stamps, found, (rgb if rgb_size is not None else None)


def _decode_all(container, stream, indices, found, hold) -> int:
    """Every frame decoded, the i-th output frame being frame i; returns the number decoded."""
    wanted = iter(indices)
    target = next(wanted, None)
    decoded, last = 0, None
    for i, frame in enumerate(container.decode(stream)):
        decoded = i + 1
        if target is None:
            break
        if i < target:
            last = (i, frame)
            continue
        hold(i, frame)
        target = next(wanted, None)
    if target is not None and last is not None and (not found or last[0] > found[-1]):
        hold(*last)  # the header promised more frames than decode: the video's real end is a candidate
    return decoded


def _decode_planned(container, stream, index, indices, hold) -> int:
    """Decodes what :func:`decode_plan` sends; frame i is the i-th pts in presentation order. Returns the number of
    frames the stream holds (its packets), the count a full decode would give."""
    packets, order = index
    frame_of = {pts: i for i, pts in enumerate(order)}
    targets = [order[i] for i in indices if i < len(order)]
    if any(i >= len(order) for i in indices) and order[-1] not in targets:
        targets.append(order[-1])  # the header promised more frames than the stream has: its real end is a candidate
    wanted = set(targets)
    send = iter(decode_plan(packets, wanted))
    codec = stream.codec_context
    out, skip = {}, None
    for packet in container.demux(stream):
        if packet.size:
            if not next(send, False):
                continue
            mode = "DEFAULT" if packet.pts in wanted else "NONREF"  # non-candidate non-reference frames: skipped
            if mode != skip:
                codec.skip_frame = skip = mode
        for frame in codec.decode(packet):
            if frame.pts in wanted:
                out[frame.pts] = frame
    for pts in sorted(out):
        hold(frame_of[pts], out[pts])
    return len(order)


def select_keyframes(
    video: str | os.PathLike,
    num_frames: int,
    *,
    candidate_fps: float | None = None,
    method: str = "tad",
    query: str | None = None,
    config: TADConfig | None = None,
    seed: int | None = None,
    distractor_frames: bool = True,
) -> Selection:
    """Selects ``num_frames`` keyframes of ``video``.

    ``method``: ``"tad"`` (deterministic TAD), ``"uniform"`` (qwen-vl-utils' uniform rule on the candidate grid, the
    baseline) or ``"gumbel"`` (a Gumbel-top-k sample from the Plackett–Luce policy over saliency; ``seed`` fixes it).
    ``candidate_fps`` overrides ``config.candidate_fps`` (2.0 by default). ``query`` adds the relevance term when the
    encoder is ``hf:`` with a text tower; with the ``pixel`` encoder it is ignored (a warning says so).
    ``distractor_frames=False`` skips converting the distractors to images (their indices, times and saliency are
    still returned): evaluation never uses them. Raises :class:`kfgrpo.video.VideoError` for unusable videos.
    """
    cfg = config or TADConfig()
    if candidate_fps is not None:
        cfg = replace(cfg, candidate_fps=candidate_fps)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    path = str(video)
    held, curve, info, short_video = decode_and_score(path, num_frames, cfg, query)
    pos, is_apex = pick_positions(curve, num_frames, method, seed, cfg)
    n_dis = cfg.num_distractors if cfg.num_distractors is not None else math.ceil(num_frames / 2)
    rest = np.setdiff1d(np.arange(len(held)), pos)
    dis = np.sort(rest[np.lexsort((rest, curve.saliency[rest]))][:n_dis])  # the lowest-saliency candidates

    sal = curve.saliency
    return Selection(
        frame_indices=[int(curve.frame_indices[p]) for p in pos],
        timestamps=[float(curve.timestamps[p]) for p in pos],
        saliency=[float(sal[p]) for p in pos],
        is_apex=[bool(a) for a in is_apex],
        frames=rgb_frames([held[p] for p in pos], info, cfg),
        curve=curve,
        distractor_indices=[int(curve.frame_indices[p]) for p in dis],
        distractor_timestamps=[float(curve.timestamps[p]) for p in dis],
        distractor_saliency=[float(sal[p]) for p in dis],
        distractor_frames=rgb_frames([held[p] for p in dis], info, cfg) if distractor_frames else [],
        method=method,
        info=info,
        positions=pos,
        short_video=short_video,
    )


def rgb_frames(frames, info: VideoInfo, cfg: TADConfig) -> list[Image.Image]:
    """Decoded frames as RGB images at the output size (sides multiples of ``patch_factor``, pixels within
    ``[min_pixels, max_pixels]``), through one scaler: a frame's own would set up its filters again each time."""
    height, width = fit_to_patches(info.height, info.width, cfg.patch_factor, cfg.min_pixels, cfg.max_pixels)
    scaler = VideoReformatter()
    return [
        scaler.reformat(
            f, width=width, height=height, format="rgb24", interpolation=cfg.resize_interpolation
        ).to_image()
        for f in frames
    ]


def decode_and_score(path: str, num_frames: int, cfg: TADConfig, query: str | None = None):
    """Stages 1–2 for one video: ``(held decoded candidates, CandidateCurve, VideoInfo, short_video)``."""
    info = probe(path)
    if info.num_frames < cfg.min_video_frames:
        raise VideoError(f"too short: {info.num_frames} frame(s), need {cfg.min_video_frames}: {path}")
    min_candidates = math.ceil(cfg.min_candidates_per_frame * num_frames)
    indices = candidate_indices(info, cfg.candidate_fps, cfg.max_candidates, min_candidates)

    encoder = get_hf_encoder(cfg.encoder, cfg.hf_device, cfg.hf_batch_size) if cfg.encoder.startswith("hf:") else None
    held, stamps, found, rgb = _decode_candidates(path, indices, cfg, info, encoder.input_size if encoder else None)
    short_video = len(held) < num_frames
    if short_video:
        warnings.warn(
            f"{path}: only {len(held)} decodable frame(s) for the {num_frames} keyframes asked; all {len(held)} are "
            "kept (Selection.short_video, the cache's `short_video` column)",
            stacklevel=3,
        )
    curve = _score_candidates(held, rgb, stamps, found, encoder, query, num_frames, cfg)
    return held, curve, info, short_video


def _score_candidates(held, rgb, stamps, found, encoder, query, num_frames, cfg: TADConfig) -> CandidateCurve:
    """Stages 1-2: features → multi-scale variation v → apexes and soft apex score α → priority P and saliency s."""
    if encoder is not None:
        feats = encoder.image_features(rgb)
    else:
        feats = PixelFeatures(
            cfg.pixel_grid, cfg.pixel_hist_bins, cfg.pixel_hist_weight, cfg.pixel_hist_power, cfg.pixel_hist_floor
        ).batch(held)
    distinct = None
    if len(feats) > 1:  # how far each candidate is from the video's typical frame (a learned selector's feature)
        dist = np.linalg.norm(feats - feats.mean(axis=0, keepdims=True), axis=1)
        mad = np.median(np.abs(dist - np.median(dist)))
        distinct = np.clip((dist - np.median(dist)) / (cfg.mad_scale * mad + 1e-3), -10.0, 10.0)
    if cfg.center_features and len(feats) > 1:
        # What every candidate shares (letterbox bars, a static background, the encoder's mean embedding) dominates
        # the cosine and hides cuts between similar-looking shots; comparing deviations from the video's mean does not.
        feats = feats - feats.mean(axis=0, keepdims=True)
        feats = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    v, smooth, norm = _variation(
        feats, cfg.scales, cfg.scale_weights, cfg.smoothing_sigma, cfg.mad_scale, cfg.norm_eps
    )
    window = cfg.nms_window or default_window(len(held), num_frames)
    apexes = detect_apexes(smooth, norm, window, cfg.apex_threshold, cfg.curvature_threshold)
    peaks = detect_apexes(smooth, norm, 1, cfg.apex_threshold, cfg.curvature_threshold)  # before NMS: fill snaps here
    alpha = soft_apex_score(smooth, norm, window, cfg.apex_threshold, cfg.soft_tau1, cfg.soft_tau2, cfg.soft_delta)
    relevance = None
    if query:
        if encoder is not None and encoder.has_text_tower:
            relevance = feats @ encoder.text_features(query)
        else:
            warnings.warn("query relevance needs an hf: encoder with a text tower; the query is ignored", stacklevel=3)
    prio, sal = priority_scores(
        norm,
        alpha,
        relevance,
        cfg.lambda_variation,
        cfg.lambda_apex,
        cfg.lambda_query if relevance is not None else 0.0,
        cfg.variation_clip,
        cfg.variation_log_scale,
    )
    return CandidateCurve(
        np.asarray(found), np.asarray(stamps), v, smooth, norm, alpha, prio, sal, apexes, relevance, peaks, distinct
    )


def pick_positions(curve: CandidateCurve, num_frames: int, method: str, seed, cfg: TADConfig):
    """Stage 3 on a scored candidate curve: the chosen candidate positions (chronological) and which of them are
    apexes. ``method`` is tad (the hand-set distillation, or the learned selector that ``cfg.selector_weights``
    names), uniform or gumbel (seeded by ``seed``). ``kfgrpo tad-learn`` calls it for its hand-set baseline."""
    if method == "tad" and cfg.selector_weights:
        from .learned.selector import candidate_features, load_selector

        selector = load_selector(cfg.selector_weights)
        pos = selector.select(candidate_features(curve, cfg.variation_log_scale), num_frames)
        return pos, np.isin(pos, curve.apexes)
    if method == "tad":
        return distill(
            curve.priority,
            curve.apexes,
            num_frames,
            apex_fraction=cfg.apex_fraction,
            gamma=cfg.fill_gamma,
            min_gap=cfg.min_gap,
            use_anchors=cfg.use_anchors,
            uniform_mix=cfg.fill_uniform_mix,
            snap=curve.peaks if cfg.fill_snap else None,
            edge_weight=cfg.fill_edge_weight,
        )
    n = len(curve.saliency)
    if method == "uniform":
        pos = uniform_positions(n, num_frames)
    else:
        import torch

        from .gumbel import gumbel_topk

        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        order, _ = gumbel_topk(torch.as_tensor(curve.saliency), min(num_frames, n), cfg.gumbel_tau, gen)
        pos = np.sort(order.numpy())
    return pos, np.isin(pos, curve.apexes)
