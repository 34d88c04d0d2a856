"""How probes reach the update: one class per ``kf_reward`` rule, behind one small interface.

A rule says what it needs measured (``needs``: ``sampled`` probe accuracies per group, ``likelihood`` gaps per group,
or per-completion ``reliance``), and what it gives (``acts_on``): a reward column that TRL sums and normalizes with
the other rewards (``reward``), or a factor on each completion's *positive* advantage after TRL's normalization
(``advantage_factor``). [`KFGRPOTrainer`] measures what ``needs`` asks for, builds a [`ProbeBatch`] and calls the
rule; it never branches on a rule's name. ``knobs`` lists the config fields a rule reads: ``KFGRPOConfig`` refuses a
knob set for a rule that ignores it.

| rule | needs | acts on | what it does |
|---|---|---|---|
| ``group`` | sampled or likelihood | reward | the method spec's per-group bonus (``kfgrpo.rewards.keyframe``; t-grpo) |
| ``rank`` | reliance | reward | α·centred rank of D among a group's correct completions |
| ``shape`` | reliance | advantages | × (1 + κ·centred rank) |
| ``gate`` | reliance | advantages | × (1 − exp(−D/τ)) on correct completions |
| ``credit`` | sampled | advantages | × the group's contrastive credit g (``kfgrpo.rewards.credit``) |
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..manifest import OPTION_LETTERS
from .credit import contrastive_credit, positive_advantages_times, probe_weights
from .keyframe import keyframe_bonus
from .reliance import centred_ranks, combine_probes, eligible_mask, rank_reward, reliance_gate, shape_factor

# Fields every rule reads.
COMMON_KNOBS = (
    "kf_probes",
    "kf_probe_bonus",
    "kf_saliency_weight",
    "kf_correct_threshold",
    "kf_accuracy_reward",
    "kf_probe_fraction",
)
RELIANCE_KNOBS = (
    "kf_reliance_top_tokens",
    "kf_reliance_space",
    "kf_reliance_clip",
    "kf_likelihood_floor",
    "kf_reliance_noise_floor",
    "kf_reliance_scorer",
)


@dataclass
class ProbeBatch:
    """What one generation batch measured, gathered over every rank in TRL's order (N completions, groups of G).

    ``probe_accuracy`` / ``probe_logp_gap``: [groups, P], NaN where a group was not probed. ``per_probe``: [N, P]
    reliance D_ij, NaN where a completion was not scored; ``real_logp``: [N] its mean real-frame log-prob."""

    accuracy: torch.Tensor
    num_generations: int
    probes: tuple[str, ...]
    saliency_gap: torch.Tensor
    probe_accuracy: torch.Tensor | None = None
    probe_logp_gap: torch.Tensor | None = None
    per_probe: torch.Tensor | None = None
    real_logp: torch.Tensor | None = None
    # [groups] the index of the solution's option letter (kfgrpo.manifest.OPTION_LETTERS), -1 for a row that is not
    # multiple choice: lets the credit be read per gold letter (does the gate withhold credit from the cue's letter?)
    solution_letter: torch.Tensor | None = None
    derived: dict = field(default_factory=dict)  # what a rule computed from the above (reliance, ranks, credit)

    @property
    def grouped_accuracy(self) -> torch.Tensor:
        return self.accuracy.view(-1, self.num_generations)


class KeyframeRule:
    """One ``kf_reward`` rule. Subclasses set ``name``, ``acts_on``, ``knobs`` and implement ``reward`` or
    ``advantage_factor``; ``needs`` may depend on the config."""

    name: ClassVar[str]
    acts_on: ClassVar[str]  # "reward" | "advantages"
    knobs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, args, accuracy_weight: float = 1.0, column_weight: float = 1.0):
        self.args = args
        self.accuracy_weight = accuracy_weight
        self.column_weight = column_weight

    @property
    def needs(self) -> str:
        return "reliance"

    def correct(self, accuracy: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(accuracy, nan=-1.0) > self.args.kf_correct_threshold

    def probe_groups(self, accuracy: torch.Tensor, total_reward: torch.Tensor) -> torch.Tensor:
        """[groups] bool: the groups sampled probes are generated for (``needs == "sampled"``); ``accuracy`` and
        ``total_reward`` (TRL's weighted sum without the keyframe column) are [groups, G]."""
        return self.correct(accuracy).any(dim=1)  # no correct completion: nothing to pay or gate

    def score_mask(self, accuracy: torch.Tensor, distinct_groups: torch.Tensor) -> torch.Tensor:
        """[N] bool: the completions whose reliance can change the update (``needs == "reliance"``)."""
        return self.correct(accuracy)

    def reward(self, batch: ProbeBatch) -> torch.Tensor:
        """[N] the keyframe reward column (``acts_on == "reward"``)."""
        return torch.zeros_like(batch.accuracy)

    def advantage_factor(self, batch: ProbeBatch) -> torch.Tensor:
        """[N] the factor on positive advantages (``acts_on == "advantages"``)."""
        return torch.ones_like(batch.accuracy)

    def scale_advantages(self, advantages: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """TRL's normalized advantages after the rule's ``advantage_factor`` (``acts_on == "advantages"``): by default
        the positive ones times the factor, the others unchanged."""
        return positive_advantages_times(advantages, factor)

    def metrics(self, batch: ProbeBatch) -> dict[str, float]:
        return {}


# ----------------------------------------------------------------------------------------------------------------
# Per-group rules on sampled or likelihood probes
# ----------------------------------------------------------------------------------------------------------------
class GroupRule(KeyframeRule):
    """The method spec's rule: one bonus per group, paid to its correct completions (``kfgrpo.rewards.keyframe``)."""

    name, acts_on = "group", "reward"
    knobs = (
        "kf_threshold",
        "kf_strict",
        "kf_rule",
        "kf_probe_mode",
        "kf_probe_generations",
        "kf_likelihood_target",
        "kf_reference_template",
        "kf_likelihood_margin",
        "kf_likelihood_scale",
    )

    @property
    def needs(self) -> str:
        return "sampled" if self.args.kf_probe_mode == "sample" else "likelihood"

    def _bonus(self, batch):
        if "bonus" not in batch.derived:
            a = self.args
            scores = batch.probe_accuracy if self.needs == "sampled" else batch.probe_logp_gap
            batch.derived["bonus"] = keyframe_bonus(
                batch.grouped_accuracy, torch.nan_to_num(scores, nan=math.inf if self.needs == "sampled" else 0.0),
                a.kf_probe_bonus, threshold=a.kf_threshold, strict=a.kf_strict, rule=a.kf_rule,
                correct_threshold=a.kf_correct_threshold, saliency_gap=batch.saliency_gap,
                saliency_weight=a.kf_saliency_weight, mode=a.kf_probe_mode, margin=a.kf_likelihood_margin,
                scale=a.kf_likelihood_scale,
            )  # fmt: skip
        return batch.derived["bonus"]

    def reward(self, batch):
        return self._bonus(batch)[0].reshape(-1)

    def metrics(self, batch):
        per_probe = self._bonus(batch)[1]
        p = torch.nanmean(batch.grouped_accuracy, dim=1)
        out = {"kf/real/accuracy": p.mean().item()}
        for j, kind in enumerate(batch.probes):
            if self.needs == "sampled":
                probed = ~torch.isnan(batch.probe_accuracy[:, j])
                if probed.any():
                    out[f"kf/{kind}/accuracy"] = batch.probe_accuracy[probed, j].mean().item()
                    out[f"kf/{kind}/gap"] = (p[probed] - batch.probe_accuracy[probed, j]).mean().item()
            else:
                out[f"kf/{kind}/gap"] = batch.probe_logp_gap[:, j].mean().item()  # nats/token
            out[f"kf/{kind}/bonus"] = per_probe[:, j].mean().item()
            out[f"kf/{kind}/saliency_gap"] = batch.saliency_gap[:, j].mean().item()
        return out


class CreditRule(KeyframeRule):
    """The contrastive credit gate (``kfgrpo.rewards.credit``): positive advantages × the group's credit g."""

    name, acts_on = "credit", "advantages"
    knobs = ("kf_probe_generations", "kf_credit_floor", "kf_credit_scope", "kf_credit_aggregate")

    @property
    def needs(self) -> str:
        return "sampled"

    def probe_groups(self, accuracy, total_reward):
        # Only a group with a right answer and some spread has a positive advantage to gate.
        spread = torch.nan_to_num(total_reward.amax(dim=1) - total_reward.amin(dim=1), nan=0.0) > 0
        return super().probe_groups(accuracy, total_reward) & spread

    def credit(self, batch) -> torch.Tensor:
        if "credit" not in batch.derived:
            w = probe_weights(self.args.kf_probe_bonus, batch.saliency_gap, self.args.kf_saliency_weight)
            batch.derived["credit"] = contrastive_credit(
                batch.grouped_accuracy,
                batch.probe_accuracy,
                w,
                self.args.kf_credit_floor,
                self.args.kf_credit_aggregate,
            )
        return batch.derived["credit"]

    def advantage_factor(self, batch):
        return self.credit(batch).repeat_interleave(batch.num_generations)

    def scale_advantages(self, advantages, factor):
        if self.args.kf_credit_scope == "group":
            return advantages * factor
        return super().scale_advantages(advantages, factor)

    def metrics(self, batch):
        g = self.credit(batch)
        probed = ~torch.isnan(batch.probe_accuracy).all(dim=1)
        p = torch.nanmean(batch.grouped_accuracy, dim=1)
        out = {"kf/real/accuracy": p.mean().item(), "kf/credit/probed_groups": probed.float().mean().item()}
        if probed.any():
            gp = g[probed]
            q = torch.quantile(gp.float(), torch.tensor([0.1, 0.5, 0.9], dtype=torch.float32, device=gp.device))
            out.update({
                "kf/credit/mean": gp.mean().item(), "kf/credit/p10": q[0].item(), "kf/credit/median": q[1].item(),
                "kf/credit/p90": q[2].item(), "kf/credit/below_half": (gp < 0.5).float().mean().item(),
                "kf/real/accuracy_probed": p[probed].mean().item(),
            })  # fmt: skip
            for j, kind in enumerate(batch.probes):
                out[f"kf/{kind}/accuracy"] = batch.probe_accuracy[probed, j].mean().item()
                out[f"kf/{kind}/gap"] = (p[probed] - batch.probe_accuracy[probed, j]).mean().item()
            if batch.solution_letter is not None:
                for i in batch.solution_letter[probed].unique().tolist():
                    if i >= 0:
                        mine = probed & (batch.solution_letter == i)
                        out[f"kf/credit/answer_{OPTION_LETTERS[i]}"] = g[mine].mean().item()
        return out


# ----------------------------------------------------------------------------------------------------------------
# Per-completion rules on teacher-forced reliance (kfgrpo.rewards.reliance)
# ----------------------------------------------------------------------------------------------------------------
class RelianceRule(KeyframeRule):
    """Shared by ``rank``, ``shape`` and ``gate``: D_i, eligibility and centred ranks from the scored completions."""

    ranks_all_correct_groups: ClassVar[bool] = False

    def score_mask(self, accuracy, distinct_groups):
        g = self.args.num_generations
        correct = self.correct(accuracy)
        rankable = distinct_groups.bool() & ~correct.view(-1, g).all(dim=1)
        if self.ranks_all_correct_groups:
            rankable = distinct_groups.bool()
        return correct & rankable.repeat_interleave(g)

    def state(self, batch) -> dict:
        if "reliance" not in batch.derived:
            a, g = self.args, batch.num_generations
            gap = batch.saliency_gap.repeat_interleave(g, dim=0)
            reliance = combine_probes(batch.per_probe, a.kf_probe_bonus, gap, a.kf_saliency_weight)
            eligible = eligible_mask(
                batch.accuracy, batch.real_logp, correct_threshold=a.kf_correct_threshold, floor=a.kf_likelihood_floor
            )  # NaN log-likelihood (not scored) is never eligible
            correct = self.correct(batch.accuracy)
            centred = centred_ranks(
                reliance.view(-1, g), eligible.view(-1, g), noise_floor=a.kf_reliance_noise_floor,
                correct=None if self.ranks_all_correct_groups else correct.view(-1, g),
            ).reshape(-1)  # fmt: skip
            batch.derived.update(reliance=reliance, eligible=eligible, centred=centred, correct=correct)
        return batch.derived

    def metrics(self, batch):
        s, g = self.state(batch), batch.num_generations
        reliance = s["reliance"]
        scored = ~torch.isnan(reliance)
        out = {
            "kf/real/accuracy": torch.nanmean(batch.grouped_accuracy, dim=1).nanmean().item(),
            "kf/reliance/scored": scored.float().mean().item(),
            "kf/reliance/eligible": s["eligible"].float().mean().item(),
            "kf/reliance/ranked_groups": (s["centred"].view(-1, g) != 0).any(dim=1).float().mean().item(),
        }
        if scored.any():
            out["kf/real/logp"] = batch.real_logp[scored].mean().item()
            out["kf/reliance/mean"] = reliance[scored].mean().item()
            out["kf/reliance/std"] = reliance[scored].std().item() if scored.sum() > 1 else 0.0
            for j, kind in enumerate(batch.probes):
                out[f"kf/{kind}/reliance"] = batch.per_probe[scored, j].mean().item()
        return out


class RankRule(RelianceRule):
    name, acts_on = "rank", "reward"
    knobs = (*RELIANCE_KNOBS, "kf_reliance_mixed_groups_only")

    def __init__(self, args, accuracy_weight=1.0, column_weight=1.0):
        super().__init__(args, accuracy_weight, column_weight)
        self.ranks_all_correct_groups = not args.kf_reliance_mixed_groups_only

    def reward(self, batch):
        return rank_reward(
            self.state(batch)["centred"], batch.accuracy, float(sum(self.args.kf_probe_bonus)),
            correct_threshold=self.args.kf_correct_threshold, accuracy_weight=self.accuracy_weight,
            column_weight=self.column_weight,
        )  # fmt: skip


class ShapeRule(RelianceRule):
    name, acts_on = "shape", "advantages"
    knobs = (*RELIANCE_KNOBS, "kf_shape_coef")

    def advantage_factor(self, batch):
        return shape_factor(self.state(batch)["centred"], self.args.kf_shape_coef)


class GateRule(RelianceRule):
    name, acts_on = "gate", "advantages"
    knobs = (*RELIANCE_KNOBS, "kf_gate_scale")

    def score_mask(self, accuracy, distinct_groups):
        return self.correct(accuracy)  # every correct completion gets its own gate

    def advantage_factor(self, batch):
        s = self.state(batch)
        return reliance_gate(s["reliance"], s["eligible"], self.args.kf_gate_scale, correct=s["correct"])

    def metrics(self, batch):
        out = super().metrics(batch)
        s = self.state(batch)
        gate = self.advantage_factor(batch)
        out["kf/reliance/gate"] = gate[s["eligible"]].mean().item() if s["eligible"].any() else 0.0
        return out


RULES: dict[str, type[KeyframeRule]] = {r.name: r for r in (GroupRule, RankRule, ShapeRule, GateRule, CreditRule)}
KF_REWARDS = tuple(RULES)


def knob_readers() -> dict[str, tuple[str, ...]]:
    """Each rule-specific knob -> the rules that read it (the common knobs are read by all)."""
    readers: dict[str, list[str]] = {}
    for name, rule in RULES.items():
        for knob in rule.knobs:
            readers.setdefault(knob, []).append(name)
    return {k: tuple(v) for k, v in readers.items()}


def make_rule(args, accuracy_weight: float = 1.0, column_weight: float = 1.0) -> KeyframeRule:
    return RULES[args.kf_reward](args, accuracy_weight, column_weight)
