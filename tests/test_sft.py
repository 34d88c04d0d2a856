import json

from transformers import AutoModelForImageTextToText

from kfgrpo.cli import main
from kfgrpo.sft import SFTScriptArguments, frame_trace, keyframe_trace, sft_completion, tally_trace

EVENTS = [dict(name="red square", start=1.0, end=2.0), dict(name="blue disc", start=4.0, end=5.0)]


def test_keyframe_trace_names_only_what_the_keyframes_show():
    assert keyframe_trace(EVENTS, [0.5, 1.5, 1.8, 4.5]) == "red, then blue"
    assert keyframe_trace(EVENTS, [1.5, 4.5], detail="name") == "red square, then blue disc"
    assert keyframe_trace(EVENTS, [3.0]) == "nothing"  # the missed event is not mentioned


def test_frame_trace_numbers_every_keyframe():
    assert frame_trace(EVENTS, [0.5, 1.5, 3.0, 4.5]) == "1 none, 2 red, 3 none, 4 blue"
    assert frame_trace(EVENTS, [1.5], detail="name") == "1 red square"
    args = SFTScriptArguments(dataset_name="x", trace_format="frames")
    row = dict(solution="B", events=EVENTS, timestamps=[1.5, 4.5])
    assert sft_completion(row, args)[0]["content"] == "<think>1 red, 2 blue.</think><answer>B</answer>"


def test_tally_trace_counts_objects_and_names_the_option():
    ts = [0.5, 1.5, 1.8, 3.0, 4.5]
    assert tally_trace(EVENTS, ts) == " none 0, red 1, red 1, none 1, blue 2,"
    options = ["A. green disc", "B. blue disc", "C. red square", "D. white square"]
    first = "Which object appeared first in the video?"
    checks = " A green red no, B blue red no, C red red yes, D white red no"
    assert tally_trace(EVENTS, ts, problem=first, options=options).endswith("blue 2, first red, so" + checks)
    last = "Which object appeared last in the video?"
    checks = " A green blue no, B blue blue yes, C red blue no, D white blue no"
    assert tally_trace(EVENTS, ts, problem=last, options=options).endswith(" last blue, so" + checks)
    assert tally_trace(EVENTS, ts, problem="How many objects appeared in the video?").endswith("blue 2,")
    nothing = " none 0, first none, so A green none no, B blue none no, C red none no, D white none no"
    assert tally_trace(EVENTS, [3.0], problem=first, options=options) == nothing
    # Repeated frames of one object count once; objects are counted in the keyframes, not in the video.
    assert tally_trace(EVENTS, [1.2, 1.4, 1.6]) == " red 1, red 1, red 1,"
    args = SFTScriptArguments(dataset_name="x", trace_format="tally")
    row = dict(solution="C", events=EVENTS, timestamps=[1.5, 4.5], problem=first, options=options)
    think = " red 1, blue 2, first red, so A green red no, B blue red no, C red red yes, D white red no"
    assert sft_completion(row, args)[0]["content"] == f"<think>{think}</think><answer>C</answer>"


def test_sft_completion_targets():
    args = SFTScriptArguments(dataset_name="x")
    row = dict(solution="B", events=EVENTS, timestamps=[1.5, 4.5])
    assert sft_completion(row, args)[0]["content"] == "<think>red, then blue.</think><answer>B</answer>"
    assert sft_completion(dict(solution="3"), args)[0]["content"] == "<think>.</think><answer>3</answer>"
    answer_only = SFTScriptArguments(dataset_name="x", sft_target="answer")
    assert sft_completion(row, answer_only)[0]["content"] == "<think>.</think><answer>B</answer>"


def test_sft_command_trains_and_saves(tiny_model_dir, frame_cache, tmp_path):
    out = tmp_path / "sft"
    assert (
        main(
            [
                "sft",
                "--model_name_or_path",
                tiny_model_dir,
                "--dataset_name",
                str(frame_cache),
                "--output_dir",
                str(out),
                "--max_steps",
                "2",
                "--per_device_train_batch_size",
                "4",
                "--use_cpu",
                "true",
                "--bf16",
                "false",
                "--save_strategy",
                "no",
                "--report_to",
                "none",
                "--learning_rate",
                "1e-3",
                "--logging_steps",
                "1",
            ]
        )
        == 0
    )
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and all("loss" in h for h in state["log_history"][:2])
    AutoModelForImageTextToText.from_pretrained(out)


def test_sft_with_the_demo_settings_trains_only_the_language_model(tiny_model_dir, frame_cache, tmp_path):
    """Frozen vision, the question before the frames, tally traces (recipes/tiny-cpu/sft.yaml)."""
    import torch

    out = tmp_path / "sft"
    args = ["sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", str(frame_cache)]
    args += ["--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true"]
    args += ["--bf16", "false", "--save_strategy", "no", "--report_to", "none", "--learning_rate", "1e-2"]
    args += ["--freeze_vision_modules", "true", "--trace_format", "tally", "--question_position", "before"]
    assert main(args) == 0
    before = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(out).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("visual" not in k for k in changed)
    assert any("language_model" in k for k in changed)
