"""Learned keyframe selection: TAD's stage 3 as a small policy trained from a frozen model's answers.

- ``selector.py``: the per-candidate features and the repulsive Plackett–Luce selector (what ``kfgrpo tad`` runs when
  ``TADConfig.selector_weights`` names a ``selector.json``).
- ``training.py``: ``kfgrpo tad-learn``, which trains it (``TADLearnArgs``, ``learn``).
"""

from .selector import FEATURES, LearnedSelector, candidate_features, load_selector, weights_sha256

__all__ = ["FEATURES", "LearnedSelector", "candidate_features", "load_selector", "weights_sha256"]
