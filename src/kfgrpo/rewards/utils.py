"""Helpers shared by the reward functions."""

from __future__ import annotations


def completion_text(completion) -> str:
    """The text of a TRL completion: a plain string, or a conversational list of messages (last assistant turn)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "") if isinstance(completion[-1], dict) else completion[-1]
        if isinstance(content, list):  # structured content blocks
            return "".join(b.get("text", "") for b in content if isinstance(b, dict))
        return content if isinstance(content, str) else str(content)
    return ""
