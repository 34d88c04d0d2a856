"""kfgrpo: ChronoForge-RL on TRL. Temporal Apex Distillation (keyframes, offline) + KF-GRPO (``KFGRPOTrainer``).

    from kfgrpo import KFGRPOConfig, KFGRPOTrainer, TADConfig, select_keyframes, accuracy_reward, format_reward

Names are imported on first use, so ``import kfgrpo`` (and the ``kfgrpo`` command line) stays light.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "KFGRPOConfig": "kfgrpo.config",
    "KFGRPOTrainer": "kfgrpo.trainer",
    "KFModelConfig": "kfgrpo.model_utils",
    "KFScriptArguments": "kfgrpo.data_utils",
    "TADConfig": "kfgrpo.tad",
    "select_keyframes": "kfgrpo.tad",
    "accuracy_reward": "kfgrpo.rewards",
    "format_reward": "kfgrpo.rewards",
    "kf_contrastive_reward": "kfgrpo.rewards",
    "LengthReward": "kfgrpo.rewards",
    "get_reward_funcs": "kfgrpo.rewards",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kfgrpo' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
