"""Offline test and demo kit: random-weight Qwen-VL models built locally (no Hub access)."""

from .tiny_model import ARCHS, SIZES, SPECIAL_TOKENS, build_tiny_model, build_tokenizer

__all__ = ["ARCHS", "SIZES", "SPECIAL_TOKENS", "build_tiny_model", "build_tokenizer"]
