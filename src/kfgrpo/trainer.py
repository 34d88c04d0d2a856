"""``KFGRPOTrainer``: KeyFrame-aware GRPO as a thin subclass of TRL's ``GRPOTrainer``.

Rows are TRL GRPO rows (``prompt`` + ordered ``images``), optionally with the TAD columns ``saliency``,
``distractor_images``, ``distractor_timestamps``, ``distractor_saliency`` and ``timestamps``.

Two TRL hooks carry the method. ``_calculate_rewards``: after TRL has scored the real rollouts (and gathered the
reward matrix over ranks), each rank builds, for every group it holds, one perturbed frame set per probe
(``kfgrpo.probes``: the registry, the perturbed frames, the fitted prompt) and measures what the ``kf_reward`` rule
needs (``kfgrpo.rewards.rules``), only while training:

* ``sampled`` (``credit``; ``group`` with ``kf_probe_mode: sample``): G_p completions per probe and group through the
  trainer's own generation path (``_tokenize_prompts`` + ``_generate_single_turn``: transformers ``generate`` or vLLM),
  every probe of every group of the rank in one call, only for the groups the rule can act on, scored by the accuracy
  reward. Each rank pads its call to the largest rank's count (collective generation).
* ``likelihood`` (``group`` with ``kf_probe_mode: likelihood``): a target answer scored by teacher forcing under the
  real frames and under each probe's frames; the statistic is the per-token log-prob gap (nats).
* ``reliance`` (``rank``, ``shape``, ``gate``): every completion that can be paid is scored by teacher forcing under
  the real frames and under each probe's, all of a rank's completions in one batched no-grad forward per frame set.

The statistics are gathered (TRL's order, rank by rank) into a ``ProbeBatch`` and the rule returns either the
``kf_contrastive_reward`` column or a factor on positive advantages. ``_generate_and_score_completions`` is wrapped,
not copied: it applies that factor to the advantages TRL returns (and to the ones TRL logs). Probe rollouts are
scored, never trained on; the loss and buffering stay TRL's. With ``use_vllm``, two fixes to TRL's vLLM path are
applied (``kfgrpo.vllm_utils``): vLLM's vision embedding cache is reset after every weight sync, and vision placeholder
tokens are never sampled.

``visual_input: video`` (``kfgrpo.visual_input``) gives each row's keyframes as one video with their times, which TRL
1.16 does not wire: ``_tokenize_prompts`` sends video prompts through the processor's video path (and routes them to
a colocated vLLM engine), ``_get_per_token_logps_and_entropies`` runs TRL's own function chunk by chunk with each
chunk's videos added to the forward, and ``compute_loss`` hands it the batch's videos (``kf_videos``).
"""

from __future__ import annotations

import contextlib
import time

import torch
from accelerate.utils import gather
from trl import GRPOTrainer
from trl.data_utils import apply_chat_template, is_conversational
from trl.trainer.utils import pad, use_adapter

from .config import KFGRPOConfig
from .manifest import OPTION_LETTERS
from .model_utils import ResumeWeightsMixin
from .probes import perturb_row, probe_prompt, probe_rng, saliency_gap
from .rewards.accuracy import extract_answer, extract_choice, solution_letter
from .rewards.keyframe import kf_contrastive_reward
from .rewards.reliance import reliance_scores, spearman
from .rewards.rules import ProbeBatch, make_rule
from .rewards.utils import completion_text
from .visual_input import (
    VIDEO_FORWARD_KEYS,
    has_video,
    merge_videos,
    per_sample_videos,
    process_prompts,
    prompt_texts,
    to_video_prompt,
    videos_in_forward,
    vllm_video_request,
)
from .vllm_utils import (
    patch_weight_sync,
    require_vllm,
    route_videos,
    suppress_vision_tokens,
    vllm_colocate_limits,
)

_NOT_REWARD_KWARGS = ("prompt", "completion", "completion_ids")
# Processor outputs that TRL's `_get_per_token_logps_and_entropies` takes (checked by tests/test_trl_contract.py).
_LOGPS_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "spatial_shapes",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
)


class KFGRPOTrainer(ResumeWeightsMixin, GRPOTrainer):
    """GRPO with keyframe probes. ``args`` is a [`KFGRPOConfig`]; with ``kf_preset="grpo"`` it is plain GRPO."""

    _tag_names = ["trl", "grpo", "kfgrpo", "kf-grpo"]
    _name = "KF-GRPO"

    def __init__(self, model, reward_funcs, args: KFGRPOConfig | None = None, **kwargs):
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = KFGRPOConfig(f"{name.split('/')[-1]}-KF-GRPO")
        if not isinstance(args, KFGRPOConfig):
            raise TypeError(f"KFGRPOTrainer needs a KFGRPOConfig, got {type(args).__name__}")
        funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
        if args.kf_enabled:
            funcs.append(kf_contrastive_reward)
            if args.reward_weights is not None and len(args.reward_weights) == len(funcs) - 1:
                args.reward_weights = [*args.reward_weights, 1.0]
        if args.use_vllm:
            require_vllm()
        # The reference scorer needs TRL's reference model, which TRL loads, patches and prepares (DeepSpeed, FSDP)
        # only when beta != 0. Without a KL term, beta is non-zero during TRL's __init__ and 0 afterwards: the
        # reference model exists, the loss has no KL term (tests/test_trl_contract.py pins both).
        scored_by_reference = args.kf_enabled and make_rule(args).needs == "reliance"
        borrow_beta = scored_by_reference and args.kf_reliance_scorer == "reference" and not args.beta
        if borrow_beta:
            args.beta = 1.0
        try:
            with vllm_colocate_limits(args, kwargs.get("train_dataset")):
                super().__init__(model=model, reward_funcs=funcs, args=args, **kwargs)
        finally:
            if borrow_beta:
                args.beta = 0.0
        if borrow_beta:
            self.beta = 0.0
        self._kf_vllm_videos = {}  # expanded prompt ids -> vLLM video request, for the last tokenized prompts
        if args.use_vllm:
            patch_weight_sync(self.vllm_generation)  # reset vLLM's vision-embedding cache after every weight sync
            suppress_vision_tokens(self.vllm_generation, self.processing_class)  # as TRL's HF path does
            if args.visual_input == "video":
                route_videos(self.vllm_generation, lambda: self._kf_vllm_videos)
        self._kf_video = args.visual_input == "video"
        # Saved with every checkpoint (config.json): `kfgrpo eval --visual_input auto` evaluates on the trained mode.
        self.model.config.kfgrpo_visual_input = args.visual_input
        self._kf_rows = None  # the generation batch's rows as cached (frames in `images`): what the probes perturb
        self._kf_video_scope = None  # per-sample video inputs of the forwards being run (video mode)
        self._kf_capture_videos = False  # the next `_tokenize_prompts` call is the rollouts': keep its videos
        if self._kf_video:
            from .visual_input import check_video_model

            check_video_model(self.model.config.model_type)
            if not args.use_vllm:  # vLLM: suppress_vision_tokens biases both placeholders
                # A sampled video placeholder would mismatch the video features, as TRL guards image ones.
                video_token = self._video_pad_token_id
                suppress = list(self.generation_kwargs.get("suppress_tokens") or [])
                self.generation_kwargs["suppress_tokens"] = [*suppress, video_token]
                self.generation_config.suppress_tokens = [*suppress, video_token]
        self._kf_last_call = None
        self._kf_pending = None  # the current generation batch's ProbeBatch and advantage factor
        self._kf_generation = (-1, 0)  # (global step, generation batch within it): keys the probe draws
        self.kf_last_batch = None  # the last ProbeBatch, kept for diagnostics (benchmarks/bench_reliance_auc.py)
        self._kf_scored_indices = []
        if args.kf_enabled:
            if args.kf_accuracy_reward not in self.reward_func_names:
                raise ValueError(
                    f"kf_accuracy_reward={args.kf_accuracy_reward!r} is not among the reward functions "
                    f"{self.reward_func_names}"
                )
            self._kf_acc_index = self.reward_func_names.index(args.kf_accuracy_reward)
            self._kf_index = len(self.reward_func_names) - 1
            weights = self.reward_weights.tolist()
            self.kf_rule = make_rule(args, weights[self._kf_acc_index], weights[self._kf_index])

    def create_model_card(self, model_name=None, dataset_name=None, tags=None):
        """The model card (regenerated at every checkpoint and push, as TRL's is): the method (ChronoForge-RL, TRL,
        GRPO), the base model, the KF-GRPO settings, TAD config and metrics (``kfgrpo.hub``)."""
        if self.is_world_process_zero():
            from .hub import append_kfgrpo_card_section, write_model_card

            tags = [*([tags] if isinstance(tags, str) else tags or []), *self._tag_names, self.args.kf_preset]
            write_model_card(self, "KF-GRPO", dataset_name, tags, model_name)
            description = getattr(getattr(self.train_dataset, "info", None), "description", None)
            append_kfgrpo_card_section(self.args.output_dir, self.args, description, self.state.log_history)

    # ------------------------------------------------------------------------------------------------------------
    # The overridden TRL hooks
    # ------------------------------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        if not self.args.kf_enabled or not self.model.training:  # probes shape training rewards only
            return rewards
        start = time.perf_counter()
        g, rule = self.num_generations, self.kf_rule
        inputs = self._kf_rows if self._kf_video else inputs  # the rows as cached: frames in `images`
        rows = inputs[::g]  # one row per local group (rows arrive repeated G times)
        n, rank = len(inputs), self.accelerator.process_index
        local = slice(rank * n, (rank + 1) * n)
        probe_frames, gap = self._kf_probe_sets(rows)
        acc = rewards[:, self._kf_acc_index]
        batch = ProbeBatch(acc, g, tuple(self.args.kf_probes), gather(gap))
        batch.solution_letter = gather(torch.tensor([solution_letter(r) for r in rows], device=acc.device))
        if rule.needs == "reliance":
            distinct = self._kf_distinct_correct_groups(acc[local], completion_ids_list)
            need = rule.score_mask(acc[local], distinct)
            scores, real_logp = self._kf_completion_reliance(inputs, probe_frames, completion_ids_list, need)
            batch.per_probe, batch.real_logp = gather(scores), gather(real_logp)
            self._metrics["train"]["kf/reliance/distinct_correct_groups"].append(gather(distinct).mean().item())
        elif rule.needs == "sampled":
            others = [i for i in range(rewards.size(1)) if i != self._kf_index]
            total = (rewards[:, others] * self.reward_weights[others].to(rewards.device)).nansum(dim=1)
            probed = rule.probe_groups(acc.view(-1, g), total.view(-1, g))[rank * len(rows) : (rank + 1) * len(rows)]
            batch.probe_accuracy = gather(self._kf_probe_accuracy(rows, probe_frames, probed))
        else:
            batch.probe_logp_gap = gather(
                self._kf_likelihood_gaps(rows, probe_frames, acc[local], completion_ids_list)
            )
        factor = None
        if rule.acts_on == "reward":
            rewards[:, self._kf_index] = rule.reward(batch)
        else:
            rewards[:, self._kf_index] = 0.0  # the rule acts on the advantages (_generate_and_score_completions)
            factor = rule.advantage_factor(batch)
        self._kf_pending = dict(batch=batch, factor=factor)
        self.kf_last_batch = batch
        for key, value in rule.metrics(batch).items():
            self._metrics["train"][key].append(value)
        self._kf_log_answers(inputs, completions)
        self._kf_log_time(start)
        return rewards

    def _generate_and_score_completions(self, inputs):
        """TRL's, then (a rule that acts on advantages) positive advantages times the rule's factor."""
        self._kf_pending = None
        if self.model.training:
            step, index = self._kf_generation
            self._kf_generation = (self.state.global_step, index + 1 if step == self.state.global_step else 0)
        self._kf_rows = inputs
        if self._kf_video:  # each row's keyframes become one video part of its prompt; TRL sees no `images`
            inputs = [
                {
                    **{k: v for k, v in row.items() if k != "images"},
                    "prompt": self._kf_video_prompt(row, row["images"]),
                }
                for row in inputs
            ]
            self._kf_capture_videos = True
        try:
            output = super()._generate_and_score_completions(inputs)
            if self._kf_video:  # per-sample video inputs: TRL shuffles and splits lists with the rollouts
                output["kf_videos"] = self._kf_video_scope
        finally:
            self._kf_capture_videos, self._kf_video_scope, self._kf_rows = False, None, None
        pending, self._kf_pending = self._kf_pending, None
        if pending is None:
            return output
        n, rank = output["advantages"].size(0), self.accelerator.process_index
        local = slice(rank * n, (rank + 1) * n)  # TRL's process slice of the gathered batch
        if pending["factor"] is not None:
            output["advantages"] = self.kf_rule.scale_advantages(output["advantages"], pending["factor"][local])
            # TRL logged the advantages before they were rescaled: log the ones the loss uses.
            trained = gather(output["advantages"]).tolist()
            logged = self._logs["advantages"]
            for _ in range(min(len(trained), len(logged))):
                logged.pop()
            logged.extend(trained)
        if pending["batch"].per_probe is not None:
            self._kf_log_alignment(pending["batch"].derived, output["advantages"], local)
        return output

    def _tokenize_prompts(self, prompts):
        """TRL's for images; prompts holding a video part (``visual_input: video``) go through the processor's video
        path (``kfgrpo.visual_input.process_prompts``), which TRL 1.16 does not wire."""
        self._kf_vllm_videos = {}
        if not self._kf_video or not any(has_video(p) for p in prompts):
            return super()._tokenize_prompts(prompts)
        texts = prompt_texts(self.processing_class, prompts, **self.chat_template_kwargs)
        batch = process_prompts(self.processing_class, prompts, texts)
        kept = batch["attention_mask"].bool()
        prompt_ids = [ids[m].tolist() for ids, m in zip(batch["input_ids"], kept)]
        if self.use_vllm:  # the requests vLLM gets for these ids (kfgrpo.vllm_utils.route_videos)
            self._kf_vllm_videos = {
                tuple(ids): vllm_video_request(self.processing_class, p, text)
                for ids, p, text in zip(prompt_ids, prompts, texts)
                if has_video(p)
            }
        fields = {k: batch[k] for k in VIDEO_FORWARD_KEYS if k in batch}
        if "mm_token_type_ids" in batch:  # per token: TRL left-pads list fields with the prompt ids
            fields["mm_token_type_ids"] = [t[m].tolist() for t, m in zip(batch["mm_token_type_ids"], kept)]
        if self._kf_capture_videos:
            self._kf_capture_videos = False
            self._kf_video_scope = per_sample_videos(batch, self._video_pad_token_id)
        return prompt_ids, None, fields

    def _get_per_token_logps_and_entropies(
        self, model, input_ids, attention_mask, logits_to_keep, batch_size=None, **kw
    ):
        """TRL's, run chunk by chunk with each chunk's videos added to the model's forward (``visual_input:
        video``; TRL 1.16 passes image inputs only). Images mode: TRL's, unchanged."""
        scope = self._kf_video_scope
        if scope is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, **kw
            )
        if len(scope) != input_ids.size(0):
            raise RuntimeError(f"{len(scope)} videos for {input_ids.size(0)} sequences")
        kw.pop("mm_token_type_ids", None)  # rebuilt from each chunk's ids (videos_in_forward)
        batch_size = batch_size or input_ids.size(0)
        logps, entropies, aux = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = start + batch_size
            videos = merge_videos(scope[start:end])
            with videos_in_forward(model, videos, self._image_pad_token_id, self._video_pad_token_id):
                lp, ent, al = super()._get_per_token_logps_and_entropies(
                    model, input_ids[start:end], attention_mask[start:end], logits_to_keep, None, **kw
                )
            logps.append(lp)
            entropies.append(ent)
            aux.append(al)
        entropy = torch.cat(entropies) if entropies[0] is not None else None
        aux_loss = torch.stack(aux).mean() if aux[0] is not None else None
        return torch.cat(logps), entropy, aux_loss

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """TRL's loss; in video mode its forward sees the batch's videos (``kf_videos``, split with the rollouts)."""
        self._kf_video_scope = inputs.get("kf_videos")
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self._kf_video_scope = None

    def _kf_video_prompt(self, row, frames):
        """``row``'s prompt with ``frames`` as one video at the row's keyframe times (a probe's frames keep the real
        time grid: slot i shows time t_i, as the prompt's stated timestamps are never changed either)."""
        return to_video_prompt(row["prompt"], list(frames or []), row.get("timestamps"))

    # ------------------------------------------------------------------------------------------------------------
    # Per-completion reliance (kf_reward: rank | shape | gate)
    # ------------------------------------------------------------------------------------------------------------
    def _kf_correct(self, local_acc) -> torch.Tensor:
        return torch.nan_to_num(local_acc, nan=-1.0) > self.args.kf_correct_threshold

    def _kf_distinct_correct_groups(self, local_acc, completion_ids_list) -> torch.Tensor:
        """Per local group: 1.0 when at least two of its correct completions are different texts."""
        g, correct = self.num_generations, self._kf_correct(local_acc)
        out = [
            float(len({tuple(completion_ids_list[i]) for i in range(s, s + g) if correct[i]}) >= 2)
            for s in range(0, len(completion_ids_list), g)
        ]
        return torch.tensor(out, device=local_acc.device)

    def _kf_completion_reliance(self, inputs, probe_frames, completion_ids_list, need):
        """``(D_ij [n, P], mean real-frame log-prob [n])`` of the completions in ``need`` (NaN for the others).

        Each distinct completion of a group is scored once: one no-grad forward per frame set (real, then each probe)
        over all of them. Every rank runs the same number of forwards (ZeRO-3 gathers parameters collectively): a
        rank with fewer completions to score pads its batch with a copy of one of its own."""
        args, g, device = self.args, self.num_generations, self.accelerator.device
        n, num_probes = len(inputs), len(probe_frames)
        first = {}  # (group, completion ids) -> the first local index with that text
        for i in need.nonzero().flatten().tolist():
            first.setdefault((i // g, tuple(completion_ids_list[i])), i)
        order = list(first.values())
        self._kf_scored_indices = list(order)
        most = int(gather(torch.tensor([len(order)], device=device)).max().item())
        scores = torch.full((n, num_probes), float("nan"), device=device)
        real_logp = torch.full((n,), float("nan"), device=device)
        if most == 0:
            return scores, real_logp
        batch = order + [order[0] if order else 0] * (most - len(order))
        rows = [inputs[i] for i in batch]
        targets = [list(completion_ids_list[i]) for i in batch]
        sets = [[list(r.get("images") or []) for r in rows]] + [
            [frames[i // g] for i in batch] for frames in probe_frames
        ]
        per_set = [self._kf_teacher_forced_logps(rows, f, targets, args.kf_reliance_scorer) for f in sets]
        logps, mask = torch.stack([lp for lp, _ in per_set]), per_set[0][1]
        got = reliance_scores(
            logps[0],
            logps[1:],
            mask,
            top_tokens=args.kf_reliance_top_tokens,
            clip=args.kf_reliance_clip,
            space=args.kf_reliance_space,
        )[: len(order)]
        got_logp = ((logps[0] * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1))[: len(order)]
        position = {i: k for k, i in enumerate(order)}
        for i in need.nonzero().flatten().tolist():
            k = position[first[(i // g, tuple(completion_ids_list[i]))]]
            scores[i], real_logp[i] = got[k], got_logp[k]
        return scores, real_logp

    def _kf_log_answers(self, inputs, completions):
        """Share of each option letter among the batch's answers (multiple-choice rows), over every rank."""
        counts = torch.zeros(len(OPTION_LETTERS) + 1, device=self.accelerator.device)
        options = 0
        for row, completion in zip(inputs, completions):
            if row.get("problem_type") != "multiple_choice":
                continue
            options = max(options, len(row.get("options") or []))
            letter = extract_choice(extract_answer(completion_text(completion)), row.get("options"))
            counts[OPTION_LETTERS.index(letter) if letter else len(OPTION_LETTERS)] += 1
        counts = gather(counts.view(1, -1)).sum(dim=0)
        options = int(gather(torch.tensor([options], device=counts.device)).max().item())
        total = counts.sum().item()
        if total:
            for i, letter in enumerate(OPTION_LETTERS[:options]):
                self._metrics["train"][f"kf/answer/{letter}"].append(counts[i].item() / total)

    def _kf_log_alignment(self, derived, advantages, local):
        """Spearman(D, advantage) among each group's correct completions, averaged over the groups where both vary."""
        g = self.num_generations
        reliance, eligible = derived["reliance"][local].view(-1, g), derived["eligible"][local].view(-1, g)
        adv = advantages.view(-1, g)
        values = [spearman(reliance[i][eligible[i]], adv[i][eligible[i]]) for i in range(adv.size(0))]
        values = [v for v in values if v == v]
        stats = gather(torch.tensor([[sum(values), len(values)]], device=adv.device, dtype=torch.float32)).sum(0)
        if stats[1] > 0:
            self._metrics["train"]["kf/reliance/spearman_advantage"].append((stats[0] / stats[1]).item())

    # ------------------------------------------------------------------------------------------------------------
    # Probe machinery
    # ------------------------------------------------------------------------------------------------------------
    def _kf_probe_sets(self, rows):
        """Per probe, each row's perturbed frames; and the (rows × probes) saliency gap S̄(real) − S̄(probe)."""
        args, probes = self.args, self.args.kf_probes
        gap = torch.zeros(len(rows), len(probes), device=self.accelerator.device)
        frames = []
        first = self.accelerator.process_index * len(rows)  # every rank holds as many groups (see KFGRPOConfig)
        for j, kind in enumerate(probes):
            frames_j = []
            for i, row in enumerate(rows):
                # Keyed by the group's place in the global batch, not by (rank, local index): a group gets the same
                # probe however many processes share the batch (tests/test_multirank.py).
                # A second generation batch in one optimizer step (steps_per_generation < gradient accumulation)
                # draws other probes.
                rng = probe_rng(args.seed, *self._kf_generation, first + i, kind)
                probe_frames, probe_saliency = perturb_row(kind, row, rng, args.kf_probe_fraction)
                frames_j.append(probe_frames)
                gap[i, j] = saliency_gap(kind, row.get("saliency"), probe_saliency)
            frames.append(frames_j)
        return frames, gap

    def _kf_likelihood_gaps(self, rows, probe_frames, local_acc, completion_ids_list) -> torch.Tensor:
        """(rows × probes) per-token log-prob gap of each row's target, real frames minus the probe's (nats)."""
        g = self.num_generations
        targets = self._kf_targets(rows, local_acc.view(len(rows), g), completion_ids_list, g)
        real_frames = [list(r.get("images") or []) for r in rows]
        # One teacher-forced pass per frame set: real first, then each probe.
        lp = torch.stack([self._kf_target_logps(rows, frames, targets) for frames in [real_frames, *probe_frames]])
        return (lp[0:1] - lp[1:]).T.contiguous()

    def _kf_log_time(self, start):
        metrics = self._metrics["train"]
        now = time.perf_counter()
        metrics["kf/probe_time"].append(now - start)
        if self._kf_last_call is not None:
            metrics["kf/probe_time_share"].append((now - start) / max(now - self._kf_last_call, 1e-9))
        self._kf_last_call = now

    def _kf_probe_accuracy(self, rows, probe_frames, probed) -> torch.Tensor:
        """(rows × probes) mean accuracy of G_p sampled completions per probe on the probe's frames; NaN for the rows
        not in ``probed``. Every probe of every probed row in one generation call, padded to the largest rank's count
        (vLLM and ZeRO-3 generate collectively; TRL slices the gathered prompts by rank)."""
        device, g_p = self.accelerator.device, self.args.kf_probe_generations
        out = torch.full((len(rows), len(probe_frames)), float("nan"), device=device)
        wanted = [(i, j) for i in probed.nonzero().flatten().tolist() for j in range(len(probe_frames))]
        most = int(gather(torch.tensor([len(wanted)], device=device)).max().item())
        if most == 0:
            return out
        calls = wanted + [wanted[0] if wanted else (0, 0)] * (most - len(wanted))
        fit = self._kf_video_prompt if self._kf_video else lambda row, frames: probe_prompt(row["prompt"], frames)
        prompts = [fit(rows[i], probe_frames[j][i]) for i, j in calls for _ in range(g_p)]
        row_of = [i for i, _ in calls for _ in range(g_p)]
        prompt_ids, images, multimodal_fields = self._tokenize_prompts(prompts)
        # Each probe prompt is its own prompt (num_generations=1): G_p copies per (row, probe) were built above.
        completion_ids, _ = self._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations=1)
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        if is_conversational({"prompt": prompts[0]}):
            completions = [[{"role": "assistant", "content": t}] for t in texts]
        else:
            completions = texts
        columns = {k: [rows[i][k] for i in row_of] for k in rows[0] if k not in _NOT_REWARD_KWARGS}
        acc = self.reward_funcs[self._kf_acc_index](
            prompts=prompts,
            completions=completions,
            completion_ids=completion_ids,
            trainer_state=self.state,
            log_extra=lambda *a, **k: None,
            log_metric=lambda *a, **k: None,
            **columns,
        )
        acc = torch.tensor([float("nan") if a is None else a for a in acc], device=device)
        mean = torch.nanmean(acc.view(len(calls), g_p), dim=1).nan_to_num(0.0)
        for k, (i, j) in enumerate(wanted):
            out[i, j] = mean[k]
        return out

    def _kf_targets(self, rows, local_acc, completion_ids_list, g) -> list[list[int]]:
        """Token ids of the answer each row's likelihood probes score."""
        eos = (
            self.processing_class.tokenizer.eos_token_id
            if hasattr(self.processing_class, "tokenizer")
            else self.processing_class.eos_token_id
        )
        targets = []
        for i, row in enumerate(rows):
            best = int(torch.argmax(torch.nan_to_num(local_acc[i], nan=-1.0)))
            if self.args.kf_likelihood_target == "best" and local_acc[i, best] > self.args.kf_correct_threshold:
                targets.append(list(completion_ids_list[i * g + best]))
            else:
                text = self.args.kf_reference_template.format(solution=row.get("solution", ""))
                targets.append(self._tokenizer(text, add_special_tokens=False)["input_ids"] + [eos])
        return targets

    def _kf_target_logps(self, rows, frames, targets) -> torch.Tensor:
        """Mean per-token log-prob of each target given its row's prompt with ``frames`` (teacher forcing)."""
        logps, mask = self._kf_teacher_forced_logps(rows, frames, targets)
        return (logps * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1)

    @torch.no_grad()
    def _kf_teacher_forced_logps(self, rows, frames, targets, scorer: str = "policy"):
        """Per-token log-probs [N, T] (and their mask) of each target given its row's prompt with ``frames``.

        One batched forward through TRL's ``_get_per_token_logps_and_entropies`` (chunked by
        ``per_device_train_batch_size``), with the policy as it generated the rollouts, or the reference model."""
        device = self.accelerator.device
        scope = None
        if self._kf_video:
            prompts = [self._kf_video_prompt(row, f) for row, f in zip(rows, frames)]
            batch = process_prompts(self.processing_class, prompts, **self.chat_template_kwargs)
            scope = per_sample_videos(batch, self._video_pad_token_id)
            batch = {k: batch[k] for k in ("input_ids", "attention_mask")}
            has_images = False
        else:
            prompts = [probe_prompt(row["prompt"], f) for row, f in zip(rows, frames)]
            texts = [
                apply_chat_template({"prompt": p}, self.processing_class, **self.chat_template_kwargs)["prompt"]
                for p in prompts
            ]
            images = [list(f) or None for f in frames]
            has_images = any(images)
            batch = self.processing_class(
                images=images if has_images else None,
                text=texts,
                padding=True,
                padding_side="left",
                return_tensors="pt",
            )
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        target = pad(
            [torch.tensor(t) for t in targets], padding_value=self._tokenizer.pad_token_id, padding_side="right"
        ).to(device)
        target_mask = pad(
            [torch.ones(len(t), dtype=torch.long) for t in targets], padding_value=0, padding_side="right"
        ).to(device)
        input_ids = torch.cat([batch["input_ids"], target], dim=1)
        attention_mask = torch.cat([batch["attention_mask"], target_mask], dim=1)
        forward = {k: v for k, v in batch.items() if k in _LOGPS_FORWARD_KEYS}
        for key in ("mm_token_type_ids", "token_type_ids"):
            if key in forward:
                forward[key] = torch.cat([forward[key], forward[key].new_zeros(target.shape)], dim=1)
        model, adapter = self.model, contextlib.nullcontext()
        restore = model.training  # scored without dropout (nor LoRA dropout): D must not be a draw of noise
        outer_scope, self._kf_video_scope = self._kf_video_scope, scope  # these prompts' videos, not the rollouts'
        if scorer == "reference":
            if self.ref_model is not None:
                model = self.ref_model
            else:  # PEFT: the base model (or the initial "ref" adapter), as TRL's KL term does
                unwrapped = self.accelerator.unwrap_model(self.model)
                adapter = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        try:
            model.eval()
            with adapter:
                logps, _, _ = self._get_per_token_logps_and_entropies(
                    model,
                    input_ids,
                    attention_mask,
                    target.size(1),
                    batch_size=self.args.per_device_train_batch_size,
                    num_images=[len(f) for f in frames] if has_images else None,
                    **forward,
                )
        finally:
            model.train(restore)
            self._kf_video_scope = outer_scope
        return logps, target_mask.to(logps.dtype)
