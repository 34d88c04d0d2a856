"""``KFGRPOConfig``: TRL's ``GRPOConfig`` plus the knobs of KeyFrame-aware GRPO, with presets.

``kf_preset`` expands to documented values for every ``kf_*`` field left unset (``None``); fields set explicitly (in
YAML or on the command line) win over the preset.

| field | ``grpo`` | ``t-grpo`` (Video-R1) | ``kf-grpo`` |
|---|---|---|---|
| ``kf_probes`` | [] | [shuffle] | [shuffle, swap_salient] |
| ``kf_reward`` | – | group (Video-R1's rule) | shape (per-completion frame reliance) |
| ``kf_probe_bonus`` (α) | [] | [0.3] | [0.3, 0.3] |
| ``kf_threshold`` (μ) | – | 0.8 | 1.0 |
| ``kf_strict`` | – | False (acc ≥ μ·acc_probe) | True (acc > μ·acc_probe) |
| ``kf_rule`` | – | hard | hard |
| ``kf_saliency_weight`` (β_s) | – | 0.0 | 0.5 |
| ``kf_probe_generations`` (G_p) | – | G/2 | G/2 |
| ``kf_length_reward`` | False | True (Video-R1's length control: +0.2 for 320-512 tokens) | False |

``grpo`` runs no probe and adds no reward column, so it is exactly ``trl.GRPOTrainer``. ``kf-grpo`` with
``kf_reward: group`` is the method spec's per-group rule (§2.5). Each ``kf_reward`` rule reads its own knobs
(``kfgrpo.rewards.rules``: every field's help names the rules that read it); a knob set for a rule that ignores it
is refused, so no setting silently does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from .probes import PROBES
from .rewards.rules import KF_REWARDS, knob_readers

_READERS = knob_readers()
# Knobs of the group rule that act only in one probe mode.
_MODE_KNOBS = {
    "kf_likelihood_target": "likelihood",
    "kf_reference_template": "likelihood",
    "kf_likelihood_margin": "likelihood",
    "kf_likelihood_scale": "likelihood",
}


def _help(text: str, knob: str) -> str:
    """A field's help with the rules that read it appended (kfgrpo.rewards.rules)."""
    readers = _READERS.get(knob)
    mode = f", kf_probe_mode: {_MODE_KNOBS[knob]}" if knob in _MODE_KNOBS else ""
    return f"{text} Read by kf_reward: {', '.join(readers)}{mode}." if readers else text


PRESETS = ("grpo", "t-grpo", "kf-grpo")
PRESET_VALUES = {
    "grpo": dict(
        kf_probes=[],
        kf_probe_bonus=[],
        kf_reward="group",
        kf_threshold=1.0,
        kf_strict=True,
        kf_rule="hard",
        kf_saliency_weight=0.0,
        kf_length_reward=False,
    ),
    "t-grpo": dict(
        kf_probes=["shuffle"],
        kf_probe_bonus=[0.3],
        kf_reward="group",
        kf_threshold=0.8,
        kf_strict=False,
        kf_rule="hard",
        kf_saliency_weight=0.0,
        kf_length_reward=True,  # Video-R1's published runs train with len_control: true
    ),
    "kf-grpo": dict(
        kf_probes=["shuffle", "swap_salient"],
        kf_probe_bonus=[0.3, 0.3],
        kf_reward="shape",  # chosen on the tuning split (docs/benchmarks.md, Does KF-GRPO help?): rank collapsed onto the cue
        kf_threshold=1.0,
        kf_strict=True,
        kf_rule="hard",
        kf_saliency_weight=0.5,
        kf_length_reward=False,
    ),
}


@dataclass
class KFGRPOConfig(GRPOConfig):
    r"""Configuration of [`KFGRPOTrainer`]: every ``GRPOConfig`` field plus the ``kf_*`` fields below.

    For each prompt the policy answers G times on the real keyframes (trained on); each probe (``kf_probes``) is a
    perturbed frame set of the same prompt, on which the policy is measured, never trained. How the measurement
    reaches the update is ``kf_reward`` (``kfgrpo.rewards.rules``): a reward column (``group``, ``rank``) or a
    factor on positive advantages after TRL's normalization (``shape``, ``gate``, ``credit``).
    """

    visual_input: str = field(
        default="images",
        metadata={
            "help": "How the cached keyframes reach the model, in rollouts, the training forward, the reference model "
            "and every probe: `images` (one image per keyframe; any VLM) or `video` (the K keyframes as one video with "
            "their true times; Qwen2-VL, Qwen2.5-VL, Qwen3-VL), half the visual tokens at the same frames and pixels, "
            "and the input lmms-eval and vLLM serving give these models (docs/visual_input.md). With vLLM, `video` "
            "needs vllm_mode: colocate and vllm_tensor_parallel_size: 1."
        },
    )
    kf_preset: str = field(default="kf-grpo", metadata={"help": f"Preset for unset kf_* fields: one of {PRESETS}."})
    kf_probes: list[str] | None = field(
        default=None,
        metadata={
            "help": f"Perturbed frame sets to probe with, any of {PROBES}. shuffle/reverse change the order; "
            "swap_salient replaces the most salient frames with distractor frames (re-sorted by time); "
            "drop_salient / drop_random remove frames; blind removes every frame (the question alone)."
        },
    )
    kf_probe_bonus: list[float] | None = field(
        default=None,
        metadata={
            "help": "α per probe (same order as kf_probes). group: the bonus, one number per group paid to its "
            "correct completions (with `scale_rewards: group`, TRL's default, and equal format rewards in the group "
            "the group std divides it out; docs/kf_grpo.md, The keyframe reward). rank / shape / gate: the probe's "
            "weight in D. credit: the probe's relative weight (divided by the largest α)."
        },
    )
    kf_reward: str | None = field(
        default=None,
        metadata={
            "help": "How probes reach the update. `rank`: each correct completion's frame reliance D_i (teacher-forced "
            "log-prob gap, real vs probe frames, over its whole sequence) ranks it among its group's correct "
            "completions; reward column Σα·(rank centred in [-1/2, 1/2]). `shape`: positive advantages × "
            "(1 + kf_shape_coef·centred rank), after TRL's normalisation. `gate`: positive advantages × "
            "(1 − exp(−D_i/kf_gate_scale)). `group`: the method spec's per-group rule (t-grpo's too), which TRL's "
            "default scale_rewards: group divides out when the other rewards are equal (docs/kf_grpo.md, The keyframe "
            "reward). `credit`: the contrastive credit gate, positive advantages × the group's credit g = max over "
            "probes of w·clip((p − p̃)/p, 0, 1), p / p̃ the group's accuracy on real / probe frames (sampled). "
            "Unset: the preset's (kf-grpo: shape; t-grpo: group)."
        },
    )
    kf_reliance_top_tokens: int = field(
        default=16,
        metadata={
            "help": _help(
                "k: D_ij is the sum of a completion's k largest per-token gaps divided by k (a completion shorter "
                "than k counts its missing tokens as 0). A fixed k, not a share of the length, so that cutting or "
                "padding the reasoning does not change D.",
                "kf_reliance_top_tokens",
            )
        },
    )
    kf_reliance_space: str = field(
        default="prob",
        metadata={
            "help": _help(
                "Per-token gap of D: `prob` (p_real − p_probe ∈ [−1, 1]: only a token the real frames made likely "
                "scores high) or `logprob` (log p_real − log p_probe, nats: it also grows with the token's own "
                "uncertainty; measured: higher for traces that misread the frames).",
                "kf_reliance_space",
            )
        },
    )
    kf_reliance_clip: float | None = field(
        default=None,
        metadata={
            "help": _help(
                "c (nats; kf_reliance_space: logprob only, where a gap is unbounded): each per-token gap is clipped "
                "to [-c, c] before the reduction, so no single token the probe makes impossible dominates D. "
                "None: no clip.",
                "kf_reliance_clip",
            )
        },
    )
    kf_likelihood_floor: float = field(
        default=-1.5,
        metadata={
            "help": _help(
                "A completion whose mean per-token log-prob under the real frames is below this (nats) gets no "
                "reliance reward or gate: a completion the policy itself finds unlikely is not paid for being even "
                "less likely on perturbed frames.",
                "kf_likelihood_floor",
            )
        },
    )
    kf_reliance_noise_floor: float = field(
        default=1e-3,
        metadata={
            "help": _help(
                "Completions whose D differ by less than this (chained in sorted order) tie: the same rank. D's "
                "units: probability under kf_reliance_space `prob`, nats under `logprob`; batching alone moves D by "
                "about 1e-6, identical completions tie exactly.",
                "kf_reliance_noise_floor",
            )
        },
    )
    kf_reliance_mixed_groups_only: bool = field(
        default=True,
        metadata={
            "help": _help(
                "Rank only groups with at least one incorrect completion (shape and gate act on positive "
                "advantages, which an all-correct group does not have). In an all-correct group GRPO's advantages "
                "are 0 and the group std would make the ranks by D the group's whole learning signal (measured: "
                "the policy then games D and accuracy falls; docs/benchmarks.md, Does KF-GRPO help?).",
                "kf_reliance_mixed_groups_only",
            )
        },
    )
    kf_reliance_scorer: str = field(
        default="reference",
        metadata={
            "help": _help(
                "Model that scores D and the likelihood floor, in eval mode (no dropout): `policy` (the weights that "
                "generated the rollouts; no extra memory, but the policy can raise its own D by becoming fragile to "
                "the probes) or `reference` (the frozen starting model, TRL's reference model: loaded even with beta "
                "0, without a KL term; free with a PEFT adapter, whose base model is the reference).",
                "kf_reliance_scorer",
            )
        },
    )
    kf_shape_coef: float = field(
        default=1.0,
        metadata={"help": _help("κ: positive advantages × (1 + κ·centred rank).", "kf_shape_coef")},
    )
    kf_gate_scale: float = field(
        default=0.5,
        metadata={
            "help": _help(
                "τ: positive advantages of correct completions × (1 − exp(−D_i/τ)), in D's units.", "kf_gate_scale"
            )  # fmt: skip
        },
    )
    kf_credit_floor: float = field(
        default=0.0,
        metadata={
            "help": _help(
                "g_min: the least credit a group gets (positive advantages are multiplied by at least this). 0: a "
                "group answered as well without its real frames gets no positive push.",
                "kf_credit_floor",
            )
        },
    )
    kf_credit_scope: str = field(
        default="positive",
        metadata={
            "help": _help(
                "Which of a group's advantages g multiplies: `positive` (the right answers' push; a wrong answer "
                "keeps its full push down) or `group` (every advantage of the group: a group whose success the frames "
                "did not cause teaches nothing either way). Under `positive` the pushes left in a cue-letter group "
                "are the ones down on the other letters, which is itself a push towards the cue's letter "
                '(docs/benchmarks.md, "Does KF-GRPO help?").',
                "kf_credit_scope",
            ),
            "choices": ["positive", "group"],
        },
    )
    kf_credit_aggregate: str = field(
        default="max",
        metadata={
            "help": _help(
                "How a group's weighted probe drops w_j·clip((p − p̃_j)/p, 0, 1) combine into g: `max` (any probe "
                "that hurts grants credit; a shuffle cannot change a count, so an order probe alone would deny every "
                "count question), `mean` (no single probe, such as `blind`, the one least like the training input, "
                "grants full credit alone) or `min` (credit only for what every probe took away).",
                "kf_credit_aggregate",
            ),
            "choices": ["max", "mean", "min"],
        },
    )
    kf_probe_generations: int | None = field(
        default=None,
        metadata={
            "help": _help(
                "Sampled completions per probe and prompt (G_p); default num_generations // 2.", "kf_probe_generations"
            )  # fmt: skip
        },
    )
    kf_probe_mode: str = field(
        default="sample",
        metadata={
            "help": _help(
                "`sample`: generate G_p completions on the perturbed frames and score their accuracy. "
                "`likelihood`: one teacher-forced forward per probe scores a target answer's log-prob under "
                "real vs perturbed frames (no generation).",
                "kf_probe_mode",
            )
        },
    )
    kf_threshold: float | None = field(
        default=None, metadata={"help": _help("μ: the bonus needs p > μ·p̃.", "kf_threshold")}
    )
    kf_strict: bool | None = field(
        default=None, metadata={"help": _help("Compare with > (True) or ≥ (False, Video-R1's code).", "kf_strict")}
    )
    kf_rule: str | None = field(
        default=None,
        metadata={"help": _help("`hard`: α·1[p > μ·p̃]. `soft`: α·clip((p − μ·p̃)/max(p, ε), 0, 1).", "kf_rule")},
    )
    kf_saliency_weight: float | None = field(
        default=None, metadata={"help": "β_s: scales a probe's bonus by 1 + β_s·(S̄(real) − S̄(probe))."}
    )
    kf_length_reward: bool | None = field(
        default=None,
        metadata={
            "help": "Add Video-R1's length reward (`length`, constants `length_*`) to the reward functions if absent: "
            "on in the t-grpo preset, which is the Video-R1 baseline (T-GRPO + length control), off otherwise."
        },
    )
    kf_correct_threshold: float = field(
        default=0.1, metadata={"help": "A real completion counts as correct (and may get the bonus) above this."}
    )
    kf_accuracy_reward: str = field(
        default="accuracy_reward", metadata={"help": "Name of the reward function that is the accuracy signal."}
    )
    kf_probe_fraction: float = field(
        default=0.5, metadata={"help": "η: content probes swap / drop ⌈ηK⌉ frames (at least one frame stays)."}
    )
    kf_likelihood_target: str = field(
        default="best",
        metadata={
            "help": _help(
                "Likelihood probes score `best` (the group's most accurate completion; the reference answer when "
                "none is correct) or `reference` (the reference answer).",
                "kf_likelihood_target",
            )
        },
    )
    kf_reference_template: str = field(
        default="<answer>{solution}</answer>",
        metadata={"help": _help("How the reference answer is written as text.", "kf_reference_template")},
    )
    kf_likelihood_margin: float = field(
        default=0.0,
        metadata={
            "help": _help(
                "Hard rule: the probe passes when the per-token log-prob gap (real − probe, nats) exceeds this.",
                "kf_likelihood_margin",
            )  # fmt: skip
        },
    )
    kf_likelihood_scale: float = field(
        default=1.0, metadata={"help": _help("Soft rule: bonus α·clip(gap / scale, 0, 1).", "kf_likelihood_scale")}
    )
    vllm_limit_images: int | None = field(
        default=None,
        metadata={
            "help": "vLLM colocate: most images per prompt (limit_mm_per_prompt); default: the largest frame "
            "count in the training set. Server mode: pass --limit-mm-per-prompt to the server instead."
        },
    )
    # Length reward (Video-R1's rule), used when `length` is among the reward functions.
    length_min_tokens: int = field(default=320, metadata={"help": "Length reward: fewest completion tokens."})
    length_max_tokens: int = field(default=512, metadata={"help": "Length reward: most completion tokens."})
    length_bonus: float = field(default=0.2, metadata={"help": "Length reward: bonus for a correct answer in range."})
    length_min_correct: int = field(
        default=2,
        metadata={"help": "Length reward: applies only when this many completions of the group are correct."},
    )

    def __post_init__(self):
        super().__post_init__()
        from .hub import move_hub_token_to_environment

        move_hub_token_to_environment(self)  # never pickled into training_args.bin
        self._check_visual_input()
        self._fill_kf_preset()
        self._check_kf_values()
        self._check_probe_rollouts()

    def _check_visual_input(self):
        """`visual_input` names a known input, and video rolls out where TRL can send it."""
        from .visual_input import VISUAL_INPUTS

        if self.visual_input not in VISUAL_INPUTS:
            raise ValueError(f"visual_input must be one of {VISUAL_INPUTS}, got {self.visual_input!r}")
        if (
            self.visual_input == "video"
            and self.use_vllm
            and (self.vllm_mode != "colocate" or self.vllm_tensor_parallel_size != 1)
        ):
            raise ValueError(
                "visual_input: video rolls out with vLLM in colocate mode on one GPU per engine "
                "(vllm_tensor_parallel_size: 1); TRL 1.16's vLLM server takes images only: use vllm_mode: colocate, "
                "use_vllm: false, or visual_input: images"
            )

    def _fill_kf_preset(self):
        """The preset fills the knobs the user left unset; the probes and the rule are checked."""
        if self.kf_preset not in PRESETS:
            raise ValueError(f"kf_preset must be one of {PRESETS}, got {self.kf_preset!r}")
        user_set = self._kf_knobs_set()
        for key, value in PRESET_VALUES[self.kf_preset].items():
            if getattr(self, key) is None:
                setattr(self, key, list(value) if isinstance(value, list) else value)
        if self.kf_probe_generations is None:
            self.kf_probe_generations = max(1, self.num_generations // 2)
        unknown = [p for p in self.kf_probes if p not in PROBES]
        if unknown:
            raise ValueError(f"unknown kf_probes {unknown}; choose from {PROBES}")
        if len(set(self.kf_probes)) != len(self.kf_probes):
            raise ValueError(f"kf_probes has duplicates: {self.kf_probes}")
        if len(self.kf_probe_bonus) != len(self.kf_probes):
            raise ValueError(
                f"kf_probe_bonus needs one α per probe: {len(self.kf_probe_bonus)} values for {self.kf_probes}"
            )
        if self.kf_reward not in KF_REWARDS:
            raise ValueError(f"kf_reward must be one of {KF_REWARDS}, got {self.kf_reward!r}")
        if self.kf_probes:
            self._refuse_ignored_knobs(user_set)

    def _check_kf_values(self):
        """Every reliance / credit / probe knob is in its range."""
        if self.kf_reliance_space not in ("prob", "logprob"):
            raise ValueError(f"kf_reliance_space must be 'prob' or 'logprob', got {self.kf_reliance_space!r}")
        if self.kf_reliance_scorer not in ("policy", "reference"):
            raise ValueError(f"kf_reliance_scorer must be 'policy' or 'reference', got {self.kf_reliance_scorer!r}")
        if self.kf_reliance_top_tokens < 1:
            raise ValueError("kf_reliance_top_tokens must be >= 1")
        if (self.kf_reliance_clip is not None and self.kf_reliance_clip <= 0) or self.kf_gate_scale <= 0:
            raise ValueError("kf_reliance_clip and kf_gate_scale must be > 0")
        if self.kf_credit_scope not in ("positive", "group"):
            raise ValueError(f"kf_credit_scope must be positive or group, got {self.kf_credit_scope!r}")
        from .rewards.credit import AGGREGATES

        if self.kf_credit_aggregate not in AGGREGATES:
            raise ValueError(f"kf_credit_aggregate must be max, mean or min, got {self.kf_credit_aggregate!r}")
        if not 0.0 <= self.kf_credit_floor <= 1.0:
            raise ValueError("kf_credit_floor must be in [0, 1]")
        if self.kf_probes and self.kf_reward != "group" and any(a < 0 for a in self.kf_probe_bonus):
            raise ValueError("kf_probe_bonus weights must be >= 0 with a reliance reward")
        if self.kf_probe_mode not in ("sample", "likelihood"):
            raise ValueError(f"kf_probe_mode must be 'sample' or 'likelihood', got {self.kf_probe_mode!r}")
        if self.kf_rule not in ("hard", "soft"):
            raise ValueError(f"kf_rule must be 'hard' or 'soft', got {self.kf_rule!r}")
        if self.kf_likelihood_target not in ("best", "reference"):
            raise ValueError("kf_likelihood_target must be 'best' or 'reference'")
        if self.kf_probe_generations < 1:
            raise ValueError("kf_probe_generations must be >= 1")
        if not 0.0 < self.kf_probe_fraction <= 1.0:
            raise ValueError("kf_probe_fraction must be in (0, 1]")

    def _check_probe_rollouts(self):
        """Probes can be rolled out under this vLLM and batch setting."""
        from .rewards.rules import make_rule

        sampled = bool(self.kf_probes) and make_rule(self).needs == "sampled"
        if self.kf_probes and self.use_vllm and self.vllm_enable_sleep_mode and sampled:
            raise ValueError(
                "vllm_enable_sleep_mode with sampled probes re-syncs the weights for every generate call (twice per "
                "step); disable sleep mode, or use a rule that samples no probe (kf_reward: shape, or group with "
                "kf_probe_mode: likelihood)."
            )
        if self.kf_probes:
            # Probes are generated by the rank that holds a group; TRL does not guarantee whole groups per rank.
            local = self.per_device_train_batch_size * self.steps_per_generation
            if local % self.num_generations:
                raise ValueError(
                    "KF-GRPO probes need whole groups on every rank: per_device_train_batch_size × "
                    f"steps_per_generation ({self.per_device_train_batch_size} × {self.steps_per_generation} = {local})"
                    f" must be a multiple of num_generations ({self.num_generations})."
                )

    def _kf_knobs_set(self) -> set[str]:
        """The rule-specific knobs given a value other than their default (before the preset fills its fields)."""
        import dataclasses

        defaults = {f.name: f.default for f in dataclasses.fields(self) if f.name in _READERS}
        return {name for name, default in defaults.items() if getattr(self, name) != default}

    def _refuse_ignored_knobs(self, user_set: set[str]) -> None:
        """A knob set for a rule (or probe mode) that does not read it is a mistake the user would not see."""
        for name in sorted(user_set):
            if self.kf_reward not in _READERS[name]:
                raise ValueError(
                    f"{name} is read by kf_reward {' / '.join(_READERS[name])} only, not by kf_reward: "
                    f"{self.kf_reward}; remove it or change kf_reward"
                )
            mode = _MODE_KNOBS.get(name)
            if mode and self.kf_probe_mode != mode:
                raise ValueError(f"{name} acts only with kf_probe_mode: {mode}, not {self.kf_probe_mode}")
        if "kf_reliance_clip" in user_set and self.kf_reliance_space != "logprob":
            raise ValueError("kf_reliance_clip acts only with kf_reliance_space: logprob (prob gaps lie in [-1, 1])")
        if self.kf_reward == "rank" and self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "kf_reward: rank needs multi_objective_aggregation: sum_then_normalize (normalize_then_sum z-scores "
                "the rank column per group, giving it the weight of accuracy)"
            )

    @property
    def kf_enabled(self) -> bool:
        return bool(self.kf_probes)
