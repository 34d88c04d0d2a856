"""Model loading shared by ``kfgrpo train``, ``kfgrpo sft`` and ``kfgrpo eval``: TRL's ``ModelConfig`` plus vision
freezing, the ``from_pretrained`` arguments it implies, resume and dry-run helpers."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field

from trl import ModelConfig, get_quantization_config

# Attribute names of the vision encoder (ViT + patch merger / projector) in transformers' VLMs:
# Qwen2-VL / Qwen2.5-VL / Qwen3-VL use `visual`, LLaVA-style models `vision_tower` + `multi_modal_projector`.
VISION_MODULE_NAMES = ("visual", "vision_tower", "vision_model", "multi_modal_projector")


@dataclass
class KFModelConfig(ModelConfig):
    """``trl.ModelConfig`` plus ``freeze_vision_modules`` (the name VLM-R1 / R1-V use for the same switch)."""

    freeze_vision_modules: bool = field(
        default=False,
        metadata={
            "help": "Freeze the vision encoder and its projector (train the language model only). The CPU demo needs "
            "it: a random-weight ViT trained at the language model's learning rate collapses, while its frozen "
            "random features already separate the ChronoSynth colours."
        },
    )


def vision_parameters(model):
    """``(name, parameter)`` of every vision-encoder parameter (any name component in ``VISION_MODULE_NAMES``)."""
    for name, param in model.named_parameters():
        if any(part in VISION_MODULE_NAMES for part in name.split(".")):
            yield name, param


def freeze_vision_modules(model) -> int:
    """Sets ``requires_grad=False`` on the vision encoder; returns how many parameters were frozen.

    Call it before ``trainer.train()``: the optimizer is built there from parameters that require grad.
    """
    frozen = 0
    for _, param in vision_parameters(model):
        param.requires_grad_(False)
        frozen += getattr(param, "ds_numel", param.numel())  # under ZeRO-3 a rank holds a shard: numel() may be 0
    if not frozen:
        raise ValueError(f"freeze_vision_modules: no parameter of {type(model).__name__} under {VISION_MODULE_NAMES}")
    return frozen


def model_init_kwargs(model_args: ModelConfig) -> dict:
    """``from_pretrained`` arguments for every loading field of ``model_args`` (revision, dtype, attention
    implementation, 4/8-bit quantization): TRL trainers' ``model_init_kwargs``, and ``load_model``'s. The LoRA fields
    go to ``trl.get_peft_config``."""
    kwargs = dict(revision=model_args.model_revision, dtype=model_args.dtype)
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    quantization = get_quantization_config(model_args)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
    return kwargs


def load_model(model_args: ModelConfig):
    """The image-text model of ``model_args`` for inference (``kfgrpo eval``), in eval mode."""
    import torch
    from transformers import AutoModelForImageTextToText

    kwargs = model_init_kwargs(model_args)
    if kwargs["dtype"] not in (None, "auto"):
        kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    return AutoModelForImageTextToText.from_pretrained(model_args.model_name_or_path, **kwargs).eval()


def load_processor(model_args: ModelConfig, padding_side: str = "left"):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        padding_side=padding_side,
    )


# Vision-language families whose pixel tensors are indexed by tile rather than by image. TRL's own forward gets their
# tile counts (``num_tiles``, which it recovers from the image processor); kfgrpo's teacher-forced forwards (likelihood
# probes, reliance scoring) batch prompts that TRL never saw and have no tile counts to pass, so TRL would slice those
# tensors per image (InternVL) or fail (LFM2-VL). They are refused where those forwards run, before anything loads.
TILE_INDEXED_FAMILIES = {"internvl": "InternVL", "lfm2_vl": "LFM2-VL"}
TESTED_FAMILIES = "Qwen2-VL, Qwen2.5-VL and Qwen3-VL"


def uses_teacher_forced_scoring(training_args) -> bool:
    """Whether kfgrpo runs forwards of its own: probes scored by likelihood, or a per-completion reliance reward."""
    from .rewards.rules import make_rule

    probes = bool(getattr(training_args, "kf_probes", None))
    return probes and make_rule(training_args).needs in ("reliance", "likelihood")


def check_model_family(model_name_or_path: str, training_args, revision: str | None = None) -> None:
    """Refuses, in one line, a tile-indexed family where kfgrpo's own forwards would run (see
    ``TILE_INDEXED_FAMILIES``). A config that cannot be read is left to the model loading to report."""
    from transformers import AutoConfig

    from .errors import UserError

    if not uses_teacher_forced_scoring(training_args):
        return
    try:
        model_type = AutoConfig.from_pretrained(model_name_or_path, revision=revision).model_type
    except (OSError, ValueError, KeyError):
        return
    if model_type in TILE_INDEXED_FAMILIES:
        raise UserError(
            f"{TILE_INDEXED_FAMILIES[model_type]} ({model_name_or_path}) indexes its pixels by tile, which kfgrpo's "
            f"probe and reliance scoring does not pass (tested: {TESTED_FAMILIES}); train it with `kf_preset: grpo` "
            "or `kf_reward: credit` (or `group` with `kf_probe_mode: sample`)"
        )


def recipe_mixed_precision(argv: list[str]) -> str:
    """The mixed precision a recipe trains in (``bf16``, ``fp16`` or ``no``), from ``--config FILE`` and the flags after
    it, for the launcher: ``make train`` passes it to ``accelerate launch --mixed_precision`` so that DeepSpeed's
    precision follows the recipe (the ZeRO configs' own ``mixed_precision: bf16`` would refuse ``bf16: false``)."""
    import yaml

    values = {"bf16": True, "fp16": False}  # GRPOConfig's defaults
    if "--config" in argv:
        with open(argv[argv.index("--config") + 1]) as fh:
            config = yaml.safe_load(fh) or {}
        values.update({k: bool(config[k]) for k in values if k in config})
    for i, arg in enumerate(argv):
        name, _, value = arg.partition("=")
        if name.lstrip("-") in values and name.startswith("--"):
            value = value or (argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else "true")
            values[name.lstrip("-")] = value.lower() in ("1", "true", "yes")
    return "bf16" if values["bf16"] else "fp16" if values["fp16"] else "no"


def last_checkpoint(training_args) -> str | None:
    """``resume_from_checkpoint``, else the newest complete ``checkpoint-*`` in ``output_dir`` (a rerun resumes).

    transformers writes a checkpoint's files in place, ``trainer_state.json`` last: a checkpoint without it was cut short
    by a kill while saving, and resuming it would fail or load half a state, so the newest one that has it is taken."""
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    checkpoint = training_args.resume_from_checkpoint
    if checkpoint is None and os.path.isdir(training_args.output_dir):
        steps = []
        for name in os.listdir(training_args.output_dir):
            step = name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
            path = os.path.join(training_args.output_dir, name)
            if step.isdigit() and os.path.isfile(os.path.join(path, "trainer_state.json")):
                steps.append((int(step), path))
        checkpoint = max(steps)[1] if steps else None
    return checkpoint


def parse_recipe(parser, argv: list[str]):
    """``parser.parse_args_and_config(argv)``. A dry run on a machine without a bf16 GPU (a login node) would fail
    on a GPU recipe's ``bf16: true``; it is resolved as if ``use_cpu: true`` was given, which ``resolved_config``
    says in a ``note``."""
    from .errors import UserError, check_model_path, parse_args
    from .hub import move_hub_token_to_environment

    dry_run = any(a in ("--dry_run", "--dry-run") for a in argv)
    try:
        parsed = parse_args(parser, argv)
    except UserError as exc:
        if not dry_run or "bf16" not in str(exc):
            raise
        parsed = parse_args(parser, [*argv, "--use_cpu", "true"])
        parsed[1]._kf_dry_run_note = "resolved with use_cpu=true: this machine has no bf16 GPU"
    move_hub_token_to_environment(parsed[1])  # also before a dry run prints the arguments
    if not dry_run:
        check_model_path(parsed[2].model_name_or_path)
        check_model_path(parsed[0].dataset_name, "dataset", "dataset_name")
    return parsed


def resolved_config(script_args, training_args, model_args) -> dict:
    """The three argument groups as one JSON-able dict (``--dry_run`` prints it)."""
    out = dict(
        script=dataclasses.asdict(script_args),
        model=dataclasses.asdict(model_args),
        training=json.loads(training_args.to_json_string()),
    )
    note = getattr(training_args, "_kf_dry_run_note", None)
    if note:
        out["note"] = note
    return out


def print_resolved(script_args, training_args, model_args) -> None:
    print(json.dumps(resolved_config(script_args, training_args, model_args), indent=2, default=str))


class ResumeWeightsMixin:
    """Makes a transformers ``Trainer`` resume with the checkpoint's weights (``KFGRPOTrainer``, ``kfgrpo sft``).

    transformers 5.17 resumes by ``load_state_dict`` on ``model.safetensors`` as written, but ``save_pretrained``
    writes it in the original checkpoint layout (its conversion mapping reverted: Qwen2.5-VL's ``model.layers.*`` for
    ``model.language_model.layers.*``). No weight matches, so the run would go on from the initial weights with the
    restored step and optimizer, only warning about missing keys (huggingface/transformers#43701). A plain resume
    (DeepSpeed, FSDP and PEFT load otherwise) reads the checkpoint with ``from_pretrained``, which applies the
    mapping, and copies it in strictly. tests/test_trl_contract.py fails once transformers maps the keys itself.
    """

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        model = self.model if model is None else model
        unwrapped = self.accelerator.unwrap_model(model)
        has_weights = any(
            os.path.isfile(os.path.join(resume_from_checkpoint, name))
            for name in ("model.safetensors", "model.safetensors.index.json")
        )
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(unwrapped, "peft_config") or not has_weights:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(unwrapped.parameters()).dtype
        loaded = type(unwrapped).from_pretrained(resume_from_checkpoint, dtype=dtype)
        unwrapped.load_state_dict(loaded.state_dict(), strict=True)

    def _load_optimizer_and_scheduler(self, checkpoint):
        """transformers maps the optimizer state to ``args.device`` when several processes train. In a multi-process
        CPU run (gloo, accelerate's MULTI_CPU: found by the two-node SLURM test) that device is ``cpu:0``, a location
        ``torch.load`` cannot restore ("don't know how to restore data location ... cpu:0"), so resuming failed. While
        transformers loads, a CPU map location with an index is read as plain ``cpu``; tests/test_trl_contract.py
        fails once either library changes."""
        import torch

        device = self.args.device
        if checkpoint is None or device.type != "cpu" or device.index is None:
            return super()._load_optimizer_and_scheduler(checkpoint)
        load = torch.load

        def cpu_load(f, *args, map_location=None, **kwargs):
            if isinstance(map_location, (str, torch.device)) and torch.device(map_location).type == "cpu":
                map_location = "cpu"
            return load(f, *args, map_location=map_location, **kwargs)

        torch.load = cpu_load
        try:
            return super()._load_optimizer_and_scheduler(checkpoint)
        finally:
            torch.load = load
