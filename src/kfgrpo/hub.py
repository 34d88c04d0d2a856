"""Hugging Face Hub: dataset cards for TAD caches and uploads. The token comes only from the environment / `hf auth
login`; it is never written to disk or logs by kfgrpo."""

from __future__ import annotations

import json
import os
from pathlib import Path


def check_push_access(repo_id: str, repo_type: str = "model", private: bool | None = None) -> str:
    """Before any work: the Hub is reachable, a token is there (``HF_TOKEN`` or ``hf auth login``) and ``repo_id`` can be
    written (the repo is created if absent, as the push would create it). A ``UserError`` says which in one line."""
    from huggingface_hub import HfApi, constants, get_token

    from .errors import UserError

    flag = "--push-to-hub" if repo_type == "dataset" else "--push_to_hub"
    if constants.HF_HUB_OFFLINE:
        raise UserError(f"{flag} {repo_id}: the Hub is offline here (HF_HUB_OFFLINE=1); unset it or do not push")
    token = get_token()
    if not token:
        raise UserError(f"{flag} {repo_id}: no Hugging Face token; set HF_TOKEN or run `hf auth login`")
    try:
        url = HfApi(token=token).create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    except Exception as exc:  # network, a rejected token, a namespace the token cannot write to
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"{flag} {repo_id}: cannot write to this {repo_type} repo: {type(exc).__name__}: {reason}"
        ) from exc
    return str(url)


def move_hub_token_to_environment(training_args) -> None:
    """A ``hub_token`` argument is moved into ``HF_TOKEN`` for this process (huggingface_hub reads it there) and
    removed from the arguments, which transformers pickles into ``training_args.bin`` of the output folder and of every
    checkpoint (uploaded with ``hub_strategy: every_save``)."""
    token = getattr(training_args, "hub_token", None)
    if token:
        os.environ["HF_TOKEN"] = token
        training_args.hub_token = None


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
{max_candidates}), finds its apexes (local maxima with NMS and threshold κ = {apex_threshold}) and {stage3}
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


def _stage3(p: dict, cfg: dict) -> str:
    selector = p.get("selector") or {}
    if selector.get("kind") == "learned":
        return (
            "keeps the greedy draw of a learned selector (`kfgrpo tad-learn`: a scorer over per-candidate signals "
            f"with a repulsive Plackett–Luce policy; weights `{os.path.basename(selector['weights'])}`, SHA-256 "
            f"`{selector['sha256'][:16]}…`; see `tad_config.json`)."
        )
    return (
        f"keeps the apexes first (up to ⌈ρK⌉, ρ = {cfg['apex_fraction']}), then fills the remaining slots between "
        f"them, by segment length, at the quantiles of P^γ (γ = {cfg['fill_gamma']}) or on the strongest change "
        "inside each slot's cell (see `tad_config.json`)."
    )


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
        stage3=_stage3(p, cfg),
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


SHARD_BYTES = 500 * 1024**2  # parquet shard size, as `datasets.Dataset.push_to_hub` shards


def export_tad_dataset(path: str | Path, folder: str | Path, provenance: dict, summary: dict, name: str) -> Path:
    """Writes the TAD cache at ``path`` in the layout of its Hub dataset repo: ``data/train-*.parquet`` (the
    question rows, config ``default``), ``frames/train-*.parquet`` (the per-video frame table, config ``frames``)
    and ``README.md`` (the card, with the ``configs`` that tell ``datasets.load_dataset`` where each config lives).
    ``push_tad_dataset`` uploads exactly this folder; ``datasets.load_dataset(folder)`` reads it as it reads the repo,
    and ``kfgrpo train --dataset_name folder`` joins the frames as for a Hub id."""
    import math

    import datasets

    folder = Path(folder)
    configs = [("default", "data", Path(path))]
    if (Path(path) / "frames").is_dir():
        configs.append(("frames", "frames", Path(path) / "frames"))
    header = ["configs:"]
    for config, sub, source in configs:
        ds = datasets.load_from_disk(str(source))
        (folder / sub).mkdir(parents=True, exist_ok=True)
        shards = max(1, math.ceil(ds.data.nbytes / SHARD_BYTES))
        for i in range(shards):
            part = ds.shard(num_shards=shards, index=i, contiguous=True)
            part.to_parquet(str(folder / sub / f"train-{i:05d}-of-{shards:05d}.parquet"))
        header += [f"- config_name: {config}", "  data_files:", "  - split: train", f"    path: {sub}/train-*"]
    card = tad_dataset_card(provenance, summary, name=name)
    front, body = card.split("---\n", 2)[1:]
    (folder / "README.md").write_text("---\n" + "\n".join(header) + "\n" + front + "---\n" + body)
    return folder


def push_tad_dataset(path: str | Path, repo_id: str, provenance: dict, summary: dict, private: bool = False) -> str:
    """Uploads the dataset at ``path`` (as ``export_tad_dataset`` lays it out) to ``repo_id``; returns the URL."""
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kfgrpo-push-") as tmp:
        export_tad_dataset(path, tmp, provenance, summary, name=repo_id)
        api.upload_folder(repo_id=repo_id, folder_path=tmp, repo_type="dataset", commit_message="kfgrpo tad")
    return f"https://huggingface.co/datasets/{repo_id}"


CHRONOFORGE_CITATION = """@article{chen2025chronoforge,
    title   = {{ChronoForge-RL: Chronological Forging through Reinforcement Learning for Enhanced Video Understanding}},
    author  = {Kehua Chen},
    year    = 2025,
    eprint  = {arXiv:2509.15800},
}"""
GRPO_CITATION = """@article{shao2024deepseekmath,
    title   = {{DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language Models}},
    author  = {Zhihong Shao and Peiyi Wang and Qihao Zhu and Runxin Xu and Junxiao Song and Mingchuan Zhang and Y. K. Li and Y. Wu and Daya Guo},
    year    = 2024,
    eprint  = {arXiv:2402.03300},
}"""
TRL_CITATION = """@software{vonwerra2020trl,
    title   = {{TRL: Transformers Reinforcement Learning}},
    author  = {von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallouédec, Quentin},
    license = {Apache-2.0},
    url     = {https://github.com/huggingface/trl},
    year    = {2020}
}"""
METHODS = {
    "KF-GRPO": "**KF-GRPO** (KeyFrame-aware GRPO) from [kfgrpo](https://arxiv.org/abs/2509.15800), an implementation of "
    "ChronoForge-RL ([arXiv 2509.15800](https://arxiv.org/abs/2509.15800)): Temporal Apex Distillation keyframes and "
    "a keyframe-aware reward on top of TRL's `GRPOTrainer` (GRPO, [arXiv 2402.03300](https://arxiv.org/abs/2402.03300))",
    "SFT": "supervised fine-tuning on Temporal Apex Distillation keyframes (kfgrpo's warm start for ChronoForge-RL, "
    "[arXiv 2509.15800](https://arxiv.org/abs/2509.15800)), with TRL's `SFTTrainer`",
}
MODEL_CARD = """---
{card_data}
---

# {model_name}

This model is a fine-tuned version of {base}{dataset}.
It was trained with {method}, using [TRL](https://github.com/huggingface/trl).

## Quick start

```python
from transformers import AutoModelForImageTextToText, AutoProcessor

model = AutoModelForImageTextToText.from_pretrained("{model_id}")
processor = AutoProcessor.from_pretrained("{model_id}")
```

Give it the keyframes of a video as images, in time order, then the question; `kfgrpo eval --model {model_id}`
scores it on Video-MME, LVBench, MVBench or a manifest of your own.

### Framework versions

{versions}

## Citations

ChronoForge-RL:

```bibtex
{chronoforge}
```
{grpo}
TRL:

```bibtex
{trl}
```
"""


def is_hub_id(name: str | None) -> bool:
    """``org/name`` or ``name`` that is not a local path."""
    if not name or os.path.exists(name) or name.startswith(("/", ".", "~")):
        return False
    return name.count("/") <= 1


def base_model_of(path: str | None) -> tuple[str | None, str | None]:
    """``(hub_id, local_path)`` of the model a run started from: a Hub id as given; for a local folder, the Hub id its
    own model card names as ``base_model`` (a kfgrpo or TRL output), if any."""
    if not path:
        return None, None
    if is_hub_id(path):
        return path, None
    card = Path(path) / "README.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        try:
            base = ModelCard.load(card).data.base_model
        except Exception:  # a hand-written README without a card header
            base = None
        base = base[0] if isinstance(base, list) and base else base
        if isinstance(base, str) and is_hub_id(base):
            return base, path
    return None, path


def write_model_card(trainer, method: str, dataset_name=None, tags=(), model_name=None) -> Path:
    """``output_dir/README.md``: the method (ChronoForge-RL / kfgrpo, TRL, GRPO), the real base model (never "None")
    and a Hub link for the dataset only when it is a Hub dataset."""
    import importlib.metadata as md

    from huggingface_hub import ModelCardData
    from trl.trainer.utils import get_config_model_id

    out = Path(trainer.args.output_dir)
    hub_base, local_base = base_model_of(get_config_model_id(trainer.accelerator.unwrap_model(trainer.model).config))
    if hub_base and local_base:
        base = f"[{hub_base}](https://huggingface.co/{hub_base}) (through the local checkpoint `{local_base}`)"
    elif hub_base:
        base = f"[{hub_base}](https://huggingface.co/{hub_base})"
    else:
        base = f"the local checkpoint `{local_base}`"
    hub_data = dataset_name if is_hub_id(dataset_name) else None
    if hub_data:
        dataset = f" on the [{hub_data}](https://huggingface.co/datasets/{hub_data}) dataset"
    elif dataset_name:
        dataset = f" on the local dataset `{dataset_name}`"
    else:
        dataset = ""
    name = model_name or trainer.hub_model_id or out.name
    data = ModelCardData(
        base_model=hub_base,
        datasets=[hub_data] if hub_data else None,
        library_name="transformers",
        model_name=name,
        tags=sorted({"kfgrpo", "trl", "video", *tags}),
    )
    versions = "\n".join(
        f"- {pkg}: {md.version(dist)}"
        for pkg, dist in (
            ("kfgrpo", "kfgrpo"),
            ("TRL", "trl"),
            ("Transformers", "transformers"),
            ("PyTorch", "torch"),
            ("Datasets", "datasets"),
        )  # fmt: skip
    )
    text = MODEL_CARD.format(
        card_data=data.to_yaml(),
        model_name=name,
        base=base,
        dataset=dataset,
        method=METHODS[method],
        model_id=trainer.hub_model_id or str(out),
        versions=versions,
        chronoforge=CHRONOFORGE_CITATION,
        grpo=f"\nGRPO:\n\n```bibtex\n{GRPO_CITATION}\n```\n" if method == "KF-GRPO" else "",
        trl=TRL_CITATION,
    )
    path = out / "README.md"
    path.write_text(text)
    return path


MODEL_CARD_SECTION = """
## KF-GRPO

Trained with [kfgrpo](https://arxiv.org/abs/2509.15800) (ChronoForge-RL: Temporal Apex Distillation keyframes +
KeyFrame-aware GRPO), preset `{preset}`.

| knob | value |
|---|---|
| probes | {probes} |
| keyframe reward (`kf_reward`) | {reward} |
| weight α per probe | {alpha} |
| saliency weight β_s | {beta} |
| {reward_knobs} |

### Keyframes (TAD)

```json
{tad}
```

### Final metrics

```json
{metrics}
```
"""


def _reward_knobs(args) -> str:
    """The knobs the ``kf_reward`` rule reads (``kfgrpo.rewards.rules``), as one table row."""
    from .rewards.rules import RULES

    knobs = RULES[args.kf_reward].knobs
    values = ["off" if getattr(args, k) is None else str(getattr(args, k)) for k in knobs]  # None: a knob unset
    return f"{', '.join(knobs)} | " + ", ".join(values)


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
        reward=args.kf_reward,
        alpha=args.kf_probe_bonus,
        beta=args.kf_saliency_weight,
        reward_knobs=_reward_knobs(args),
        tad=tad,
        metrics=json.dumps(final, indent=2, sort_keys=True),
    )
    with open(path, "a") as fh:
        fh.write(section)
    return path
