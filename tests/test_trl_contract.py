"""Fails loudly when a TRL upgrade changes the hooks kfgrpo relies on (pinned: trl==1.16.0)."""

import inspect

import trl
from trl import GRPOTrainer
from trl.data_utils import prepare_multimodal_messages

from kfgrpo.trainer import KFGRPOTrainer


def _params(fn):
    return list(inspect.signature(fn).parameters)


def test_trl_version_is_the_pinned_one():
    assert trl.__version__ == "1.16.0", "kfgrpo pins trl==1.16.0; re-check every hook below before moving"


def test_overridden_hook_signature():
    # The TRL methods KFGRPOTrainer overrides: _calculate_rewards (probes, reward column) and
    # _generate_and_score_completions (wrapped: positive advantages rescaled after TRL's normalisation).
    assert _params(GRPOTrainer._calculate_rewards) == [
        "self",
        "inputs",
        "prompts",
        "completions",
        "completion_ids_list",
    ]
    overridden = {name for name, fn in vars(KFGRPOTrainer).items() if callable(fn) and hasattr(GRPOTrainer, name)}
    assert overridden == {
        "__init__",
        "_calculate_rewards",
        "_generate_and_score_completions",
        "create_model_card",
        "compute_loss",  # public: sets the batch's videos (visual_input: video)
        "_tokenize_prompts",  # video prompts through the processor's video path (test_video_hooks below)
        "_get_per_token_logps_and_entropies",  # TRL's, chunk by chunk, with each chunk's videos in the forward
    }
    assert _params(GRPOTrainer._generate_and_score_completions) == ["self", "inputs"]
    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    # the wrapper reads the local slice of the advantages, computed after the rewards of the same call
    assert source.index("self._calculate_rewards(") < source.index("advantages = rewards - mean_grouped_rewards")
    assert "advantages = advantages[process_slice]" in source and '"advantages": advantages,' in source
    assert "self.accelerator.process_index * len(prompts)" in source
    # the wrapper replaces the advantages TRL logged (gathered, all ranks) with the rescaled ones the loss uses
    assert 'self._logs["advantages"].extend(all_process_advantages.tolist())' in source
    assert source.index('self._logs["advantages"].extend') > source.index(
        "all_process_advantages = advantages.clone()"
    )
    assert '"advantages": deque(maxlen=args.generation_batch_size)' in inspect.getsource(GRPOTrainer.__init__)
    # the rank rule's cap reads TRL's weights (self.reward_weights, a tensor) and its sum_then_normalize branch
    assert "rewards = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)" in source
    from trl.trainer.base_trainer import _BaseTrainer

    assert _params(_BaseTrainer.create_model_card) == ["self", "model_name", "dataset_name", "tags"]


def test_reference_model_follows_beta():
    """KFGRPOTrainer borrows beta during TRL's __init__ so that TRL loads and prepares its reference model for the
    reference scorer, then sets beta to 0: TRL must create the reference model from beta at init and read the KL
    weight from ``self.beta`` in the loss."""
    init = inspect.getsource(GRPOTrainer.__init__)
    assert "self.beta = args.beta" in init and "if self.beta == 0.0:" in init
    assert "self.ref_model = create_model_from_path(" in init
    loss = inspect.getsource(GRPOTrainer._compute_loss)
    assert "if self.beta != 0.0:" in loss and "self.beta * per_token_kl" in loss
    assert "if self.beta != 0.0:" in inspect.getsource(GRPOTrainer._generate_and_score_completions)


def test_resume_hook_still_needs_the_fix():
    """transformers' own resume loads the checkpoint without the key mapping that save_pretrained reverted
    (huggingface/transformers#43701); kfgrpo.model_utils.ResumeWeightsMixin works around it. When this fails,
    transformers applies the mapping itself: drop the override."""
    import transformers
    from transformers import Trainer

    assert transformers.__version__ == "5.17.0", "re-check model_utils.ResumeWeightsMixin before moving"
    assert _params(Trainer._load_from_checkpoint) == ["self", "resume_from_checkpoint", "model"]
    source = inspect.getsource(Trainer._load_from_checkpoint)
    assert "load_state_dict(state_dict, False)" in source and "conversion" not in source
    from kfgrpo.model_utils import ResumeWeightsMixin
    from kfgrpo.sft import KFSFTTrainer

    assert issubclass(KFGRPOTrainer, ResumeWeightsMixin) and issubclass(KFSFTTrainer, ResumeWeightsMixin)


def test_multi_process_cpu_resume_still_needs_the_fix():
    """transformers loads the optimizer state onto ``args.device`` with several processes, which is ``cpu:0`` on CPU,
    and torch cannot restore that location: kfgrpo.model_utils.ResumeWeightsMixin._load_optimizer_and_scheduler maps
    it to ``cpu``. When this fails, one of them changed: re-check, and drop the override if it is no longer needed."""
    import io

    import pytest
    import torch
    from transformers import Trainer

    source = inspect.getsource(Trainer._load_optimizer_and_scheduler)
    assert 'map_location = self.args.device if self.args.world_size > 1 else "cpu"' in source
    buf = io.BytesIO()
    torch.save({"step": torch.ones(1)}, buf)
    buf.seek(0)
    with pytest.raises(RuntimeError, match="cpu:0"):
        torch.load(buf, map_location=torch.device("cpu", 0), weights_only=True)
    assert _params(GRPOTrainer._load_optimizer_and_scheduler) == ["self", "checkpoint"]


def test_hooks_the_probes_call():
    assert _params(GRPOTrainer._tokenize_prompts) == ["self", "prompts"]
    assert _params(GRPOTrainer._generate_single_turn)[:5] == [
        "self",
        "prompt_ids",
        "images",
        "multimodal_fields",
        "num_generations",
    ]
    p = _params(GRPOTrainer._get_per_token_logps_and_entropies)
    assert p[:5] == ["self", "model", "input_ids", "attention_mask", "logits_to_keep"]
    from kfgrpo.trainer import _LOGPS_FORWARD_KEYS

    for key in ("num_images", "batch_size", *_LOGPS_FORWARD_KEYS):  # what _kf_teacher_forced_logps passes through
        assert key in p, key
    from trl.trainer.utils import use_adapter  # the reference scorer with PEFT

    assert _params(use_adapter) == ["model", "adapter_name"]
    assert _params(prepare_multimodal_messages) == ["messages", "images"]


def test_vllm_generation_api():
    import trl.generation.vllm_generation as vg
    from trl.generation.vllm_generation import VLLMGeneration

    # KFGRPOTrainer rebinds this module-level name (vLLM's LLM class) to add limit_mm_per_prompt in colocate mode.
    assert "self.llm = LLM(" in inspect.getsource(VLLMGeneration)
    # ... a module-level name bound by `from vllm import LLM` (checked in the source: vLLM itself is only installed by
    # `make test-vllm`, where tests/test_vllm.py runs the rebinding for real)
    import re

    assert re.search(r"^\s*from vllm import .*\bLLM\b", inspect.getsource(vg), re.M)
    assert _params(VLLMGeneration.generate)[:4] == ["self", "prompts", "images", "num_generations"]


def test_vllm_weight_sync_still_needs_kfgrpos_fixes():
    """kfgrpo wraps ``VLLMGeneration.sync_weights`` (kfgrpo.vllm_utils.patch_weight_sync) because TRL 1.16 resets only
    the prefix cache after a sync, and adds a logit bias against vision placeholders to ``generation_kwargs`` because
    only TRL's transformers path suppresses them. If an upgrade does either itself, this fails: drop the kfgrpo fix."""
    from trl.generation.vllm_generation import VLLMGeneration

    sync = inspect.getsource(VLLMGeneration.sync_weights)
    assert "reset_prefix_cache()" in sync
    assert "reset_encoder_cache" not in sync, "TRL now resets vLLM's encoder cache itself: drop patch_weight_sync"
    assert "load_weights" in sync and "reload_weights" not in sync
    assert "self.vllm_generation.sync_weights()" in inspect.getsource(GRPOTrainer)
    generate = inspect.getsource(VLLMGeneration.generate)
    assert "self.generation_kwargs" in generate, "vLLM sampling no longer reads generation_kwargs"
    init = inspect.getsource(GRPOTrainer.__init__)
    assert 'generation_kwargs["suppress_tokens"] = [model.config.image_token_id]' in init
    assert "suppress_tokens" not in inspect.getsource(VLLMGeneration), "TRL now suppresses image tokens in vLLM"


def test_trainer_attributes_used():
    src = inspect.getsource(GRPOTrainer)
    for attr in (
        "self.reward_func_names",
        "self.num_generations_eval",
        "self._metrics",
        "self.chat_template_kwargs",
        "self._tokenizer",
        "self._logs",
        "self.reward_weights",
    ):
        assert attr in src, attr


def test_video_hooks():
    """``visual_input: video`` (kfgrpo.visual_input) relies on TRL 1.16 wiring images only and on how it moves
    per-token and per-sample fields; an upgrade that wires videos itself fails here: use its path instead."""
    import torch
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    source = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    assert "pixel_values_videos" not in source and "video_grid_thw" not in source, "TRL now wires videos"
    # rows without `images`: the text-only branch, no image kwargs in TRL's forwards (kfgrpo adds the videos)
    assert 'if "images" in inputs[0]:' in source and "forward_kwargs = {}" in source
    assert source.count("self._get_per_token_logps_and_entropies(") >= 2  # old and reference log-probs
    assert "prompt_ids, images, multimodal_fields = self._tokenize_prompts(prompts)" in inspect.getsource(
        GRPOTrainer._generate
    )
    single = inspect.getsource(GRPOTrainer._generate_single_turn)
    assert "isinstance(v, list) and v and isinstance(v[0], list)" in single  # per-token lists are left-padded
    assert "generate_inputs[k] = v" in single  # tensors (pixel_values_videos, video_grid_thw) reach generate
    assert _params(GRPOTrainer.compute_loss) == ["self", "model", "inputs", "return_outputs", "num_items_in_batch"]
    assert "self._get_per_token_logps_and_entropies(" in inspect.getsource(GRPOTrainer._compute_loss)
    logps = inspect.getsource(GRPOTrainer._get_per_token_logps_and_entropies)
    assert "outputs = model(**model_inputs" in logps  # a forward pre-hook on `model` sees every chunk
    assert _params(GRPOTrainer._get_per_token_logps_and_entropies)[5:8] == [
        "batch_size",
        "compute_entropy",
        "compute_aux_loss",
    ]
    # kf_videos, a list of per-sample dicts, travels with the rollouts through TRL's shuffle and split
    batch = {"x": torch.arange(4), "kf_videos": [{"i": i} for i in range(4)], "n": torch.tensor(4)}
    shuffled = shuffle_sequence_dict(batch)
    assert [v["i"] for v in shuffled["kf_videos"]] == shuffled["x"].tolist()
    halves = split_tensor_dict(shuffled, 2)
    assert [[v["i"] for v in h["kf_videos"]] for h in halves] == [h["x"].tolist() for h in halves]
    init = inspect.getsource(GRPOTrainer.__init__)
    assert 'convert_tokens_to_ids("<|video_pad|>")' in init and "self.generation_kwargs = generation_kwargs" in init
    # vLLM colocate (kfgrpo.vllm_utils.route_videos): TRL sends token-id rows through the engine's `generate`, which
    # kfgrpo wraps to swap in the video requests; the server path has no video route (refused in KFGRPOConfig)
    from trl.generation.vllm_generation import VLLMGeneration

    generate = inspect.getsource(VLLMGeneration.generate)
    assert 'vllm_prompts = [{"prompt_token_ids": ids} for ids in all_prompts]' in generate
    assert "self.llm.generate(vllm_prompts, sampling_params=sampling_params" in generate
    assert "video" not in inspect.getsource(VLLMGeneration), "TRL's vLLM path now handles videos: use it"
