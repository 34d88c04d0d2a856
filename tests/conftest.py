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
    from kfgrpo.testing import build_tiny_model

    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0))


@pytest.fixture(scope="session")
def synth_train(tmp_path_factory):
    """A small ChronoSynth split (seed 0): 6 videos, 24 questions."""
    from kfgrpo.chronosynth import generate

    out = tmp_path_factory.mktemp("chronosynth-train")
    generate(out, num_videos=6, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def frame_cache(synth_train, tmp_path_factory):
    """The TAD cache of ``synth_train`` at K=4 and a 56×56-pixel budget (what the demo trains on, smaller)."""
    from kfgrpo.cache import CacheArgs, build_tad_cache
    from kfgrpo.tad import TADConfig

    out = tmp_path_factory.mktemp("tad-cache")
    args = CacheArgs(manifest=str(synth_train / "manifest.jsonl"), output=str(out), num_frames=4, shard_size=8)
    build_tad_cache(args, TADConfig(max_pixels=56 * 56), progress=False)
    return out


@pytest.fixture(scope="session")
def segment_video():
    """A factory: ``segment_video(path, colors, frames_per_segment=8, fps=8)`` writes constant-colour segments."""
    return write_segment_video


def write_segment_video(path, colors, frames_per_segment=8, fps=8, size=(64, 48), noise=0.0, seed=0):
    """An H.264 video of constant-colour segments (one colour per segment), optionally with pixel noise."""
    import numpy as np

    from kfgrpo.chronosynth import write_video

    rng = np.random.default_rng(seed)

    def frames():
        for c in colors:
            for _ in range(frames_per_segment):
                f = np.empty((size[1], size[0], 3), np.float32)
                f[:] = c
                if noise:
                    f += rng.normal(0, noise, f.shape)
                yield np.clip(f, 0, 255).astype(np.uint8)

    write_video(frames(), path, fps)
    return path
