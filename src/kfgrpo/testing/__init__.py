"""Offline test and demo kit: random-weight Qwen-VL models built locally (no Hub access)."""

from .tiny_model import (
    ARCHS,
    REAL_SHAPES,
    SIZES,
    SPECIAL_TOKENS,
    build_tiny_model,
    build_tokenizer,
    config_and_processor,
)

__all__ = [
    "ARCHS",
    "REAL_SHAPES",
    "SIZES",
    "SPECIAL_TOKENS",
    "build_tiny_model",
    "build_tokenizer",
    "config_and_processor",
]
