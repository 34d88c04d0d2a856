import json
import pathlib

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor

from kfgrpo.data_utils import KFScriptArguments, format_prompt
from kfgrpo.probes import fit_prompt_to_frames
from kfgrpo.train import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_RECIPE = ROOT / "recipes" / "tiny-cpu" / "kfgrpo.yaml"


def test_tiny_recipe_dry_run_parses_without_loading(capsys):
    # The recipe's model folder need not exist: --dry_run loads nothing.
    assert cli(["--config", str(TINY_RECIPE), "--dry_run", "--max_steps", "3"]) is None
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["script"]["dataset_name"] == "data/chronosynth/train-tad"
    assert resolved["training"]["max_steps"] == 3  # CLI overrides YAML
    assert resolved["training"]["num_generations"] == 4
    assert resolved["model"]["model_name_or_path"] == "outputs/tiny-cpu/sft"  # the SFT warm start
    assert resolved["model"]["freeze_vision_modules"] is True
    assert resolved["training"]["kf_preset"] == "kf-grpo"
    assert resolved["training"]["kf_probes"] == ["shuffle", "swap_salient"]  # the preset, resolved


def test_unknown_recipe_key_fails(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY_RECIPE.read_text() + "\nnot_a_field: 1\n")
    with pytest.raises(ValueError, match="unknown in the config file: `not_a_field`"):
        cli(["--config", str(bad), "--dry_run"])


def test_format_prompt():
    args = KFScriptArguments(dataset_name="x")
    row = dict(
        problem="Which object appeared first in the video?",
        options=["A. red square", "B. blue disc"],
        problem_type="multiple_choice",
        timestamps=[0.0, 1.25, 2.5],
    )
    system, user = format_prompt(row, args)
    assert system["role"] == "system" and "<answer>" in system["content"]
    assert user == {
        "role": "user",
        "content": "The 3 frames were taken at seconds 0.0, 1.2, 2.5.\n"
        "Which object appeared first in the video?\nA. red square\nB. blue disc\n"
        "Answer with the option's letter.",
    }
    no_ts = KFScriptArguments(dataset_name="x", timestamps_template="", system_prompt=None)
    (user,) = format_prompt(dict(row, problem_type="numerical", options=[]), no_ts)
    assert user["content"] == "Which object appeared first in the video?\nAnswer with a single number."


def test_format_prompt_interleaves_frames_with_frame_template():
    args = KFScriptArguments(
        dataset_name="x", frame_template="Frame {index} ({timestamp:.1f}s):", timestamps_template=""
    )
    row = dict(problem="How many?", options=None, problem_type="numerical", timestamps=[0.5, 2.0])
    system, user = format_prompt(row, args)
    assert system["content"] == [{"type": "text", "text": args.system_prompt}]  # one Arrow type for all messages
    assert user["content"] == [
        {"type": "text", "text": "Frame 1 (0.5s):"},
        {"type": "image"},
        {"type": "text", "text": "Frame 2 (2.0s):"},
        {"type": "image"},
        {"type": "text", "text": "\nHow many?\nAnswer with a single number."},
    ]
    # A probe that dropped a frame: one label + placeholder fewer; string prompts pass through.
    (_, fitted) = fit_prompt_to_frames([system, user], 1)
    assert [p.get("text") for p in fitted["content"]] == [
        "Frame 1 (0.5s):",
        None,
        "\nHow many?\nAnswer with a single number.",
    ]
    assert fit_prompt_to_frames([{"role": "user", "content": "hi"}], 0) == [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("frame_template", ["", "Frame {index}:"])
def test_format_prompt_question_before_frames(frame_template):
    args = KFScriptArguments(
        dataset_name="x", question_position="before", frame_template=frame_template, timestamps_template=""
    )
    row = dict(problem="How many?", options=None, problem_type="numerical", timestamps=[0.5, 2.0, 3.0])
    _, user = format_prompt(row, args)
    question = {"type": "text", "text": "How many?\nAnswer with a single number.\n"}
    label = [{"type": "text", "text": f"Frame {i}:"} for i in (1, 2, 3)] if frame_template else [None] * 3
    frames = [part for i in range(3) for part in (label[i], {"type": "image"}) if part]
    assert user["content"] == [question, *frames]
    # Dropping frames removes their labels but never the question, down to no frame at all.
    for keep in (2, 0):
        (fitted,) = fit_prompt_to_frames([user], keep)
        assert fitted["content"] == [question, *frames[: keep * (2 if frame_template else 1)]]


def _train_args(model, data, out, steps):
    return [
        "--config",
        str(TINY_RECIPE),
        "--model_name_or_path",
        model,
        "--dataset_name",
        data,
        "--output_dir",
        out,
        "--max_steps",
        str(steps),
        "--save_steps",
        "2",
        "--max_completion_length",
        "8",
        "--per_device_train_batch_size",
        "4",
        "--num_generations",
        "2",
        "--save_total_limit",
        "2",
    ]


def test_walking_skeleton_trains_saves_reloads_and_resumes(tiny_model_dir, frame_cache, tmp_path):
    out = tmp_path / "run"
    trainer = cli(_train_args(tiny_model_dir, str(frame_cache), str(out), steps=2))
    assert trainer.state.global_step == 2
    assert any("loss" in h for h in trainer.state.log_history)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "trainer_state.json", "README.md"):
        assert (out / name).exists(), name
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(AutoProcessor.from_pretrained(out)).__name__ == "Qwen2_5_VLProcessor"
    card = (out / "README.md").read_text()
    assert "kfgrpo" in card and "kf-grpo" in card and "## KF-GRPO" in card
    assert '"kfgrpo_tad"' in card and "shuffle, swap_salient" in card  # preset, probes and the TAD config
    # the method and its sources, the real base model and no Hub link for a local dataset
    assert "ChronoForge-RL" in card and "2509.15800" in card and "KF-GRPO" in card and "TRL" in card
    assert "None" not in card and "a method introduced in" not in card
    assert f"the local checkpoint `{tiny_model_dir}`" in card and f"the local dataset `{frame_cache}`" in card
    assert "huggingface.co/datasets" not in card
    assert (out / "checkpoint-2").is_dir()

    # The checkpoint gets weights of its own (a random model has not moved in 2 steps), so the resumed run must
    # continue from them: transformers 5.17 alone would continue from the initial weights
    # (kfgrpo.model_utils.ResumeWeightsMixin). One more step at lr 1e-5 moves a weight by about 1e-5.
    moved = AutoModelForImageTextToText.from_pretrained(out / "checkpoint-2")
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.01)
    moved.save_pretrained(out / "checkpoint-2")
    checkpoint = load_file(out / "checkpoint-2" / "model.safetensors")

    # Rerunning with more steps resumes from checkpoint-2 instead of starting over.
    trainer = cli(_train_args(tiny_model_dir, str(frame_cache), str(out), steps=3))
    assert trainer.state.global_step == 3
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3
    steps_logged = [h["step"] for h in trainer.state.log_history if "loss" in h]
    assert steps_logged == [1, 2, 3]  # step 1-2 restored from the checkpoint, only step 3 recomputed
    saved = load_file(out / "model.safetensors")
    assert saved.keys() == checkpoint.keys()
    assert max((saved[k] - checkpoint[k]).abs().max().item() for k in saved) < 1e-3


@pytest.mark.parametrize("preset", ["grpo", "t-grpo"])
def test_other_presets_train_through_the_cli(tiny_model_dir, frame_cache, tmp_path, preset):
    out = tmp_path / preset
    trainer = cli([*_train_args(tiny_model_dir, str(frame_cache), str(out), steps=1), "--kf_preset", preset])
    assert trainer.state.global_step == 1 and (out / "model.safetensors").exists()
    assert ("kf_contrastive_reward" in trainer.reward_func_names) == (preset != "grpo")
    assert f"preset `{preset}`" in (out / "README.md").read_text()


def test_model_card_names_the_hub_base_model_behind_a_local_checkpoint(tmp_path):
    from kfgrpo.hub import base_model_of, is_hub_id

    local = tmp_path / "sft"
    local.mkdir()
    (local / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-VL-7B-Instruct\n---\n# sft\n")
    assert base_model_of(str(local)) == ("Qwen/Qwen2.5-VL-7B-Instruct", str(local))
    assert base_model_of("Qwen/Qwen2.5-VL-7B-Instruct") == ("Qwen/Qwen2.5-VL-7B-Instruct", None)
    assert base_model_of(str(tmp_path / "plain")) == (None, str(tmp_path / "plain"))
    assert is_hub_id("me/keyframes") and not is_hub_id("data/chronosynth/train-tad") and not is_hub_id(str(local))
