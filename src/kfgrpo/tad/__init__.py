"""Temporal Apex Distillation: variation scoring → apex detection → prioritized distillation of K keyframes."""

from .config import METHODS, TADConfig
from .gumbel import gumbel_topk, plackett_luce_log_prob, relaxed_topk
from .select import CandidateCurve, Selection, select_keyframes
from .stages import detect_apexes, distill, priority_scores, soft_apex_score, uniform_positions, variation_scores

__all__ = [
    "METHODS",
    "CandidateCurve",
    "Selection",
    "TADConfig",
    "detect_apexes",
    "distill",
    "gumbel_topk",
    "plackett_luce_log_prob",
    "priority_scores",
    "relaxed_topk",
    "select_keyframes",
    "soft_apex_score",
    "uniform_positions",
    "variation_scores",
]
