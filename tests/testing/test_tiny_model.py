import hashlib

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from kfgrpo.testing import SPECIAL_TOKENS, build_tiny_model


def _digest(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


def _frames(n=3, size=56, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def _run(model_dir, frames):
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    messages = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": f} for f in frames]
                + [{"type": "text", "text": "Which object appeared first?"}],
            }
        ]
    ]
    inputs = processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt"
    )
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    return model, processor, inputs, out


def test_loads_with_auto_classes_and_generates(tiny_model_dir):
    model, processor, inputs, out = _run(tiny_model_dir, _frames())
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    # 56×56 frames: (56/14)^2 patches / (2×2 merge) = 4 visual tokens each
    assert int((inputs["input_ids"] == image_id).sum()) == 3 * 4
    assert out.shape[1] > inputs["input_ids"].shape[1]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_tokenizer_has_qwen_special_tokens_and_chat_template(tiny_model_dir):
    tok = AutoProcessor.from_pretrained(tiny_model_dir).tokenizer
    for t in SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(t) != tok.unk_token_id or t == tok.unk_token
        assert tok.tokenize(t) == [t]
    assert tok.eos_token == "<|im_end|>"
    # Task words are whole tokens (the tokenizer was trained on the ChronoSynth vocabulary).
    assert tok.tokenize("What appeared right after the red square") == [
        "What",
        "Ġappeared",
        "Ġright",
        "Ġafter",
        "Ġthe",
        "Ġred",
        "Ġsquare",
    ]
    # Every step of a per-frame trace is 4 tokens whatever the colour (sft.py's `tally` trace relies on it).
    from kfgrpo.chronosynth import COLORS

    for word in ["none", *COLORS]:
        assert len(tok.tokenize(f" {word} 3,")) == 4, word
    assert tok.tokenize(" first red, so A blue red no, B") == [
        "Ġfirst",
        "Ġred",
        ",",
        "Ġso",
        "ĠA",
        "Ġblue",
        "Ġred",
        "Ġno",
        ",",
        "ĠB",
    ]
    # ... as long as an option line, so a check copies its option from a fixed distance.
    for line in ("A. magenta triangle\n", "B. red disc\n", "C. white square\n"):
        assert len(tok.tokenize(line)) == 5
    # The template branches on content['type'], so Arrow-filled keys ('video': None) never add a video.
    text = tok.apply_chat_template(
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": None, "video": None},
                    {"type": "text", "text": "hi", "video": None},
                ],
            }
        ],
        tokenize=False,
    )
    assert text.count("<|image_pad|>") == 1 and "<|video_pad|>" not in text


def test_deterministic_for_a_seed(tmp_path):
    a = build_tiny_model(tmp_path / "a", seed=3)
    b = build_tiny_model(tmp_path / "b", seed=3)
    c = build_tiny_model(tmp_path / "c", seed=4)
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_qwen3_vl_tiny(tmp_path):
    d = build_tiny_model(tmp_path / "q3", arch="qwen3_vl")
    model, processor, inputs, out = _run(d, _frames(2, size=64))
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    assert out.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "qwen3_vl"])
def test_small_has_head_dim_for_vllm(tmp_path, arch):
    d = build_tiny_model(tmp_path / arch, arch=arch, size="small")
    model = AutoModelForImageTextToText.from_pretrained(d)
    text = model.config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    vision = model.config.vision_config
    assert head_dim >= 64
    assert vision.hidden_size // vision.num_heads >= 64
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    with torch.no_grad():
        _run(d, _frames(2, size=64))


def test_rejects_unknown_arch(tmp_path):
    with pytest.raises(ValueError, match="unknown arch"):
        build_tiny_model(tmp_path, arch="llava")
