"""``visual_input: video``: the keyframes as one video, on tiny random Qwen2.5-VL and Qwen3-VL models.

Fidelity: the log-probs kfgrpo's training forward computes for cached rows equal those of the model run on the
processor's own video path, built as a user would (``apply_chat_template``, then the processor with the frames and
their times); the video path spends half the visual tokens of the images path at equal pixels."""

import pytest
import torch
from transformers import AutoProcessor

from kfgrpo.cache import load_tad_dataset
from kfgrpo.config import KFGRPOConfig
from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset
from kfgrpo.rewards import accuracy_reward, format_reward
from kfgrpo.trainer import KFGRPOTrainer
from kfgrpo.visual_input import to_video_prompt, video_processor_kwargs
from test_trainer import COMMON, length_score  # the trainer tests' settings and length reward


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def arch_model(request, tmp_path_factory):
    from kfgrpo.testing import build_tiny_model

    return request.param, str(build_tiny_model(tmp_path_factory.mktemp(request.param), arch=request.param, seed=0))


@pytest.fixture(scope="module")
def train_ds(frame_cache):
    ds = load_tad_dataset(frame_cache).select(range(8))
    return to_grpo_dataset(ds, KFScriptArguments(dataset_name="x"))


def _trainer(model, train_ds, tmp_path, **kw):
    args = KFGRPOConfig(output_dir=str(tmp_path), **{**COMMON, "max_steps": 1, "kf_preset": "grpo", **kw})
    return KFGRPOTrainer(model, [accuracy_reward, format_reward, length_score], args=args, train_dataset=train_ds)


def _user_inputs(processor, row, completion_ids):
    """The processor's own video path, as a user writes it: the frames, their times as video metadata."""
    prompt = [
        {**m, "content": [{"type": "video"}, {"type": "text", "text": m["content"]}]} if m["role"] == "user" else m
        for m in row["prompt"]
    ]
    text = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    times = list(row["timestamps"])
    step = (times[-1] - times[0]) / (len(times) - 1)
    metadata = {"fps": 1.0 / step, "frames_indices": [t / step for t in times], "total_num_frames": len(times)}
    inputs = processor(
        text=[text],
        videos=[list(row["images"])],
        video_metadata=[metadata],
        return_tensors="pt",
        **video_processor_kwargs(processor, len(times)),
    )
    ids = torch.cat([inputs["input_ids"], torch.tensor([completion_ids])], dim=1)
    inputs["input_ids"] = ids
    inputs["attention_mask"] = torch.ones_like(ids)
    inputs["mm_token_type_ids"] = torch.cat(
        [inputs["mm_token_type_ids"], torch.zeros(1, len(completion_ids), dtype=torch.long)], dim=1
    )
    return inputs


def test_training_forward_equals_the_processors_video_path(arch_model, train_ds, tmp_path):
    arch, model_dir = arch_model
    trainer = _trainer(model_dir, train_ds, tmp_path, visual_input="video")
    rows = [train_ds[i] for i in (0, 1) for _ in range(4)]
    out = trainer._generate_and_score_completions(rows)
    assert "pixel_values" not in out and len(out["kf_videos"]) == len(rows)
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    trainer._kf_video_scope = out["kf_videos"]  # as compute_loss sets it; chunks of 3 split the two prompts' rows
    with torch.no_grad():
        ours, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, ids, mask, out["completion_ids"].size(1), batch_size=3
        )
    trainer._kf_video_scope = None
    processor = AutoProcessor.from_pretrained(model_dir)
    worst = 0.0
    for b in (0, 3, 4, 7):
        n = int(out["completion_mask"][b].sum())
        completion = out["completion_ids"][b, :n].tolist()
        inputs = _user_inputs(processor, rows[b], completion)
        prompt_len = inputs["input_ids"].size(1) - n
        assert (
            inputs["input_ids"][0, :prompt_len].tolist() == out["prompt_ids"][b][out["prompt_mask"][b].bool()].tolist()
        )
        with torch.no_grad():
            logits = trainer.model(**inputs).logits[0, prompt_len - 1 : -1].float()
        theirs = torch.log_softmax(logits, -1).gather(1, torch.tensor(completion).view(-1, 1)).squeeze(1)
        worst = max(worst, (theirs - ours[b, :n]).abs().max().item())
    print(f"{arch}: max |kfgrpo - processor video path| log-prob: {worst:.2e}")
    assert worst < 1e-4, worst


def test_video_spends_half_the_visual_tokens_and_states_the_true_times(arch_model, train_ds, tmp_path):
    arch, model_dir = arch_model
    row = train_ds[0]
    counts = {}
    for mode, token in (("images", "<|image_pad|>"), ("video", "<|video_pad|>")):
        trainer = _trainer(model_dir, train_ds, tmp_path / mode, visual_input=mode)
        prompt = row["prompt"]
        if mode == "video":
            prompt = to_video_prompt(prompt, row["images"], row["timestamps"])
        else:
            from trl.data_utils import prepare_multimodal_messages

            prompt = prepare_multimodal_messages(prompt, images=row["images"])
        prompt_ids, _, fields = trainer._tokenize_prompts([prompt])
        tid = trainer._tokenizer.convert_tokens_to_ids(token)
        counts[mode] = prompt_ids[0].count(tid)
        if mode == "video":
            grid = fields["video_grid_thw"][0].tolist()
            text = trainer._tokenizer.decode(prompt_ids[0])
    k = len(row["images"])
    assert k % 2 == 0 and counts["video"] * 2 == counts["images"], counts
    assert grid[0] == k // 2
    times = list(row["timestamps"])
    if arch == "qwen3_vl":  # each temporal patch is labelled with its two frames' mean time
        labels = [f"<{(times[i] + times[i + 1]) / 2:.1f} seconds>" for i in range(0, k, 2)]
        assert all(label in text for label in labels), (labels, text[:400])
    else:  # one grid time per video: the keyframes' mean spacing, two frames per patch
        trainer = _trainer(model_dir, train_ds, tmp_path / "s", visual_input="video")
        _, _, fields = trainer._tokenize_prompts([to_video_prompt(row["prompt"], row["images"], times)])
        spacing = (times[-1] - times[0]) / (k - 1)
        assert fields["second_per_grid_ts"][0] == pytest.approx(2 * spacing, rel=1e-5)


def test_odd_k_repeats_the_last_frame(arch_model, train_ds, tmp_path):
    arch, model_dir = arch_model
    row = train_ds[0]
    trainer = _trainer(model_dir, train_ds, tmp_path, visual_input="video")
    even = to_video_prompt(row["prompt"], row["images"][:2], row["timestamps"][:2])
    odd = to_video_prompt(row["prompt"], row["images"][:3], row["timestamps"][:3])
    _, _, f_even = trainer._tokenize_prompts([even])
    _, _, f_odd = trainer._tokenize_prompts([odd])
    assert f_even["video_grid_thw"][0, 0] == 1 and f_odd["video_grid_thw"][0, 0] == 2  # (K + 1) // 2 patches


def test_blind_probe_prompt_has_no_video(train_ds):
    row = train_ds[0]
    blind = to_video_prompt(row["prompt"], [], row["timestamps"])
    assert all(isinstance(m["content"], str) or all(p["type"] == "text" for p in m["content"]) for m in blind), blind
    structured = [{"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image"}, {"type": "image"}]}]
    assert to_video_prompt(structured, [], [0.0, 1.0]) == [
        {"role": "user", "content": [{"type": "text", "text": "q"}]}
    ]
    one = to_video_prompt(structured, row["images"][:2], [0.0, 1.0])[0]["content"]
    assert [p["type"] for p in one] == ["text", "video"] and len(one[1]["video"]) == 2


@pytest.mark.parametrize("reward", ["shape", "credit"])
def test_kfgrpo_trains_on_the_video_path(arch_model, train_ds, tmp_path, reward):
    """A KF-GRPO step in video mode: probes scored by teacher forcing (shape) or sampled (credit, with the blind
    probe), the loss backpropagates into the vision tower through the video inputs."""
    _, model_dir = arch_model
    probes = ["shuffle", "swap_salient"] if reward == "shape" else ["shuffle", "swap_salient", "blind"]
    trainer = _trainer(
        model_dir,
        train_ds,
        tmp_path,
        visual_input="video",
        kf_preset="kf-grpo",
        kf_reward=reward,
        kf_probes=probes,
        kf_probe_bonus=[0.3] * len(probes),
        kf_accuracy_reward="length_score",
    )
    seen = []  # (videos, frames per video) of every prompt tokenized: rollouts, then sampled probes
    tokenize = trainer._tokenize_prompts

    def spy(prompts):
        seen.extend(
            sum(
                len(p["video"])
                for m in q
                if isinstance(m["content"], list)
                for p in m["content"]
                if p.get("type") == "video"
            )
            for q in prompts
        )
        return tokenize(prompts)

    trainer._tokenize_prompts = spy
    trainer.model.train()  # probes act while training only
    batch = trainer._prepare_inputs([train_ds[i] for i in (0, 1) for _ in range(4)])
    assert "kf_videos" in batch and all(v is not None for v in batch["kf_videos"])
    assert seen[:8] == [4] * 8  # the rollouts: one 4-frame video each
    metrics = trainer._metrics["train"]
    if reward == "credit":  # length_score > 0 everywhere: every group is probed, G_p = 2 prompts per probe
        assert metrics["kf/credit/probed_groups"] == [1.0] and "kf/blind/accuracy" in metrics
        assert seen[8:].count(0) == 2 * 2 and seen[8:].count(4) == 2 * 2 * 2  # blind: no video; the others: 4 frames
    else:
        assert "kf/reliance/scored" in metrics
    model = trainer.model
    model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1  # as Trainer's training loop sets it
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss)
    visual = [p for n, p in model.named_parameters() if ".visual." in f".{n}" or n.startswith("visual")]
    assert sum(p.grad is not None and p.grad.abs().sum() > 0 for p in visual) >= len(visual) // 2


def test_video_mode_refusals(tmp_path, tiny_model_dir):
    from kfgrpo.errors import UserError
    from kfgrpo.visual_input import check_video_model, check_video_recipe

    cpu = dict(output_dir=str(tmp_path), use_cpu=True, bf16=False)
    with pytest.raises(ValueError, match="visual_input must be one of"):
        KFGRPOConfig(**cpu, visual_input="clip")
    with pytest.raises(ValueError, match="vllm_mode: colocate"):  # TRL's vLLM server takes images only
        KFGRPOConfig(**cpu, visual_input="video", use_vllm=True, vllm_mode="server")
    with pytest.raises(ValueError, match="vllm_tensor_parallel_size: 1"):
        KFGRPOConfig(**cpu, visual_input="video", use_vllm=True, vllm_mode="colocate", vllm_tensor_parallel_size=2)
    with pytest.raises(UserError, match="llava takes the keyframes as images"):
        check_video_model("llava")
    with pytest.raises(UserError, match="no frame_template"):
        check_video_recipe(tiny_model_dir, "Frame {index}:")
    check_video_recipe(tiny_model_dir, "")
