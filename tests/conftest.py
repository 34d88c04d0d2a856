"""Shared fixtures. The whole suite runs offline in one process: nothing here may reach the Hugging Face Hub."""

import os
import tempfile

# Set before any Hugging Face library is imported (pytest imports conftest first).
_HF_HOME = tempfile.mkdtemp(prefix="kfgrpo-hf-home-")
for key, value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HOME": _HF_HOME,  # an empty cache: a test that needs a download fails instead of using a stale copy
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "WANDB_DISABLED": "true",
}.items():
    os.environ[key] = value

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from kfgrpo.tiny_model import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0))


@pytest.fixture(scope="session")
def synth_train(tmp_path_factory):
    """A small ChronoSynth split (seed 0): 6 videos, 24 questions."""
    from kfgrpo.synth import generate

    out = tmp_path_factory.mktemp("chronosynth-train")
    generate(out, num_videos=6, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def frame_cache(synth_train, tmp_path_factory):
    """The frame cache of ``synth_train`` at K=4, 56×56-pixel budget (what the demo trains on, smaller)."""
    from kfgrpo.cache import CacheConfig, build_frame_cache

    out = tmp_path_factory.mktemp("frames")
    build_frame_cache(
        synth_train / "manifest.jsonl", out, CacheConfig(num_frames=4, max_pixels=56 * 56), progress=False
    )
    return out
