"""Model-side arguments shared by ``kfgrpo sft`` and ``kfgrpo train``: TRL's ``ModelConfig`` plus vision freezing."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import ModelConfig

# Attribute names of the vision encoder (ViT + patch merger / projector) in transformers' VLMs:
# Qwen2-VL / Qwen2.5-VL / Qwen3-VL use `visual`, LLaVA-style models `vision_tower` + `multi_modal_projector`.
VISION_MODULE_NAMES = ("visual", "vision_tower", "vision_model", "multi_modal_projector")


@dataclass
class KFModelConfig(ModelConfig):
    """``trl.ModelConfig`` plus ``freeze_vision_modules`` (the name VLM-R1 / R1-V use for the same switch)."""

    freeze_vision_modules: bool = field(
        default=False,
        metadata={
            "help": "Freeze the vision encoder and its projector (train the language model only). The CPU demo needs "
            "it: a random-weight ViT trained at the language model's learning rate collapses, while its frozen "
            "random features already separate the ChronoSynth colours."
        },
    )


def vision_parameters(model):
    """``(name, parameter)`` of every vision-encoder parameter (any name component in ``VISION_MODULE_NAMES``)."""
    for name, param in model.named_parameters():
        if any(part in VISION_MODULE_NAMES for part in name.split(".")):
            yield name, param


def freeze_vision_modules(model) -> int:
    """Sets ``requires_grad=False`` on the vision encoder; returns how many parameters were frozen.

    Call it before ``trainer.train()``: the optimizer is built there from parameters that require grad.
    """
    frozen = 0
    for _, param in vision_parameters(model):
        param.requires_grad_(False)
        frozen += param.numel()
    if not frozen:
        raise ValueError(f"freeze_vision_modules: no parameter of {type(model).__name__} under {VISION_MODULE_NAMES}")
    return frozen
