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


# The tiny model's default attention is sdpa: "eager" shows the recipe's choice reached the loaded model.
COMMON_ARGS = ["--use_cpu", "true", "--bf16", "false", "--save_strategy", "no", "--report_to", "none"]


def test_attn_implementation_reaches_the_model_in_train(tiny_model_dir, frame_cache, tmp_path):
    from kfgrpo.train import cli

    argv = ["--model_name_or_path", tiny_model_dir, "--dataset_name", str(frame_cache), "--output_dir", str(tmp_path)]
    argv += ["--attn_implementation", "eager", "--max_steps", "1", "--per_device_train_batch_size", "4"]
    argv += ["--num_generations", "4", "--max_completion_length", "4", "--kf_preset", "grpo", *COMMON_ARGS]
    assert cli(argv).model.config._attn_implementation == "eager"


def test_attn_implementation_reaches_the_model_in_sft(tiny_model_dir, frame_cache, tmp_path):
    from kfgrpo.sft import cli

    argv = ["--model_name_or_path", tiny_model_dir, "--dataset_name", str(frame_cache), "--output_dir", str(tmp_path)]
    argv += ["--attn_implementation", "eager", "--max_steps", "1", "--per_device_train_batch_size", "4"]
    assert cli([*argv, *COMMON_ARGS]).model.config._attn_implementation == "eager"


def test_attn_implementation_reaches_the_model_in_eval(tiny_model_dir, tmp_path):
    from kfgrpo.eval.run import EvalArgs, EvalModelConfig, _HFBackend

    args = EvalArgs(model=tiny_model_dir, benchmark="canonical", data="m.jsonl", output=str(tmp_path))
    loading = EvalModelConfig(model_name_or_path=tiny_model_dir)
    assert _HFBackend(args, loading).model.config._attn_implementation == "sdpa"
    loading.attn_implementation = "eager"
    assert _HFBackend(args, loading).model.config._attn_implementation == "eager"


def test_model_init_kwargs_cover_the_loading_fields():
    from kfgrpo.model_utils import KFModelConfig, model_init_kwargs

    args = KFModelConfig(model_name_or_path="m", model_revision="v1", dtype="bfloat16", attn_implementation="eager")
    assert model_init_kwargs(args) == dict(revision="v1", dtype="bfloat16", attn_implementation="eager")
