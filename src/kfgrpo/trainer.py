"""``KFGRPOTrainer``: TRL's ``GRPOTrainer`` for keyframe datasets (``prompt`` + ordered ``images`` per row)."""

from __future__ import annotations

from trl import GRPOTrainer


class KFGRPOTrainer(GRPOTrainer):
    """GRPO on cached keyframes. Frames arrive as an ordered ``images`` list, which TRL's GRPO trains through the
    image path on the HF, vLLM-colocate and vLLM-server backends; model cards are tagged ``kfgrpo``."""

    _tag_names = ["trl", "grpo", "kfgrpo"]
    _name = "KF-GRPO"
