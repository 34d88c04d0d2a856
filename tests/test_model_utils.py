import pytest
import torch
from transformers import AutoModelForImageTextToText

from kfgrpo.model_utils import freeze_vision_modules, vision_parameters


def test_freeze_vision_modules_freezes_exactly_the_vision_encoder(tiny_model_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    vision = {n for n, _ in vision_parameters(model)}
    assert any(".visual.merger." in f".{n}" for n in vision) and any("patch_embed" in n for n in vision)
    assert not any("language_model" in n or "lm_head" in n for n in vision)
    frozen = freeze_vision_modules(model)
    assert frozen == sum(p.numel() for n, p in model.named_parameters() if n in vision)
    for name, param in model.named_parameters():
        assert param.requires_grad == (name not in vision), name


def test_freeze_vision_modules_refuses_a_model_without_one():
    with pytest.raises(ValueError, match="no parameter"):
        freeze_vision_modules(torch.nn.Linear(2, 2))
