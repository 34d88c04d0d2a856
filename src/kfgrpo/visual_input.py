"""How the cached keyframes reach the model: ``images`` (one image per keyframe) or ``video`` (the keyframes as one
video).

Qwen2-VL, Qwen2.5-VL and Qwen3-VL encode an image by repeating it into both slots of a temporal patch
(``temporal_patch_size`` 2); a video puts two consecutive frames into one patch. At the same frames and pixels the
video path therefore spends half the visual tokens (K = 16 frames of 224×448: 1,024 against 2,048), and it is the input
that lmms-eval, vLLM serving and Video-R1's evaluation give these models. The cache does not change: frames are stored
once, and the mode is only how they are given to the model.

Decisions (docs/visual_input.md):

* **Times.** The keyframes' true times go in the video's metadata, as indices at a rate of one per mean keyframe
  spacing Δ = (t_K − t_1) / (K − 1): ``frames_indices = t_i / Δ``, ``fps = 1 / Δ``. Qwen3-VL labels each temporal
  patch with the mean time of its two frames (``<t seconds>``), so it reads the exact, non-uniform times. Qwen2.5-VL
  has one ``second_per_grid_ts`` per video, a uniform spacing: it gets 2Δ, the keyframes' mean spacing, so the clip
  keeps its span in M-RoPE time; the exact times still reach it through the prompt's ``timestamps_template``.
* **Probes.** A probe's video is the same video with its frames changed (shuffled, swapped, dropped); each slot keeps
  the real keyframe's time, so a shuffled video shows the real times in order over frames out of order.
* **Odd K.** The video processor repeats the last frame to fill the last temporal patch ((K + 1) / 2 patches).
* **Pixels.** The per-frame budget is the image processor's (``min_pixels`` / ``max_pixels``), so both modes see the
  same grid per frame; frames are never resampled in time (``do_sample_frames=False``) and the reference per-frame cap
  is set explicitly (``cap_pixels_per_frame=True``, transformers' default from 5.22), so that training, evaluation and
  serving agree.
"""

from __future__ import annotations

import contextlib

import torch

VISUAL_INPUTS = ("images", "video")
# Model types whose processor and model take `videos` (pixel_values_videos + video_grid_thw) and mark them in
# mm_token_type_ids; other VLMs stay on `images`.
VIDEO_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe")
# Processor outputs of the video path that the model's forward takes.
VIDEO_FORWARD_KEYS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


def check_video_model(model_type: str) -> None:
    """One-line refusal of ``visual_input: video`` for a model without a video path."""
    if model_type not in VIDEO_MODEL_TYPES:
        from .errors import UserError

        raise UserError(
            f"visual_input: video needs a model with a video path ({', '.join(VIDEO_MODEL_TYPES)}); "
            f"{model_type} takes the keyframes as images (visual_input: images)"
        )


def check_video_recipe(model_name_or_path: str, frame_template: str, revision: str | None = None) -> None:
    """Refuses, in one line and before a model loads, a ``visual_input: video`` recipe that cannot run: a model type
    without a video path, or per-frame labels (``frame_template``: one video has no place between its frames; Qwen3-VL
    states each patch's time itself)."""
    from transformers import AutoConfig

    from .errors import UserError

    if frame_template:
        raise UserError("visual_input: video takes no frame_template (a video has no text between its frames)")
    try:
        model_type = AutoConfig.from_pretrained(model_name_or_path, revision=revision).model_type
    except (OSError, ValueError, KeyError):
        return  # left to the model loading to report
    check_video_model(model_type)


def video_metadata(timestamps, num_frames: int) -> dict:
    """The video metadata that gives the processor the keyframes' times (see the module docstring)."""
    times = [float(t) for t in (timestamps or [])][:num_frames]
    if len(times) != num_frames:  # no times cached: one frame a second
        times = [float(i) for i in range(num_frames)]
    span = times[-1] - times[0] if num_frames > 1 else 0.0
    step = span / (num_frames - 1) if span > 0 else 1.0
    return {"fps": 1.0 / step, "frames_indices": [t / step for t in times], "total_num_frames": num_frames}


def video_processor_kwargs(processor, num_frames: int) -> dict:
    """Keyword arguments of the processor's video path that keep each frame at the image path's grid."""
    image_processor = processor.image_processor
    video_processor = processor.video_processor
    low = getattr(image_processor, "min_pixels", None) or image_processor.size["shortest_edge"]
    high = getattr(image_processor, "max_pixels", None) or image_processor.size["longest_edge"]
    if type(video_processor).__name__.startswith("Qwen3VL"):  # its budget is the whole video's pixels
        patches = -(-num_frames // video_processor.temporal_patch_size) * video_processor.temporal_patch_size
        size = {"shortest_edge": low, "longest_edge": high * patches}
    else:
        size = {"shortest_edge": low, "longest_edge": high}
    return {"do_sample_frames": False, "size": size, "cap_pixels_per_frame": True}


def video_part(frames, timestamps) -> dict:
    """The content part of one video: its frames and their times (read back by ``process_prompts``)."""
    return {"type": "video", "video": list(frames), "timestamps": [float(t) for t in (timestamps or [])]}


def to_video_prompt(prompt: list[dict], frames, timestamps) -> list[dict]:
    """A conversational prompt whose keyframes are one video part instead of image parts.

    A user message given as a plain string gets the video first (TRL's images-first layout); a structured one gets it
    where its first image part was, and loses the other image parts. No frames (the ``blind`` probe): no video part."""
    frames = list(frames)
    placed = not frames
    out = []
    for message in prompt:
        content = message["content"]
        if message["role"] == "user":
            if isinstance(content, str):
                if not placed:
                    content = [video_part(frames, timestamps), {"type": "text", "text": content}]
                    placed = True
            else:
                parts = []
                for part in content:
                    if part.get("type") != "image":
                        parts.append(part)
                    elif not placed:
                        parts.append(video_part(frames, timestamps))
                        placed = True
                content = parts
        out.append({**message, "content": content})
    return out


def has_video(prompt) -> bool:
    """Whether a conversational prompt holds a video part with frames."""
    return isinstance(prompt, list) and bool(_videos_of(prompt))


def _videos_of(prompt: list[dict]) -> list[dict]:
    return [
        part
        for message in prompt
        if isinstance(message["content"], list)
        for part in message["content"]
        if part.get("type") == "video" and part.get("video")
    ]


def prompt_texts(processor, prompts: list[list[dict]], **chat_template_kwargs) -> list[str]:
    """The chat texts of conversational prompts, one placeholder per video (the processor expands it)."""
    return [
        processor.apply_chat_template(p, tokenize=False, add_generation_prompt=True, **chat_template_kwargs)
        for p in prompts
    ]


def vllm_video_request(processor, prompt: list[dict], text: str) -> dict:
    """vLLM's request for a prompt holding one video: the chat text's token ids with one placeholder (vLLM expands
    it to the processor's ids; token ids already expanded would be expanded again), the frames as an array with their
    metadata, and the processor arguments of ``video_processor_kwargs`` (tests/test_vllm.py checks vLLM's expanded ids
    against the trainer's)."""
    import numpy as np

    (part,) = _videos_of(prompt)
    frames = list(part["video"])
    tokenizer = getattr(processor, "tokenizer", processor)
    metadata = dict(video_metadata(part.get("timestamps"), len(frames)), do_sample_frames=False)
    return {
        "prompt_token_ids": tokenizer(text, add_special_tokens=False)["input_ids"],
        "multi_modal_data": {"video": (np.stack([np.asarray(f.convert("RGB")) for f in frames]), metadata)},
        "mm_processor_kwargs": video_processor_kwargs(processor, len(frames)),
    }


def process_prompts(processor, prompts: list[list[dict]], texts: list[str] | None = None, **chat_template_kwargs):
    """The processor's outputs (``input_ids`` padded on the left, ``pixel_values_videos``, ``video_grid_thw``, ...)
    for conversational prompts holding video parts, each video with its own times; prompts without a video are
    text only. Built as a user would: ``apply_chat_template`` for the text, then the processor on text and videos."""
    texts = texts if texts is not None else prompt_texts(processor, prompts, **chat_template_kwargs)
    videos, metadata = [], []
    for p in prompts:
        for part in _videos_of(p):
            videos.append(list(part["video"]))
            metadata.append(video_metadata(part.get("timestamps"), len(part["video"])))
    kwargs = {}
    if videos:
        kwargs = dict(
            videos=videos, video_metadata=metadata, **video_processor_kwargs(processor, max(map(len, videos)))
        )
    return processor(text=texts, padding=True, padding_side="left", return_tensors="pt", **kwargs)


def per_sample_videos(batch, video_token_id: int) -> list[dict | None]:
    """Splits a processed batch's video tensors by sample (one video per sample, or none: a blind probe): the
    per-sample inputs that travel with the rollouts through TRL's shuffling and splitting."""
    num_samples = len(batch["input_ids"])
    if "video_grid_thw" not in batch:
        return [None] * num_samples
    has_video = [bool((row == video_token_id).any()) for row in batch["input_ids"]]
    rows = batch["video_grid_thw"].prod(dim=-1).tolist()
    seconds = batch.get("second_per_grid_ts")
    out, v, start = [], 0, 0
    for i in range(num_samples):
        if not has_video[i]:
            out.append(None)
            continue
        item = {
            "pixel_values_videos": batch["pixel_values_videos"][start : start + rows[v]],
            "video_grid_thw": batch["video_grid_thw"][v : v + 1],
        }
        if seconds is not None:
            item["second_per_grid_ts"] = torch.as_tensor(seconds)[v : v + 1]
        out.append(item)
        start += rows[v]
        v += 1
    return out


def merge_videos(items: list[dict | None]) -> dict:
    """The model's video inputs for a run of samples (the inverse of ``per_sample_videos``)."""
    items = [x for x in items if x is not None]
    if not items:
        return {}
    return {key: torch.cat([x[key] for x in items]) for key in items[0]}


def token_types(input_ids: torch.Tensor, image_token_id: int | None, video_token_id: int | None) -> torch.Tensor:
    """``mm_token_type_ids`` as the Qwen-VL processors build it: 1 on image placeholders, 2 on video ones."""
    types = torch.zeros_like(input_ids)
    if image_token_id is not None:
        types[input_ids == image_token_id] = 1
    if video_token_id is not None:
        types[input_ids == video_token_id] = 2
    return types


@contextlib.contextmanager
def videos_in_forward(module: torch.nn.Module, videos: dict, image_token_id, video_token_id):
    """Adds ``videos`` (``merge_videos``) and the matching ``mm_token_type_ids`` to every forward of ``module`` in the
    block: how TRL's own log-prob code (``_get_per_token_logps_and_entropies``, which wires images only) runs the
    model on the video path without being copied."""

    def hook(_, args, kwargs):
        kwargs = {**kwargs, **{k: v.to(kwargs["input_ids"].device) for k, v in videos.items()}}
        kwargs["mm_token_type_ids"] = token_types(kwargs["input_ids"], image_token_id, video_token_id)
        return args, kwargs

    handle = module.register_forward_pre_hook(hook, with_kwargs=True) if videos else None
    try:
        yield
    finally:
        if handle is not None:
            handle.remove()


class VideoCompletionCollator:
    """``kfgrpo sft`` batches on the video path (``visual_input: video``): each prompt-completion row's keyframes as one
    video (``to_video_prompt``), the completion's tokens after the prompt's, the loss on the completion only.

    TRL's SFT collator wires images only; this is passed to ``SFTTrainer`` as its ``data_collator``. Rows need
    ``prompt``, ``completion``, ``images`` and ``timestamps``."""

    def __init__(self, processor, max_length: int | None = None):
        self.processor = processor
        self.max_length = max_length
        tokenizer = getattr(processor, "tokenizer", processor)
        self.pad_id = tokenizer.pad_token_id
        self.image_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.video_id = tokenizer.convert_tokens_to_ids("<|video_pad|>")
        self.tokenizer = tokenizer

    def __call__(self, examples: list[dict]) -> dict:
        from trl.data_utils import apply_chat_template

        prompts = [to_video_prompt(e["prompt"], e["images"], e.get("timestamps")) for e in examples]
        batch = process_prompts(self.processor, prompts)
        texts = [
            apply_chat_template({"prompt": p, "completion": e["completion"]}, self.processor)["completion"]
            for p, e in zip(prompts, examples)
        ]
        completions = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        rows, labels = [], []
        for ids, mask, completion in zip(batch["input_ids"], batch["attention_mask"], completions):
            prompt = ids[mask.bool()].tolist()
            if self.max_length is not None and len(prompt) >= self.max_length:
                raise ValueError(f"a prompt of {len(prompt)} tokens does not fit max_length={self.max_length}")
            row = (prompt + list(completion))[: self.max_length]
            rows.append(row)
            labels.append([-100] * len(prompt) + row[len(prompt) :])
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        label_ids = torch.full((len(rows), width), -100, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, label) in enumerate(zip(rows, labels)):
            input_ids[i, : len(row)] = torch.tensor(row)
            label_ids[i, : len(row)] = torch.tensor(label)
            attention_mask[i, : len(row)] = 1
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": label_ids}
        out["mm_token_type_ids"] = token_types(input_ids, self.image_id, self.video_id)
        out.update({k: batch[k] for k in VIDEO_FORWARD_KEYS if k in batch})
        return out
