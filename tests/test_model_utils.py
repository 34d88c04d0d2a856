from pathlib import Path

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
    from kfgrpo.eval.run import EvalArgs, EvalModelConfig, HFBackend

    args = EvalArgs(model=tiny_model_dir, benchmark="canonical", data="m.jsonl", output=str(tmp_path))
    loading = EvalModelConfig(model_name_or_path=tiny_model_dir)
    assert HFBackend(args, loading).model.config._attn_implementation == "sdpa"
    loading.attn_implementation = "eager"
    assert HFBackend(args, loading).model.config._attn_implementation == "eager"


def test_model_init_kwargs_cover_the_loading_fields():
    from kfgrpo.model_utils import KFModelConfig, model_init_kwargs

    args = KFModelConfig(model_name_or_path="m", model_revision="v1", dtype="bfloat16", attn_implementation="eager")
    assert model_init_kwargs(args) == dict(revision="v1", dtype="bfloat16", attn_implementation="eager")


def test_resume_takes_the_newest_complete_checkpoint(tmp_path):
    """A checkpoint whose trainer_state.json is missing was cut short by a kill while saving: the one before it is
    resumed instead."""
    from types import SimpleNamespace

    from kfgrpo.model_utils import last_checkpoint

    for step, complete in ((10, True), (20, True), (30, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"")
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    args = SimpleNamespace(resume_from_checkpoint=None, output_dir=str(tmp_path))
    assert last_checkpoint(args) == str(tmp_path / "checkpoint-20")
    assert last_checkpoint(SimpleNamespace(resume_from_checkpoint="x", output_dir=str(tmp_path))) == "x"
    assert last_checkpoint(SimpleNamespace(resume_from_checkpoint=None, output_dir=str(tmp_path / "none"))) is None


def test_tile_indexed_families_are_refused_where_kfgrpo_scores_by_likelihood(tmp_path, capsys, frame_cache):
    """InternVL and LFM2-VL index pixels by tile; kfgrpo's own forwards cannot pass tile counts, so `kfgrpo train`
    refuses them in one line (exit 2) before the data or the model loads, unless no such forward runs."""
    from transformers import InternVLConfig, Lfm2VlConfig

    from kfgrpo.cli import main

    for name, config in (("internvl", InternVLConfig()), ("lfm2", Lfm2VlConfig())):
        config.save_pretrained(tmp_path / name)  # the config alone: the refusal needs no weights
        recipe = str(Path(__file__).resolve().parents[1] / "recipes" / "tiny-cpu" / "kfgrpo.yaml")
        common = ["train", "--config", recipe, "--model_name_or_path", str(tmp_path / name)]
        common += ["--dataset_name", str(frame_cache), "--output_dir", str(tmp_path / "out")]
        assert main(common) == 2  # the preset's default: per-completion reliance scoring
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "by tile" in err and "Qwen2.5-VL" in err and "kf_preset: grpo" in err
        assert main(common + ["--kf_reward", "group", "--kf_probe_mode", "likelihood"]) == 2
        assert "by tile" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()


def test_the_families_kfgrpo_scores_are_not_refused(tiny_model_dir):
    from types import SimpleNamespace

    from kfgrpo.model_utils import check_model_family, uses_teacher_forced_scoring

    args = SimpleNamespace(kf_probes=["shuffle"], kf_reward="shape", kf_probe_mode="sample")
    assert uses_teacher_forced_scoring(args)
    check_model_family(str(tiny_model_dir), args)  # Qwen2.5-VL: no error
    assert not uses_teacher_forced_scoring(SimpleNamespace(kf_probes=[], kf_reward="shape", kf_probe_mode="sample"))
    assert not uses_teacher_forced_scoring(
        SimpleNamespace(kf_probes=["shuffle"], kf_reward="group", kf_probe_mode="sample")
    )
