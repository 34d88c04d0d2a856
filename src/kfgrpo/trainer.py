"""``KFGRPOTrainer``: KeyFrame-aware GRPO as a thin subclass of TRL's ``GRPOTrainer``.

Rows are TRL GRPO rows (``prompt`` + ordered ``images``), optionally with the TAD columns ``saliency``,
``distractor_images``, ``distractor_timestamps``, ``distractor_saliency`` and ``timestamps``.

Two TRL hooks are overridden. ``_calculate_rewards``: after TRL has scored the real rollouts (and gathered the
reward matrix over ranks), each rank builds, for every group it holds, one perturbed frame set per probe
(``kfgrpo.probes``: the registry, the perturbed frames, the fitted prompt) and measures the policy on it, only while
training. ``_generate_and_score_completions`` is wrapped, not copied: with ``kf_reward: shape | gate`` it rescales
the positive advantages TRL returns, and it logs how the keyframe signal lines up with the advantages.

``kf_reward: rank | shape | gate`` (``kfgrpo.rewards.reliance``, the ``kf-grpo`` preset): every real completion is
scored by teacher forcing under the real frames and under each probe's frames, all of a rank's completions in one
batched no-grad forward per frame set; its frame reliance D_i ranks it among the group's correct completions.

``kf_reward: group`` (``kfgrpo.rewards.keyframe``, the ``t-grpo`` preset and the method spec's rule):

* ``kf_probe_mode="sample"``: G_p completions per group through the trainer's own generation path
  (``_tokenize_prompts`` + ``_generate_single_turn``: transformers ``generate`` or vLLM, the same collective calls on
  every rank), scored by the accuracy reward; the probe statistic is their mean accuracy.
* ``kf_probe_mode="likelihood"``: no generation. A target answer (the group's most accurate completion, or the
  reference answer) is scored by teacher forcing under the real frames and under each probe's frames, in one batched
  forward pass through TRL's ``_get_per_token_logps_and_entropies``; the statistic is the per-token log-prob gap
  Δ = mean log p(target | real frames) − mean log p(target | probe frames), in nats per token.

Probe statistics are gathered, combined per group with the real accuracy on the gathered tensor (never per batch),
and turned into the contrastive keyframe reward (``kfgrpo.rewards.keyframe``), written into the
``kf_contrastive_reward`` column (as is the ``rank`` reward). Probe rollouts are scored, never trained on; the advantages, buffering and loss
stay TRL's. With ``use_vllm``, two fixes to TRL's vLLM path are applied (``kfgrpo.vllm_utils``): vLLM's vision
embedding cache is reset after every weight sync, and vision placeholder tokens are never sampled.
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
from .probes import ORDER_PROBES, perturb_row, probe_prompt, probe_rng, saliency_gap
from .rewards.accuracy import extract_answer, extract_choice
from .rewards.keyframe import keyframe_bonus, kf_contrastive_reward
from .rewards.reliance import (
    centred_ranks,
    combine_probes,
    eligible_mask,
    gate_advantages,
    rank_reward,
    reliance_gate,
    reliance_scores,
    shape_advantages,
    spearman,
)
from .rewards.utils import completion_text
from .vllm_utils import patch_weight_sync, require_vllm, suppress_vision_tokens, vllm_colocate_limits

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
        borrow_beta = (
            args.kf_enabled and args.kf_reward != "group" and args.kf_reliance_scorer == "reference" and not args.beta
        )
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
        if args.use_vllm:
            patch_weight_sync(self.vllm_generation)  # reset vLLM's vision-embedding cache after every weight sync
            suppress_vision_tokens(self.vllm_generation, self.processing_class)  # as TRL's HF path does
        self._kf_last_call = None
        self._kf_pending = None  # per-completion reliance of the current generation batch (kf_reward != group)
        self.kf_last_scores = None
        self._kf_scored_indices = []
        if args.kf_enabled:
            if args.kf_accuracy_reward not in self.reward_func_names:
                raise ValueError(
                    f"kf_accuracy_reward={args.kf_accuracy_reward!r} is not among the reward functions "
                    f"{self.reward_func_names}"
                )
            self._kf_acc_index = self.reward_func_names.index(args.kf_accuracy_reward)
            self._kf_index = len(self.reward_func_names) - 1
            # The bonus rule's knobs (kfgrpo.rewards.keyframe.keyframe_bonus), from the config.
            self._kf_rule = dict(
                threshold=args.kf_threshold,
                strict=args.kf_strict,
                rule=args.kf_rule,
                correct_threshold=args.kf_correct_threshold,
                saliency_weight=args.kf_saliency_weight,
                mode=args.kf_probe_mode,
                margin=args.kf_likelihood_margin,
                scale=args.kf_likelihood_scale,
            )

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
        g = self.num_generations
        rows = inputs[::g]  # one row per local group (rows arrive repeated G times)
        probe_frames, saliency_gap = self._kf_probe_sets(rows)
        if self.args.kf_reward != "group":
            self._kf_reliance(inputs, rows, probe_frames, saliency_gap, rewards, completions, completion_ids_list)
            self._kf_log_time(start)
            return rewards
        scores = self._kf_probe_scores(rows, probe_frames, rewards, completion_ids_list)
        all_scores, all_gap = gather(scores), gather(saliency_gap)  # per group, over every rank
        real_acc = rewards[:, self._kf_acc_index].view(-1, g)
        bonus, per_probe = keyframe_bonus(
            real_acc, all_scores, self.args.kf_probe_bonus, saliency_gap=all_gap, **self._kf_rule
        )
        rewards[:, self._kf_index] = bonus.reshape(-1)
        self._kf_log(real_acc, all_scores, all_gap, per_probe)
        self._kf_log_answers(inputs, completions)
        self._kf_log_time(start)
        return rewards

    def _generate_and_score_completions(self, inputs):
        """TRL's, then (``kf_reward: shape | gate``) positive advantages rescaled by each completion's reliance."""
        self._kf_pending = None
        output = super()._generate_and_score_completions(inputs)
        pending, self._kf_pending = self._kf_pending, None
        if pending is None:
            return output
        n, rank = output["advantages"].size(0), self.accelerator.process_index
        local = slice(rank * n, (rank + 1) * n)  # TRL's process slice of the gathered batch
        adv = output["advantages"]
        if self.args.kf_reward == "shape":
            adv = shape_advantages(adv, pending["centred"][local], self.args.kf_shape_coef)
        elif self.args.kf_reward == "gate":
            adv = gate_advantages(adv, pending["gate"][local])
        output["advantages"] = adv
        self._kf_log_alignment(pending, adv, local)
        return output

    # ------------------------------------------------------------------------------------------------------------
    # Per-completion reliance (kf_reward: rank | shape | gate)
    # ------------------------------------------------------------------------------------------------------------
    def _kf_reliance(self, inputs, rows, probe_frames, saliency_gap, rewards, completions, completion_ids_list):
        """Scores the local completions that can be paid, gathers D and writes the reward column."""
        args, g = self.args, self.num_generations
        n, rank = len(inputs), self.accelerator.process_index
        acc = rewards[:, self._kf_acc_index]
        need = self._kf_needs_score(acc[rank * n : (rank + 1) * n], completion_ids_list)
        scores, real_logp = self._kf_completion_reliance(inputs, probe_frames, completion_ids_list, need)
        gap = saliency_gap.repeat_interleave(g, dim=0)  # per completion
        reliance = combine_probes(scores, args.kf_probe_bonus, gap, args.kf_saliency_weight)
        # Gathered in TRL's order (rank by rank), like the reward matrix.
        all_scores, all_reliance, all_real_logp = gather(scores), gather(reliance), gather(real_logp)
        eligible = eligible_mask(
            acc, all_real_logp, correct_threshold=args.kf_correct_threshold, floor=args.kf_likelihood_floor
        )  # NaN log-likelihood (not scored) is never eligible
        correct = self._kf_correct(acc).view(-1, g)
        centred = centred_ranks(
            all_reliance.view(-1, g),
            eligible.view(-1, g),
            noise_floor=args.kf_reliance_noise_floor,
            correct=correct if args.kf_reliance_mixed_groups_only else None,
        ).reshape(-1)
        if args.kf_reward == "rank":
            alpha = float(sum(args.kf_probe_bonus))
            column = rank_reward(centred, acc, alpha, correct_threshold=args.kf_correct_threshold)
        else:
            column = torch.zeros_like(acc)  # shape / gate act on the advantages (_generate_and_score_completions)
        rewards[:, self._kf_index] = column
        gate = reliance_gate(torch.nan_to_num(all_reliance, nan=0.0), eligible, args.kf_gate_scale)
        self._kf_pending = dict(reliance=all_reliance, centred=centred, gate=gate, eligible=eligible, accuracy=acc)
        # The last batch's per-completion scores, kept for diagnostics (benchmarks/bench_reliance_auc.py).
        self.kf_last_scores = dict(self._kf_pending, per_probe=all_scores, real_logp=all_real_logp, column=column)
        distinct = gather(self._kf_distinct_correct_groups(acc[rank * n : (rank + 1) * n], completion_ids_list))
        self._kf_log_reliance(all_scores, all_reliance, all_real_logp, eligible, centred, gate, distinct)
        self._kf_log_answers(inputs, completions)

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

    def _kf_needs_score(self, local_acc, completion_ids_list) -> torch.Tensor:
        """The local completions whose reliance can change an update: correct ones; for ``rank`` / ``shape`` only in
        groups where two correct completions differ (identical texts tie, a lone correct one has nothing to rank) and,
        for ``shape`` or with ``kf_reliance_mixed_groups_only``, some completion is wrong."""
        correct = self._kf_correct(local_acc)
        if self.args.kf_reward == "gate":
            return correct
        g = self.num_generations
        rankable = self._kf_distinct_correct_groups(local_acc, completion_ids_list).bool()
        if self.args.kf_reward == "shape" or self.args.kf_reliance_mixed_groups_only:
            # an all-correct group: GRPO's advantages are 0 (shape scales nothing), and rank skips it
            rankable &= ~correct.view(-1, g).all(dim=1)
        return correct & rankable.repeat_interleave(g)

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
            top_fraction=args.kf_reliance_top_fraction,
            clip=args.kf_reliance_clip,
            space=args.kf_reliance_space,
        )[: len(order)]
        got_logp = ((logps[0] * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1))[: len(order)]
        position = {i: k for k, i in enumerate(order)}
        for i in need.nonzero().flatten().tolist():
            k = position[first[(i // g, tuple(completion_ids_list[i]))]]
            scores[i], real_logp[i] = got[k], got_logp[k]
        return scores, real_logp

    def _kf_log_reliance(self, scores, reliance, real_logp, eligible, centred, gate, distinct):
        """Means over the completions that were scored (NaN-free); shares over all completions or groups."""
        metrics, g = self._metrics["train"], self.num_generations
        scored = ~torch.isnan(reliance)
        metrics["kf/real/accuracy"].append(
            torch.nanmean(self._kf_pending["accuracy"].view(-1, g), dim=1).nanmean().item()
        )
        metrics["kf/reliance/scored"].append(scored.float().mean().item())
        if scored.any():
            metrics["kf/real/logp"].append(real_logp[scored].mean().item())
            metrics["kf/reliance/mean"].append(reliance[scored].mean().item())
            metrics["kf/reliance/std"].append(reliance[scored].std().item() if scored.sum() > 1 else 0.0)
            for j, kind in enumerate(self.args.kf_probes):
                metrics[f"kf/{kind}/reliance"].append(scores[scored, j].mean().item())
        metrics["kf/reliance/eligible"].append(eligible.float().mean().item())
        metrics["kf/reliance/ranked_groups"].append((centred.view(-1, g) != 0).any(dim=1).float().mean().item())
        metrics["kf/reliance/distinct_correct_groups"].append(distinct.float().mean().item())
        if self.args.kf_reward == "gate":
            metrics["kf/reliance/gate"].append(gate[eligible].mean().item() if eligible.any() else 0.0)

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

    def _kf_log_alignment(self, pending, advantages, local):
        """Spearman(D, advantage) among each group's correct completions, averaged over the groups where both vary."""
        g = self.num_generations
        reliance, eligible = pending["reliance"][local].view(-1, g), pending["eligible"][local].view(-1, g)
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
                rng = probe_rng(args.seed, self.state.global_step, first + i, kind)
                probe_frames, probe_saliency = perturb_row(kind, row, rng, args.kf_probe_fraction)
                frames_j.append(probe_frames)
                gap[i, j] = saliency_gap(kind, row.get("saliency"), probe_saliency)
            frames.append(frames_j)
        return frames, gap

    def _kf_probe_scores(self, rows, probe_frames, rewards, completion_ids_list) -> torch.Tensor:
        """(rows × probes) probe statistics: accuracy on the probe frames (sampled) or the log-prob gap (likelihood)."""
        args, g = self.args, self.num_generations
        if args.kf_probe_mode == "sample":
            columns = [self._kf_probe_accuracy(rows, frames, args.kf_probe_generations) for frames in probe_frames]
            return torch.stack(columns, dim=1)
        n, rank = len(rows), self.accelerator.process_index
        local = rewards[rank * n * g : (rank + 1) * n * g, self._kf_acc_index].view(n, g)
        targets = self._kf_targets(rows, local, completion_ids_list, g)
        real_frames = [list(r.get("images") or []) for r in rows]
        # One teacher-forced pass per frame set: real first, then each probe.
        lp = torch.stack([self._kf_target_logps(rows, frames, targets) for frames in [real_frames, *probe_frames]])
        return (lp[0:1] - lp[1:]).T.contiguous()

    def _kf_log(self, real_acc, scores, gap, per_probe):
        metrics = self._metrics["train"]
        p = torch.nanmean(real_acc, dim=1)
        metrics["kf/real/accuracy"].append(p.mean().item())
        for j, kind in enumerate(self.args.kf_probes):
            if self.args.kf_probe_mode == "sample":
                metrics[f"kf/{kind}/accuracy"].append(scores[:, j].mean().item())
                metrics[f"kf/{kind}/gap"].append((p - scores[:, j]).mean().item())
            else:
                metrics[f"kf/{kind}/gap"].append(scores[:, j].mean().item())  # log-prob gap, nats/token
            metrics[f"kf/{kind}/bonus"].append(per_probe[:, j].mean().item())
            if kind not in ORDER_PROBES:
                metrics[f"kf/{kind}/saliency_gap"].append(gap[:, j].mean().item())

    def _kf_log_time(self, start):
        metrics = self._metrics["train"]
        now = time.perf_counter()
        metrics["kf/probe_time"].append(now - start)
        if self._kf_last_call is not None:
            metrics["kf/probe_time_share"].append((now - start) / max(now - self._kf_last_call, 1e-9))
        self._kf_last_call = now

    def _kf_probe_accuracy(self, rows, frames, num_probe_generations: int) -> torch.Tensor:
        """Mean accuracy of ``num_probe_generations`` sampled completions per row on ``frames``."""
        prompts, row_of = [], []
        for i, (row, f) in enumerate(zip(rows, frames)):
            for _ in range(num_probe_generations):
                prompts.append(probe_prompt(row["prompt"], f))
                row_of.append(i)
        prompt_ids, images, multimodal_fields = self._tokenize_prompts(prompts)
        # Each probe row is its own prompt (num_generations=1): G_p rows per group were built above.
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
        acc = torch.tensor([float("nan") if a is None else a for a in acc], device=self.accelerator.device)
        return torch.nanmean(acc.view(len(rows), num_probe_generations), dim=1).nan_to_num(0.0)

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
        prompts = [probe_prompt(row["prompt"], f) for row, f in zip(rows, frames)]
        texts = [
            apply_chat_template({"prompt": p}, self.processing_class, **self.chat_template_kwargs)["prompt"]
            for p in prompts
        ]
        images = [list(f) or None for f in frames]
        has_images = any(images)
        batch = self.processing_class(
            images=images if has_images else None, text=texts, padding=True, padding_side="left", return_tensors="pt"
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
        if scorer == "reference":
            if self.ref_model is not None:
                model = self.ref_model
            else:  # PEFT: the base model (or the initial "ref" adapter), as TRL's KL term does
                unwrapped = self.accelerator.unwrap_model(self.model)
                adapter = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
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
        return logps, target_mask.to(logps.dtype)
