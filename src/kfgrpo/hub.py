"""Hugging Face Hub: dataset cards for TAD caches and uploads. The token comes only from the environment / `hf auth
login`; it is never written to disk or logs by kfgrpo."""

from __future__ import annotations

import json
from pathlib import Path

DATASET_CARD = """---
tags:
- kfgrpo
- video
- keyframes
- temporal-apex-distillation
---

# {name}

Keyframes selected by **{method}** (kfgrpo {version}) from the videos of `{manifest}`: {num_frames} frames per video,
chronological, with timestamps (seconds), per-frame saliency in [0, 1] and apex flags, plus the lowest-saliency
candidates as `distractor_images` for content probes. Training reads the frames directly; no video is decoded.

Rows kept: {kept}; rows that failed (bad video or manifest line, listed in `errors.jsonl` of the producing run): {failed}.

## Selection

Temporal Apex Distillation scores frame-to-frame change over candidates sampled at {candidate_fps} fps (at most
{max_candidates}), finds its apexes (local maxima with NMS and threshold κ = {apex_threshold}) and keeps the apexes
first (up to ⌈ρK⌉, ρ = {apex_fraction}), then fills the remaining slots between them, by segment length, at the
quantiles of P^γ (γ = {fill_gamma}) or on the strongest change inside each slot's cell (see `tad_config.json`).
A row with `short_video` true had fewer decodable frames than K and holds all of them. Features: `{encoder}`. Frames are resized to multiples of {patch_factor} pixels
within [{min_pixels}, {max_pixels}] pixels.

## Columns

`images`, `timestamps`, `frame_indices`, `saliency`, `is_apex`, `distractor_images`, `distractor_timestamps`,
`distractor_saliency`, `short_video`, and
every column of the source manifest (`id`, `video`, `problem`, `options`, `solution`, `problem_type`, ...).
{layout}

## Full configuration

```json
{config_json}
```
"""

FRAME_TABLE_NOTE = """
A video's frames are stored once, in the config `frames` (`frames_key`, `images`, `distractor_images`); the default
config holds the question rows with their `frames_key`. `kfgrpo train` joins them when it loads the dataset
(`kfgrpo.data_utils.load_keyframe_dataset`); by hand: `kfgrpo.cache.join_frames(questions, frames)`.
"""


def tad_dataset_card(provenance: dict, summary: dict, name: str = "TAD keyframe cache") -> str:
    p = provenance["kfgrpo_tad"]
    cfg = p["config"]
    return DATASET_CARD.format(
        name=name,
        method=p["method"],
        version=p["kfgrpo_version"],
        manifest=p["manifest"],
        num_frames=p["num_frames"],
        kept=summary["kept"],
        failed=summary["failed"],
        config_json=json.dumps(provenance, indent=2),
        layout=FRAME_TABLE_NOTE if p.get("frame_table") else "",
        **{
            k: cfg[k]
            for k in (
                "candidate_fps",
                "max_candidates",
                "apex_threshold",
                "apex_fraction",
                "fill_gamma",
                "encoder",
                "patch_factor",
                "min_pixels",
                "max_pixels",
            )
        },
    )


def push_tad_dataset(path: str | Path, repo_id: str, provenance: dict, summary: dict, private: bool = False) -> str:
    """Uploads the dataset at ``path`` and its card to ``repo_id``; returns the repo URL."""
    import datasets
    from huggingface_hub import DatasetCard

    ds = datasets.load_from_disk(str(path))
    ds.push_to_hub(repo_id, private=private)
    if (Path(path) / "frames").is_dir():  # the per-video frame table, joined by `frames_key` when loaded
        datasets.load_from_disk(str(Path(path) / "frames")).push_to_hub(repo_id, config_name="frames", private=private)
    DatasetCard(tad_dataset_card(provenance, summary, name=repo_id)).push_to_hub(repo_id)
    return f"https://huggingface.co/datasets/{repo_id}"


MODEL_CARD_SECTION = """
## KF-GRPO

Trained with [kfgrpo](https://arxiv.org/abs/2509.15800) (ChronoForge-RL: Temporal Apex Distillation keyframes +
KeyFrame-aware GRPO), preset `{preset}`.

| knob | value |
|---|---|
| probes | {probes} |
| probe mode | {mode} |
| probe generations (G_p) / G | {gp} / {g} |
| bonus α per probe | {alpha} |
| threshold μ, strict, rule | {mu}, {strict}, {rule} |
| saliency weight β_s | {beta} |

### Keyframes (TAD)

```json
{tad}
```

### Final metrics

```json
{metrics}
```
"""


def append_kfgrpo_card_section(output_dir, args, dataset_description: str | None, log_history: list[dict]) -> Path:
    """Adds the method, preset, TAD configuration and final metrics to the model card TRL wrote."""
    try:
        tad = json.dumps(json.loads(dataset_description or "{}"), indent=2)
    except json.JSONDecodeError:
        tad = json.dumps({"description": dataset_description})
    final = {}
    for entry in log_history:
        final.update({k: v for k, v in entry.items() if isinstance(v, (int, float))})
    path = Path(output_dir) / "README.md"
    section = MODEL_CARD_SECTION.format(
        preset=args.kf_preset,
        probes=", ".join(args.kf_probes) or "none",
        mode=args.kf_probe_mode,
        gp=args.kf_probe_generations,
        g=args.num_generations,
        alpha=args.kf_probe_bonus,
        mu=args.kf_threshold,
        strict=args.kf_strict,
        rule=args.kf_rule,
        beta=args.kf_saliency_weight,
        tad=tad,
        metrics=json.dumps(final, indent=2, sort_keys=True),
    )
    with open(path, "a") as fh:
        fh.write(section)
    return path
