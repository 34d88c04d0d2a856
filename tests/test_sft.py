import json

import pytest
from transformers import AutoModelForImageTextToText

from kfgrpo.cli import main
from kfgrpo.sft import SFTScriptArguments, sft_completion

EVENTS = [dict(name="red square", start=1.0, end=2.0), dict(name="blue disc", start=4.0, end=5.0)]


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
    """Frozen vision, the question before the frames, tally traces, option orders (recipes/tiny-cpu/sft.yaml)."""
    import torch

    out = tmp_path / "sft"
    args = ["sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", str(frame_cache)]
    args += ["--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true"]
    args += ["--bf16", "false", "--save_strategy", "no", "--report_to", "none", "--learning_rate", "1e-2"]
    args += ["--freeze_vision_modules", "true", "--trace_format", "tally", "--question_position", "before"]
    args += ["--option_orders", "3", "--drop_unsupported", "true"]
    assert main(args) == 0
    before = AutoModelForImageTextToText.from_pretrained(tiny_model_dir).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(out).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("visual" not in k for k in changed)
    assert any("language_model" in k for k in changed)


def test_sft_resumes_from_the_checkpoint_weights(tiny_model_dir, frame_cache, tmp_path):
    """A rerun with more steps continues from the last checkpoint's weights (kfgrpo.model_utils.ResumeWeightsMixin),
    not from the initial ones (transformers 5.17 alone would)."""
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "sft"

    def run(steps):
        args = ["sft", "--model_name_or_path", tiny_model_dir, "--dataset_name", str(frame_cache), "--output_dir",
                str(out), "--max_steps", str(steps), "--per_device_train_batch_size", "4", "--use_cpu", "true",
                "--bf16", "false", "--save_strategy", "steps", "--save_steps", "2", "--report_to", "none",
                "--learning_rate", "1e-5", "--logging_steps", "1"]  # fmt: skip
        assert main(args) == 0

    run(2)
    moved = AutoModelForImageTextToText.from_pretrained(out / "checkpoint-2")
    with torch.no_grad():
        for p in moved.parameters():
            p.add_(0.01)  # weights of its own, far from what 2 steps at lr 1e-5 reach
    moved.save_pretrained(out / "checkpoint-2")
    checkpoint = load_file(out / "checkpoint-2" / "model.safetensors")
    run(3)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    saved = load_file(out / "model.safetensors")
    assert max((saved[k] - checkpoint[k]).abs().max().item() for k in saved) < 1e-3
    card = (out / "README.md").read_text()
    assert "supervised fine-tuning" in card and "None" not in card


def _rows():
    import datasets

    options = ["A. green disc", "B. blue disc", "C. red square", "D. white square"]
    first, count = "Which object appeared first in the video?", "How many objects appeared in the video?"
    return datasets.Dataset.from_list(
        [
            dict(problem=first, options=options, solution="C", events=EVENTS, timestamps=[1.5, 4.5]),
            dict(problem=first, options=options, solution="C", events=EVENTS, timestamps=[3.0, 4.5]),  # red missed
            dict(problem=count, options=[], solution="2", events=EVENTS, timestamps=[1.5, 4.5]),
            dict(problem=count, options=[], solution="2", events=EVENTS, timestamps=[1.5, 3.0]),  # blue missed
            dict(problem="What colour?", options=[], solution="red", events=EVENTS, timestamps=[1.5]),
        ]
    )


def test_drop_unsupported_rows_keeps_rows_whose_trace_reaches_the_solution(capsys):
    from kfgrpo.data_utils import drop_unsupported_rows

    kept = drop_unsupported_rows(_rows())
    assert [(r["problem"][:5], r["timestamps"]) for r in kept] == [
        ("Which", [1.5, 4.5]),
        ("How m", [1.5, 4.5]),
        ("What ", [1.5]),
    ]
    assert "dropped 2 of 5 training rows" in capsys.readouterr().err


def test_permute_options_reletters_options_and_moves_the_answer():
    from kfgrpo.data_utils import permute_options

    rows = _rows()
    out = permute_options(rows, 24, seed=0)
    assert len(out) == 24 * len(rows)
    assert out[: len(rows)]["options"] == rows["options"]  # copy 0 as cached
    orders = set()
    for r in out:
        texts = {o.split(". ")[1]: o.split(". ")[0] for o in r["options"]}
        assert [o.split(". ")[0] for o in r["options"]] == list("ABCD")[: len(r["options"])]
        if r["options"]:
            assert texts["red square"] == r["solution"]  # the answer follows its text
            orders.add(tuple(r["options"]))
        else:
            assert r["solution"] in ("2", "red")  # rows without options are copied as they are
    assert len(orders) > 10  # most copies differ
    assert permute_options(rows, 24, seed=0)["options"] == out["options"]  # seeded
    assert permute_options(rows, 24, seed=1)["options"] != out["options"]
    assert permute_options(rows, 1) is rows


def test_training_data_drops_unsupported_rows_unless_told(tmp_path):
    """`kfgrpo train` and `kfgrpo sft` read rows through `load_keyframe_dataset`, which drops them by default."""
    from kfgrpo.data_utils import KFScriptArguments, load_keyframe_dataset

    _rows().save_to_disk(str(tmp_path / "cache"))
    assert len(load_keyframe_dataset(KFScriptArguments(dataset_name=str(tmp_path / "cache")))) == 3
    keep = KFScriptArguments(dataset_name=str(tmp_path / "cache"), drop_unsupported=False)
    assert len(load_keyframe_dataset(keep)) == 5


def test_sft_on_the_video_path(tiny_model_dir, frame_cache, tmp_path):
    """``--visual_input video``: batches hold one video per row, the loss covers the completion only, and it equals
    the model's own loss on the processor's video path; the saved config records the mode for `kfgrpo eval`."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from kfgrpo.cache import load_tad_dataset
    from kfgrpo.data_utils import to_grpo_dataset
    from kfgrpo.visual_input import VideoCompletionCollator, process_prompts, to_video_prompt

    rows = to_grpo_dataset(load_tad_dataset(frame_cache).select(range(2)), SFTScriptArguments(dataset_name="x"))
    examples = [
        dict(r, completion=[{"role": "assistant", "content": "<think>.</think><answer>A</answer>"}]) for r in rows
    ]
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    batch = VideoCompletionCollator(processor)(examples)
    assert batch["video_grid_thw"].shape[0] == 2 and "pixel_values" not in batch
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        loss = model(**batch).loss
        one = process_prompts(
            processor, [to_video_prompt(examples[0]["prompt"], rows[0]["images"], rows[0]["timestamps"])]
        )
        n = int((batch["labels"][0] != -100).sum())
        completion = batch["input_ids"][0][batch["labels"][0] != -100]
        ids = torch.cat([one["input_ids"], completion[None]], dim=1)
        types = torch.cat([one["mm_token_type_ids"], torch.zeros(1, n, dtype=torch.long)], dim=1)
        kwargs = {k: one[k] for k in ("pixel_values_videos", "video_grid_thw") if k in one}
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=types, **kwargs).logits
        first = torch.nn.functional.cross_entropy(logits[0, -n - 1 : -1], completion)
    assert batch["labels"][0].tolist().count(-100) == batch["attention_mask"][0].sum() - n  # prompt masked
    assert torch.isfinite(loss) and 0 < n < 30
    batch1 = VideoCompletionCollator(processor)(examples[:1])
    with torch.no_grad():
        assert model(**batch1).loss.item() == pytest.approx(first.item(), rel=1e-5)
    out = tmp_path / "sft"
    args = [
        "sft",
        "--model_name_or_path",
        tiny_model_dir,
        "--dataset_name",
        str(frame_cache),
        "--output_dir",
        str(out),
    ]
    args += ["--max_steps", "2", "--per_device_train_batch_size", "4", "--use_cpu", "true", "--bf16", "false"]
    args += ["--save_strategy", "no", "--report_to", "none", "--logging_steps", "1", "--visual_input", "video"]
    assert main(args) == 0
    assert AutoConfig.from_pretrained(out).kfgrpo_visual_input == "video"
