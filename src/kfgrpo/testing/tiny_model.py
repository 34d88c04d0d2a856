"""Offline, random-weight Qwen-VL models for the CPU demo, smoke tests and GPU tests (no Hub access needed).

``build_tiny_model(output_dir, arch="qwen2_5_vl", size="tiny", seed=0)`` writes a directory that loads with
``AutoModelForImageTextToText.from_pretrained`` and ``AutoProcessor.from_pretrained``:

* a byte-level BPE tokenizer trained locally on the ChronoSynth vocabulary (so task words are few tokens), with the
  Qwen special tokens and a chat template that branches on ``content['type']`` only (rows read back from Arrow carry
  every struct key, so ``'video' in content`` would always be true);
* the real Qwen image / video processors (they need torchvision), with pixel limits for small frames;
* a random-weight model, deterministic for a seed.

``size="tiny"`` is as small as a Qwen-VL can be (≈0.2 M parameters, head_dim 16; seconds per step on CPU).
``size="small"`` has head_dim 64, which vLLM's attention kernels require (GPU tests).
``size="demo"`` is ``small`` with 4 layers, the CPU demo's model: with 2, the option compare of its warm start failed
to form on about one seed in five (docs/cpu_demo.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

ARCHS = ("qwen2_5_vl", "qwen3_vl")
SIZES = ("tiny", "small", "demo")

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
# The reasoning tags are ordinary added tokens (as in Qwen3's tokenizer): one token each, kept when decoding with
# skip_special_tokens, so rewards still parse them.
TAG_TOKENS = ["<think>", "</think>", "<answer>", "</answer>"]

# Qwen2.5-VL's chat template, restricted to content['type'] tests.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Text + vision sizes. mrope_section sums to head_dim / 2.
_SIZES = {
    "tiny": dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, v_hidden=32, v_heads=2, v_inter=64, v_depth=2),
    "small": dict(
        hidden=256, layers=2, heads=4, kv_heads=2, inter=512, v_hidden=128, v_heads=2, v_inter=256, v_depth=2
    ),
    "demo": dict(
        hidden=256, layers=4, heads=4, kv_heads=2, inter=512, v_hidden=128, v_heads=2, v_inter=256, v_depth=2
    ),
}


def _corpus() -> list[str]:
    from ..chronosynth import COLORS, vocabulary_corpus

    lines = vocabulary_corpus()
    # Reasoning traces name a colour (or "none") per frame: repeated here so that each is one token, and a trace step
    # (" red 2,") has the same length whatever the colour.
    lines += [" ".join(["none", *COLORS]) + " " + ", ".join(f"{i} none" for i in range(1, 9))] * 20
    # ... and so are the option checks that end a trace (the `tally` trace's words; its checks now end in the answer
    # so far, " B red red B,", made of the same tokens).
    lines += [" first red, so A blue red no, B red red yes, C green red no, D white red no"] * 20
    lines += [
        "You are a helpful assistant.",
        "Frame frames none nothing then so first last",
        " ".join(f"Frame {i}:" for i in range(1, 33)),
        "Think about the question inside <think> </think> tags, then give the final answer inside <answer> </answer>.",
        "Options: Answer with the option's letter. Answer with a single number. The frames were taken at seconds",
        "system user assistant the a an is of to in and it was first then after before next last frame video",
        " ".join(str(i) for i in range(0, 100)) + " 0.0 0.25 0.5 0.75 1.0 [ ] , . : ; ? ! ( ) s",
    ]
    return lines


def build_tokenizer(vocab_size: int = 640):
    """A byte-level BPE Qwen2Tokenizer trained offline; deterministic (fixed corpus, fixed trainer)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    bpe.train_from_iterator(_corpus() * 4, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tok = Qwen2Tokenizer(
        vocab=state["vocab"],
        merges=merges,
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tok.add_tokens(SPECIAL_TOKENS, special_tokens=True)
    tok.add_tokens(TAG_TOKENS)
    tok.chat_template = CHAT_TEMPLATE
    return tok


# The released models' shapes, for memory and speed figures on a GPU with random weights (benchmarks/): the
# transformer and vision tower of Qwen2.5-VL-7B and Qwen3-VL-8B, their vocabulary size; the tokenizer stays ours.
REAL_SHAPES = {
    "qwen2_5_vl": dict(
        hidden=3584, layers=28, heads=28, kv_heads=4, inter=18944, v_hidden=1280, v_heads=16, v_inter=3420,
        v_depth=32, vocab=152064, fullatt=[7, 15, 23, 31],
    ),
    "qwen3_vl": dict(
        hidden=4096, layers=36, heads=32, kv_heads=8, inter=12288, v_hidden=1152, v_heads=16, v_inter=4304,
        v_depth=27, vocab=151936, deepstack=[8, 16, 24], positions=2304,
    ),
}  # fmt: skip


def config_and_processor(arch: str, size: str = "tiny", min_pixels: int = 28 * 28, max_pixels: int = 128 * 28 * 28):
    """``(config, model class, processor)`` of a model built here, without its weights: ``size`` is one of ``SIZES``
    or ``"real"`` (``REAL_SHAPES``: instantiate it on the device that measures it)."""
    config, model_cls, processor, _ = _config_and_processor(arch, size, build_tokenizer(), min_pixels, max_pixels)
    return config, model_cls, processor


def _model_and_processor(arch: str, size: str, tok, min_pixels: int, max_pixels: int):
    from transformers import GenerationConfig

    config, model_cls, processor, ids = _config_and_processor(arch, size, tok, min_pixels, max_pixels)
    model = model_cls(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
    )
    return model, processor


def _config_and_processor(arch: str, size: str, tok, min_pixels: int, max_pixels: int):
    from transformers import Qwen2VLImageProcessor

    if arch not in _ARCH_BUILDERS:
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")
    s = REAL_SHAPES[arch] if size == "real" else _SIZES[size]
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    token_ids = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    text = dict(
        vocab_size=s.get("vocab", len(tok)),
        hidden_size=s["hidden"],
        intermediate_size=s["inter"],
        num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"],
        num_key_value_heads=s["kv_heads"],
        max_position_embeddings=8192,
        bos_token_id=None,  # Qwen tokenizers have no BOS
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=s["v_depth"],
        hidden_size=s["v_hidden"],
        intermediate_size=s["v_inter"],
        num_heads=s["v_heads"],
        out_hidden_size=s["hidden"],
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config, model_cls, proc_cls, video_proc, patch = _ARCH_BUILDERS[arch](s, text, vision, token_ids)
    factor = patch * 2
    image_processor = Qwen2VLImageProcessor(
        patch_size=patch,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=max(min_pixels, factor * factor),
        max_pixels=max_pixels,
    )
    processor = proc_cls(
        image_processor=image_processor, tokenizer=tok, video_processor=video_proc(), chat_template=CHAT_TEMPLATE
    )
    return config, model_cls, processor, ids


def _mrope_section(head_dim: int) -> list[int]:
    """Temporal / height / width rotary sections; they sum to head_dim / 2."""
    half = head_dim // 2
    t_sec = half // 4
    return [t_sec, (half - t_sec) // 2, half - t_sec - (half - t_sec) // 2]


def _qwen2_5_vl(s: dict, text: dict, vision: dict, token_ids: dict):
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLVideoProcessor,
    )

    patch = 14
    mrope = _mrope_section(s["hidden"] // s["heads"])
    text = dict(text, rope_parameters={"rope_type": "default", "mrope_section": mrope, "rope_theta": 1e6})
    fullatt = s.get("fullatt", [s["v_depth"] - 1])
    vision = dict(vision, fullatt_block_indexes=fullatt, patch_size=patch, window_size=patch * 2 * 4)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, **token_ids)
    return config, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor, Qwen2VLVideoProcessor, patch


def _qwen3_vl(s: dict, text: dict, vision: dict, token_ids: dict):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor, Qwen3VLVideoProcessor

    patch = 16
    head_dim = s["hidden"] // s["heads"]
    rope = {"rope_type": "default", "mrope_section": _mrope_section(head_dim), "mrope_interleaved": True}
    text = {k: v for k, v in text.items() if k not in ("bos_token_id", "eos_token_id")}
    text.update(head_dim=head_dim, rope_parameters={**rope, "rope_theta": 5e6})
    deepstack, positions = s.get("deepstack", [s["v_depth"] - 1]), s.get("positions", 256)
    vision = dict(vision, deepstack_visual_indexes=deepstack, patch_size=patch, num_position_embeddings=positions)
    config = Qwen3VLConfig(text_config=text, vision_config=vision, **token_ids)
    return config, Qwen3VLForConditionalGeneration, Qwen3VLProcessor, Qwen3VLVideoProcessor, patch


_ARCH_BUILDERS = {"qwen2_5_vl": _qwen2_5_vl, "qwen3_vl": _qwen3_vl}


def build_tiny_model(
    output_dir: str | os.PathLike,
    arch: str = "qwen2_5_vl",
    size: str = "tiny",
    seed: int = 0,
    min_pixels: int = 28 * 28,
    max_pixels: int = 128 * 28 * 28,
) -> Path:
    """Builds and saves a random-weight Qwen-VL model + processor to ``output_dir``; returns the path."""
    import torch

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {ARCHS}")
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {SIZES}")
    tok = build_tokenizer()
    torch.manual_seed(seed)
    model, processor = _model_and_processor(arch, size, tok, min_pixels, max_pixels)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
