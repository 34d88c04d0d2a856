"""KFGRPOTrainer: exact equivalence with TRL for preset grpo, probes for the other presets, and TRL-drift guards."""

import math

import datasets
import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList
from trl import GRPOConfig, GRPOTrainer
from trl.data_utils import prepare_multimodal_messages

from kfgrpo.cache import load_tad_dataset
from kfgrpo.config import KFGRPOConfig
from kfgrpo.data_utils import KFScriptArguments, to_grpo_dataset
from kfgrpo.rewards import accuracy_reward, format_reward
from kfgrpo.trainer import KFGRPOTrainer


def length_score(completions, **kwargs):
    """A reward that varies within a group, so advantages and gradients are non-zero."""
    return [len(c[0]["content"]) / 32.0 for c in completions]


COMMON = dict(
    use_cpu=True,
    bf16=False,
    gradient_checkpointing=False,
    per_device_train_batch_size=8,
    num_generations=4,
    max_completion_length=8,
    learning_rate=1e-2,
    logging_steps=1,
    save_strategy="no",
    report_to="none",
    seed=7,
    beta=0.0,
)


@pytest.fixture(scope="module")
def train_ds(frame_cache):
    ds = load_tad_dataset(frame_cache).select(range(8))
    return to_grpo_dataset(ds, KFScriptArguments(dataset_name="x"))


def _kf(tmp_path, **kw):
    return KFGRPOConfig(output_dir=str(tmp_path), **{**COMMON, **kw})


def _history(trainer, keys=("loss", "reward", "grad_norm")):
    return [{k: h[k] for k in keys} for h in trainer.state.log_history if "loss" in h]


def test_grpo_preset_reproduces_plain_trl_exactly(tiny_model_dir, train_ds, tmp_path):
    funcs = [accuracy_reward, format_reward, length_score]
    plain = GRPOTrainer(
        tiny_model_dir,
        funcs,
        args=GRPOConfig(output_dir=str(tmp_path / "a"), max_steps=3, **COMMON),
        train_dataset=train_ds,
    )
    plain.train()
    ours = KFGRPOTrainer(
        tiny_model_dir, funcs, args=_kf(tmp_path / "b", max_steps=3, kf_preset="grpo"), train_dataset=train_ds
    )
    ours.train()
    a, b = _history(plain), _history(ours)
    assert len(a) == 3 and a == b
    assert any(h["grad_norm"] > 0 for h in a)
    assert ours.reward_func_names == plain.reward_func_names  # no extra column


@pytest.mark.parametrize(
    "preset,reward,mode",
    [("t-grpo", None, "sample"), ("kf-grpo", "group", "sample"), ("kf-grpo", "group", "likelihood"),
     ("kf-grpo", None, "sample")],
)  # fmt: skip
def test_presets_train_and_log_probe_metrics(tiny_model_dir, train_ds, tmp_path, preset, reward, mode):
    kw = {"kf_reward": reward} if reward else {}
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_hash_accuracy, format_reward],  # some right answers: probes run for the groups that have one
        args=_kf(tmp_path, max_steps=2, kf_preset=preset, kf_probe_mode=mode, **kw),
        train_dataset=train_ds,
    )
    trainer.train()
    logs = trainer.state.log_history[0]
    assert trainer.reward_func_names[-1] == "kf_contrastive_reward"
    for probe in trainer.args.kf_probes:
        if trainer.args.kf_reward == "group":
            assert f"kf/{probe}/gap" in logs and f"kf/{probe}/bonus" in logs
            if mode == "sample":
                assert f"kf/{probe}/accuracy" in logs
    if trainer.args.kf_reward != "group":
        for key in ("scored", "eligible", "ranked_groups", "distinct_correct_groups"):
            assert f"kf/reliance/{key}" in logs
        assert logs["kf/reliance/scored"] > 0.0
        assert "entropy" in logs and "completions/mean_length" in logs
    assert "kf/real/accuracy" in logs and "rewards/kf_contrastive_reward/mean" in logs and "kf/probe_time" in logs


class _Stub:
    """An accuracy reward with a fixed pattern: the first half of each group is right."""

    __name__ = "accuracy_reward"

    def __init__(self, g):
        self.g = g

    def __call__(self, completions, **kwargs):
        return [1.0 if (i % self.g) < self.g // 2 else 0.0 for i in range(len(completions))]


def test_bonus_goes_to_correct_real_rollouts_and_advantages_are_group_normalised(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Stub(4), length_score],
        args=_kf(tmp_path, max_steps=1, kf_preset="kf-grpo", kf_reward="group", kf_saliency_weight=0.0),
        train_dataset=train_ds,
    )
    # Probes that never succeed: every group has p = 0.5 > μ·0, so both probes pay α = 0.3 each.
    trainer._kf_probe_accuracy = lambda rows, frames, probed: torch.zeros(len(rows), len(frames))
    rows = [train_ds[i] for i in (0, 1) for _ in range(4)]
    trainer.model.train()  # as inside trainer.train(): probes shape training rewards only
    out = trainer._generate_and_score_completions(rows)
    table = trainer._logs["rewards"]
    kf = list(table["kf_contrastive_reward"])[-8:]
    assert kf == pytest.approx([0.6, 0.6, 0.0, 0.0, 0.6, 0.6, 0.0, 0.0])
    assert "advantages" in out


@pytest.mark.parametrize("reward", ["group", "rank", "credit"])
def test_works_without_tad_columns(tiny_model_dir, train_ds, tmp_path, reward):
    tad = {"saliency", "distractor_images", "distractor_timestamps", "distractor_saliency", "is_apex", "frames_key"}
    plain_rows = datasets.Dataset.from_list([{k: v for k, v in row.items() if k not in tad} for row in train_ds])
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_hash_accuracy],  # some right answers, so that the reliance path scores them on every probe
        args=_kf(
            tmp_path,
            max_steps=1,
            kf_preset="kf-grpo",
            kf_probes=["shuffle", "swap_salient", "drop_salient", "drop_random", "reverse", "blind"],
            kf_probe_bonus=[0.1] * 6,
            kf_reward=reward,
            **({"kf_likelihood_floor": -1e9} if reward == "rank" else {}),
        ),
        train_dataset=plain_rows,
    )
    trainer.train()
    key = {"group": "kf/swap_salient/gap", "rank": "kf/drop_random/reliance", "credit": "kf/blind/accuracy"}[reward]
    assert key in trainer.state.log_history[0]


def test_rejects_unknown_accuracy_reward(tiny_model_dir, train_ds, tmp_path):
    with pytest.raises(ValueError, match="kf_accuracy_reward"):
        KFGRPOTrainer(tiny_model_dir, [format_reward], args=_kf(tmp_path, max_steps=1), train_dataset=train_ds)


# --------------------------------------------------------------------------------------------------------------------
# Guards against TRL drift
# --------------------------------------------------------------------------------------------------------------------


class _Force(LogitsProcessor):
    def __init__(self, tokens):
        self.tokens, self.step = tokens, 0

    def __call__(self, input_ids, scores):
        forced = torch.full_like(scores, -math.inf)
        forced[:, self.tokens[min(self.step, len(self.tokens) - 1)]] = 0.0
        self.step += 1
        return forced


def test_generation_logprobs_equal_training_logprobs(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [accuracy_reward, length_score],
        args=_kf(tmp_path, max_steps=1, kf_preset="grpo"),
        train_dataset=train_ds,
    )
    model, processor = trainer.model, trainer.processing_class
    rows = [train_ds[i] for i in (0, 1) for _ in range(4)]
    out = trainer._generate_and_score_completions(rows)
    ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
    mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
    with torch.no_grad():
        train_lp, _, _ = trainer._get_per_token_logps_and_entropies(
            model,
            ids,
            mask,
            out["completion_ids"].size(1),
            pixel_values=out["pixel_values"],
            image_grid_thw=out["image_grid_thw"],
            num_images=out["num_images"],
            mm_token_type_ids=out["mm_token_type_ids"],
        )
    assert out["num_images"][0] == 4 and out["pixel_values"].shape[0] > 0  # the frames reach the loss forward
    worst = 0.0
    for b in (0, 5):  # one completion of each prompt: replay the generation path (KV cache, incremental decode)
        n = int(out["completion_mask"][b].sum())
        tokens = out["completion_ids"][b, :n].tolist()
        prompt = prepare_multimodal_messages(rows[b]["prompt"], images=rows[b]["images"])
        inputs = processor.apply_chat_template(
            [prompt], tokenize=True, return_dict=True, add_generation_prompt=True, return_tensors="pt"
        )
        assert inputs["input_ids"][0].tolist() == out["prompt_ids"][b][out["prompt_mask"][b].bool()].tolist()
        with torch.no_grad():
            gen = model.generate(
                **inputs,
                max_new_tokens=n,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
                logits_processor=LogitsProcessorList([_Force(tokens)]),
            )
        gen_lp = torch.stack([torch.log_softmax(step[0].float(), -1)[t] for step, t in zip(gen.logits, tokens)])
        worst = max(worst, (gen_lp - train_lp[b, :n]).abs().max().item())
    print(f"max |generation - training| log-prob: {worst:.2e}")
    assert worst < 1e-5, worst


def test_vision_tower_receives_gradient(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [accuracy_reward, length_score],
        args=_kf(tmp_path, max_steps=1, kf_preset="kf-grpo"),
        train_dataset=train_ds,
    )
    model = trainer.model
    batch = trainer._prepare_inputs([train_ds[i] for i in (0, 1) for _ in range(4)])
    assert batch["advantages"].abs().sum() > 0
    model.zero_grad()
    trainer.compute_loss(model, batch).backward()
    visual = [(n, p) for n, p in model.named_parameters() if ".visual." in f".{n}" or n.startswith("visual")]
    assert visual, "no vision tower parameters found"
    with_grad = [n for n, p in visual if p.grad is not None and p.grad.abs().sum() > 0]
    assert len(with_grad) >= len(visual) // 2, f"{len(with_grad)} of {len(visual)} vision tensors got gradient"


def test_likelihood_target_logps_equal_trls_own_logps(tiny_model_dir, train_ds, tmp_path):
    """``_kf_target_logps`` on the real frames = the mean of TRL's per-token log-probs for that completion, computed
    through TRL's own tokenisation (``_tokenize_prompts``) and log-prob function."""
    from kfgrpo.probes import probe_prompt

    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [accuracy_reward, format_reward],
        args=_kf(tmp_path, max_steps=1, kf_preset="kf-grpo", kf_reward="group", kf_probe_mode="likelihood"),
        train_dataset=train_ds,
    )
    rows = [train_ds[i] for i in (0, 3)]
    targets = [trainer._tokenizer("<answer>B</answer>")["input_ids"], trainer._tokenizer(" red 1, blue")["input_ids"]]
    frames = [list(r["images"]) for r in rows]
    ours = trainer._kf_target_logps(rows, frames, targets)
    for i, (row, target) in enumerate(zip(rows, targets)):
        prompt_ids, _, fields = trainer._tokenize_prompts([probe_prompt(row["prompt"], frames[i])])
        ids = torch.tensor([prompt_ids[0] + target])
        fields = {k: v for k, v in fields.items() if isinstance(v, torch.Tensor)}
        fields["num_images"] = [len(frames[i])]
        if "mm_token_type_ids" in fields:
            fields["mm_token_type_ids"] = torch.cat(
                [fields["mm_token_type_ids"], fields["mm_token_type_ids"].new_zeros(1, len(target))], dim=1
            )
        with torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(
                trainer.model, ids, torch.ones_like(ids), len(target), **fields
            )
        # fp32; ours is a padded batch of two, TRL's a batch of one: measured |Δ| 1.7e-5.
        assert ours[i].item() == pytest.approx(logps.mean().item(), abs=1e-4)


# --------------------------------------------------------------------------------------------------------------------
# Per-completion frame reliance (kf_reward: rank | shape | gate)
# --------------------------------------------------------------------------------------------------------------------


class _Pattern:
    """An accuracy reward that marks the completions of each group right or wrong by position."""

    __name__ = "accuracy_reward"

    def __init__(self, pattern):
        self.pattern = pattern

    def __call__(self, completions, **kwargs):
        return [float(self.pattern[i % len(self.pattern)]) for i in range(len(completions))]


def _stub_logps(trainer, reliance, real_logp=None):
    """Teacher forcing that returns known log-probs: every token of completion i has log-prob ``real_logp[i]`` under
    the real frames and ``real_logp[i] - reliance[i]`` under every probe's, so D_i = ``reliance[i]``. The stub maps a
    call's rows back to completions through the indices the trainer scores (``_kf_scored_indices``, padded by
    repeating the first). Records the frames of every call."""
    calls = []
    real_logp = real_logp if real_logp is not None else [-0.1] * len(reliance)

    def logps(rows, frames, targets, scorer="policy"):
        calls.append([list(f) for f in frames])
        scored = trainer._kf_scored_indices or [0]
        index = [scored[k] if k < len(scored) else scored[0] for k in range(len(targets))]
        t = max(len(x) for x in targets)
        base = torch.tensor([real_logp[i] for i in index]).view(-1, 1).expand(-1, t).clone()
        if len(calls) % (1 + len(trainer.args.kf_probes)) != 1:  # a probe's frames: less likely by D
            base = base - torch.tensor([reliance[i] for i in index]).view(-1, 1)
        mask = torch.tensor([[1.0] * len(x) + [0.0] * (t - len(x)) for x in targets])
        return base, mask

    trainer._kf_teacher_forced_logps = logps
    return calls


def _rows(train_ds, groups=(0, 1), g=4):
    return [train_ds[i] for i in groups for _ in range(g)]


RELIANCE = [0.3, 0.1, 0.2, 0.9, 0.05, 0.4, 0.2, 0.0]  # per completion, two groups of four
PATTERN = [1, 1, 1, 0]  # three right, one wrong in each group


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_reliance_orders_correct_completions_above_every_incorrect_one(tiny_model_dir, train_ds, tmp_path, scale):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Pattern(PATTERN), format_reward],
        args=_kf(tmp_path, max_steps=1, kf_reward="rank", scale_rewards=scale, kf_reliance_top_tokens=1),
        train_dataset=train_ds,
    )
    _stub_logps(trainer, RELIANCE)
    trainer.model.train()
    adv = trainer._generate_and_score_completions(_rows(train_ds))["advantages"].view(2, 4)
    d = torch.tensor(RELIANCE).view(2, 4)
    for a, r in zip(adv, d):
        right = [i for i in range(4) if PATTERN[i]]
        by_reliance = sorted(right, key=lambda i: r[i].item())
        assert [a[i].item() for i in by_reliance] == sorted(a[i].item() for i in right), (a, r)
        assert len({round(a[i].item(), 6) for i in right}) == 3  # distinct D, distinct advantages
        assert min(a[i].item() for i in right) > max(a[i].item() for i in range(4) if not PATTERN[i])


def test_reliance_column_from_known_inputs_and_its_metrics(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Pattern(PATTERN), format_reward],
        # D: the plain mean over probes, in nats (the stub's log-probs)
        args=_kf(
            tmp_path,
            max_steps=1,
            kf_reward="rank",
            kf_saliency_weight=0.0,
            kf_reliance_space="logprob",
            kf_reliance_top_tokens=1,
        ),  # fmt: skip
        train_dataset=train_ds,
    )
    real_logp = [-0.1, -0.2, -3.0, -0.1, -0.1, -0.1, -0.1, -0.1]  # completion 2 is below the likelihood floor
    calls = _stub_logps(trainer, RELIANCE, real_logp)
    trainer.model.train()
    trainer._generate_and_score_completions(_rows(train_ds))
    kf = list(trainer._logs["rewards"]["kf_contrastive_reward"])[-8:]
    # group 0: eligible 0 (D 0.3) and 1 (D 0.1) -> ranks +1/2, -1/2; 2 is below the floor, 3 is wrong -> 0
    # group 1: eligible 4, 5, 6 (D 0.05, 0.4, 0.2) -> -1/2, +1/2, 0; α = 0.3 + 0.3
    assert kf == pytest.approx([0.3, -0.3, 0.0, 0.0, -0.3, 0.3, 0.0, 0.0])
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    # only correct completions are scored (the random model's texts differ, so every group has two distinct ones)
    scored = [i for i in range(8) if PATTERN[i % 4]]
    assert sorted(trainer._kf_scored_indices) == scored
    assert metrics["kf/reliance/scored"] == pytest.approx(6 / 8)
    assert metrics["kf/reliance/mean"] == pytest.approx(sum(RELIANCE[i] for i in scored) / 6)  # D = real − probe
    assert metrics["kf/shuffle/reliance"] == pytest.approx(sum(RELIANCE[i] for i in scored) / 6)
    assert metrics["kf/real/logp"] == pytest.approx(sum(real_logp[i] for i in scored) / 6)
    assert metrics["kf/reliance/distinct_correct_groups"] == 1.0
    assert metrics["kf/reliance/eligible"] == pytest.approx(5 / 8)
    assert metrics["kf/reliance/ranked_groups"] == 1.0
    assert metrics["kf/real/accuracy"] == pytest.approx(0.75)
    assert metrics["kf/reliance/spearman_advantage"] == pytest.approx(1.0)  # advantages follow D
    # letter shares of the answers TRL logged
    from kfgrpo.rewards.accuracy import extract_answer, extract_choice
    from kfgrpo.rewards.utils import completion_text

    rows = _rows(train_ds)
    letters = [
        extract_choice(extract_answer(completion_text(c)), r.get("options"))
        for c, r in zip(list(trainer._logs["completion"])[-8:], rows)
    ]
    assert metrics["kf/answer/A"] == pytest.approx(letters.count("A") / 8)
    # the probes were scored on the perturbed frames: real frames first, then each probe's
    from kfgrpo.probes import perturb_row, probe_rng

    assert calls[0] == [list(rows[i]["images"]) for i in trainer._kf_scored_indices]
    for j, kind in enumerate(trainer.args.kf_probes):
        expected = [
            perturb_row(kind, rows[4 * (i // 4)], probe_rng(trainer.args.seed, 0, 0, i // 4, kind), 0.5)[0]
            for i in trainer._kf_scored_indices
        ]
        assert calls[1 + j] == expected
        assert calls[1 + j] != calls[0]


def test_shape_and_gate_rescale_only_positive_advantages(tiny_model_dir, train_ds, tmp_path):
    def advantages(tmp, reward):
        trainer = KFGRPOTrainer(
            tiny_model_dir,
            [_Pattern(PATTERN), format_reward],
            args=_kf(
                tmp,
                max_steps=1,
                kf_reward=reward,
                kf_saliency_weight=0.0,
                kf_reliance_space="logprob",
                kf_reliance_top_tokens=1,
            ),  # fmt: skip
            train_dataset=train_ds,
        )
        _stub_logps(trainer, RELIANCE)
        trainer.model.train()
        torch.manual_seed(0)
        return trainer._generate_and_score_completions(_rows(train_ds))["advantages"]

    shaped = advantages(tmp_path / "shape", "shape")
    gated = advantages(tmp_path / "gate", "gate")
    r = torch.tensor(PATTERN, dtype=torch.float32)
    base = (r - r.mean()) / (r.std() + 1e-4)  # GRPO's advantages: the reward column is 0 with shape / gate
    centred = torch.tensor([[0.5, -0.5, 0.0, 0.0], [-0.5, 0.5, 0.0, 0.0]])  # ranks of D among the right ones
    d = torch.tensor(RELIANCE).view(2, 4)
    for gi in range(2):
        expected = torch.where(base > 0, base * (1 + centred[gi]), base)  # κ = 1
        assert shaped.view(2, 4)[gi] == pytest.approx(expected, abs=1e-5)
        gate = 1 - torch.exp(-d[gi] / 0.5)  # τ = 0.5
        gate[3] = 1.0  # the wrong answer is not gated (its advantage is negative anyway)
        assert gated.view(2, 4)[gi] == pytest.approx(torch.where(base > 0, base * gate, base), abs=1e-5)


@pytest.mark.parametrize("reward", ["rank", "shape"])
def test_identity_probe_reproduces_grpo_exactly(tiny_model_dir, train_ds, tmp_path, reward):
    """A probe that changes nothing gives D = 0 for every scored completion: no rank, no reshaping, GRPO's updates.
    The 0/1 accuracy with spread in the groups makes completions eligible, so the scoring path runs."""
    funcs = [_hash_accuracy, format_reward, length_score]
    grpo = KFGRPOTrainer(tiny_model_dir, funcs, args=_kf(tmp_path / "a", max_steps=3, kf_preset="grpo"),
                         train_dataset=train_ds)  # fmt: skip
    grpo.train()
    ours = KFGRPOTrainer(
        tiny_model_dir,
        funcs,
        args=_kf(tmp_path / "b", max_steps=3, kf_probes=["identity"], kf_probe_bonus=[0.3], kf_reward=reward,
                 kf_likelihood_floor=-1e9, kf_reliance_noise_floor=0.0),
        train_dataset=train_ds,
    )  # fmt: skip
    ours.train()
    assert _history(ours) == _history(grpo)
    assert any(h["grad_norm"] > 0 for h in _history(grpo))
    logged = [h for h in ours.state.log_history if "kf/reliance/scored" in h]
    assert logged and any(h["kf/reliance/scored"] > 0 for h in logged)  # completions were scored ...
    assert all(h["kf/reliance/mean"] == 0.0 for h in logged if h["kf/reliance/scored"] > 0)  # ... with D = 0


def _hash_accuracy(completions, **kwargs):
    """A 0/1 accuracy for random-weight models: right when the completion's SHA-256 falls in the lower 60 %."""
    from kfgrpo.testing.multirank import text_hash_score

    return [float(s < 0.6) for s in text_hash_score(completions)]


_hash_accuracy.__name__ = "accuracy_reward"


def _first_step(model, train_ds, tmp, **kw):
    """One step of 2 groups of 8 with a 0/1 accuracy: its logs (with the advantages TRL logged) and completions."""
    trainer = KFGRPOTrainer(
        model,
        [_hash_accuracy, format_reward],
        args=_kf(tmp, max_steps=1, num_generations=8, per_device_train_batch_size=16, **kw),
        train_dataset=train_ds,
    )
    trainer.train()
    trainer.state.log_history[0]["advantages"] = list(trainer._logs["advantages"])
    return trainer.state.log_history[0], list(trainer._logs["completion"])


def test_first_step_gradient_differs_from_grpo_with_a_binary_accuracy_and_group_scaling(
    tiny_model_dir, train_ds, tmp_path
):
    """The group rule's defect: with 0/1 accuracy and `scale_rewards: group` its bonus is divided out and the gradient
    is GRPO's. The per-completion reward ranks correct completions within the group, so the gradient differs."""

    def first_step(tmp, **kw):
        return _first_step(tiny_model_dir, train_ds, tmp, **kw)

    grpo, grpo_completions = first_step(tmp_path / "grpo", kf_preset="grpo")
    # The random model's completions are all unlikely (≈ −6 nats/token) and differ little between frame sets:
    # the likelihood and noise floors that guard a trained policy are lowered for it.
    floors = dict(kf_likelihood_floor=-1e9, kf_reliance_noise_floor=0.0)
    group, group_completions = first_step(tmp_path / "group", kf_preset="kf-grpo", kf_reward="group",
                                          kf_probe_mode="likelihood")  # fmt: skip
    rank, rank_completions = first_step(tmp_path / "rank", kf_preset="kf-grpo", kf_reward="rank", **floors)
    assert grpo_completions == rank_completions == group_completions  # the same rollouts
    assert 0.0 < grpo["rewards/accuracy_reward/mean"] < 1.0
    assert group["grad_norm"] == pytest.approx(grpo["grad_norm"], rel=1e-4)  # the group rule is divided out
    assert rank["kf/reliance/ranked_groups"] > 0
    assert rank["advantages"] != pytest.approx(grpo["advantages"], abs=1e-3)  # the ranks moved the update ...
    # ... and its norm, by more than float noise on the same rollouts (~1e-7)
    assert abs(rank["grad_norm"] - grpo["grad_norm"]) > 1e-5 * grpo["grad_norm"]


def test_group_rule_metrics_from_known_inputs(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Stub(4), length_score],
        args=_kf(tmp_path, max_steps=1, kf_reward="group", kf_saliency_weight=0.0),
        train_dataset=train_ds,
    )
    trainer._kf_probe_accuracy = lambda rows, frames, probed: torch.tensor([[0.25, 0.25], [0.75, 0.75]])
    trainer.model.train()
    trainer._generate_and_score_completions(_rows(train_ds))
    m = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert m["kf/real/accuracy"] == pytest.approx(0.5)
    assert m["kf/shuffle/accuracy"] == pytest.approx(0.5)
    assert m["kf/shuffle/gap"] == pytest.approx(0.0)  # p − p̃: 0.5 − 0.25 and 0.5 − 0.75
    assert m["kf/shuffle/bonus"] == pytest.approx(0.15)  # group 0 passes (0.5 > 0.25): α/2 on average


def test_likelihood_gap_sign_in_the_group_rule(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Pattern(PATTERN), format_reward],
        args=_kf(tmp_path, max_steps=1, kf_reward="group", kf_probe_mode="likelihood"),
        train_dataset=train_ds,
    )
    _stub_logps(trainer, [0.7] * 8)  # the target is 0.7 nats/token less likely on every probe's frames
    trainer.model.train()
    trainer._generate_and_score_completions(_rows(train_ds))
    m = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert m["kf/shuffle/gap"] == pytest.approx(0.7) and m["kf/swap_salient/gap"] == pytest.approx(0.7)


@pytest.mark.parametrize("reward", ["group", "credit"])
def test_sampled_probes_generate_on_the_perturbed_frames_in_one_call(tiny_model_dir, train_ds, tmp_path, reward):
    """Every probe of every probed group in one generation call, G_p copies each; ``blind`` sends no frame."""
    from kfgrpo.probes import perturb_row, probe_rng

    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Pattern(PATTERN), length_score],
        args=_kf(
            tmp_path,
            max_steps=1,
            kf_reward=reward,
            kf_probes=["shuffle", "swap_salient", "blind"],
            kf_probe_bonus=[0.3] * 3,
        ),  # fmt: skip
        train_dataset=train_ds,
    )
    seen, tokenize = [], trainer._tokenize_prompts

    def spy(prompts):
        seen.append([[p["image"] for m in pr for p in m["content"] if p.get("type") == "image"] for pr in prompts])
        return tokenize(prompts)

    trainer._tokenize_prompts = spy
    trainer.model.train()
    rows = _rows(train_ds)
    trainer._generate_and_score_completions(rows)
    real, probes = seen  # two calls: the real rollouts, then every probe
    assert real == [list(r["images"]) for r in rows]
    g_p = trainer.args.kf_probe_generations
    expected = [
        perturb_row(kind, rows[4 * gi], probe_rng(trainer.args.seed, 0, 0, gi, kind), 0.5)[0]
        for gi in (0, 1)
        for kind in trainer.args.kf_probes
        for _ in range(g_p)
    ]
    assert probes == expected
    assert probes[2 * g_p : 3 * g_p] == [[]] * g_p  # blind
    m = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert {"kf/shuffle/accuracy", "kf/swap_salient/accuracy", "kf/blind/accuracy"} <= m.keys()


def test_reference_scorer_is_frozen_and_adds_no_kl(tiny_model_dir, train_ds, tmp_path):
    """kf_reliance_scorer: reference with beta 0: TRL's reference model is loaded (and stays as it was), the loss has
    no KL term; D scored by the reference does not move when the policy's weights do."""
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_hash_accuracy, format_reward],
        args=_kf(tmp_path, max_steps=1, kf_reliance_scorer="reference", beta=0.0),
        train_dataset=train_ds,
    )
    assert trainer.ref_model is not None and trainer.beta == 0.0 and trainer.args.beta == 0.0
    rows = _rows(train_ds, groups=(0,), g=2)
    frames = [list(r["images"]) for r in rows]
    targets = [[10, 11, 12], [13, 14]]
    before = {s: trainer._kf_teacher_forced_logps(rows, frames, targets, s)[0] for s in ("policy", "reference")}
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    after = {s: trainer._kf_teacher_forced_logps(rows, frames, targets, s)[0] for s in ("policy", "reference")}
    assert torch.equal(before["reference"], after["reference"])
    assert not torch.allclose(before["policy"], after["policy"])
    trainer.train()
    assert "kl" not in trainer.state.log_history[0]


# --------------------------------------------------------------------------------------------------------------------
# The contrastive credit gate (kf_reward: credit) and the reliance rules' defects
# --------------------------------------------------------------------------------------------------------------------


def _credit_trainer(model, train_ds, tmp_path, funcs, probe_accuracy, **kw):
    """A credit-gate trainer whose probes score ``probe_accuracy`` [groups, P]; records the groups it was asked for."""
    args = dict(max_steps=1, kf_reward="credit", kf_saliency_weight=0.0, kf_probe_bonus=[1.0, 1.0])
    trainer = KFGRPOTrainer(model, funcs, args=_kf(tmp_path, **{**args, **kw}), train_dataset=train_ds)
    asked = []

    def probes(rows, frames, probed):
        asked.append(probed.tolist())
        return torch.where(probed.view(-1, 1), torch.tensor(probe_accuracy, dtype=torch.float32), float("nan"))

    trainer._kf_probe_accuracy = probes
    trainer.model.train()
    return trainer, asked


def _grpo_advantages(tmp_path, funcs, train_ds, tiny_model_dir):
    trainer = KFGRPOTrainer(tiny_model_dir, funcs, args=_kf(tmp_path, max_steps=1, kf_preset="grpo"),
                            train_dataset=train_ds)  # fmt: skip
    trainer.model.train()
    torch.manual_seed(0)
    return trainer._generate_and_score_completions(_rows(train_ds))["advantages"]


def test_credit_gate_advantages_and_metrics_from_known_probe_accuracies(tiny_model_dir, train_ds, tmp_path):
    funcs = [_Pattern([1, 1, 0, 0]), format_reward]
    base = _grpo_advantages(tmp_path / "grpo", funcs, train_ds, tiny_model_dir).view(2, 4)
    # p = 0.5 in both groups. Group 0: shuffle 0.25 (drop 0.5), swap 0.5 (drop 0) -> g = 0.5. Group 1: both probes
    # score as well as the real frames -> g = 0: the group's right answers get no positive push.
    trainer, asked = _credit_trainer(tiny_model_dir, train_ds, tmp_path / "credit", funcs, [[0.25, 0.5], [0.5, 0.5]])
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions(_rows(train_ds))
    adv = out["advantages"].view(2, 4)
    g = torch.tensor([0.5, 0.0]).view(2, 1)
    assert adv == pytest.approx(torch.where(base > 0, base * g, base), abs=1e-6)
    assert (adv[1] <= 0).all() and (adv[1][2:] < 0).all()  # wrong answers are still pushed down
    assert asked == [[True, True]]
    assert list(trainer._logs["advantages"])[-8:] == pytest.approx(out["advantages"].tolist())  # logged as trained
    m = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert m["kf/credit/mean"] == pytest.approx(0.25)
    assert m["kf/credit/below_half"] == pytest.approx(0.5)
    assert m["kf/credit/probed_groups"] == 1.0
    assert m["kf/shuffle/accuracy"] == pytest.approx(0.375) and m["kf/swap_salient/gap"] == pytest.approx(0.0)
    assert "rewards/kf_contrastive_reward/mean" in m and m["rewards/kf_contrastive_reward/mean"] == 0.0


def test_credit_scope_group_scales_every_advantage_of_the_group(tiny_model_dir, train_ds, tmp_path):
    """kf_credit_scope: group: a group the frames did not cause (g = 0) teaches nothing, its wrong answers included."""
    funcs = [_Pattern([1, 1, 0, 0]), format_reward]
    base = _grpo_advantages(tmp_path / "grpo", funcs, train_ds, tiny_model_dir).view(2, 4)
    trainer, _ = _credit_trainer(tiny_model_dir, train_ds, tmp_path / "credit", funcs, [[0.25, 0.5], [0.5, 0.5]],
                                 kf_credit_scope="group")  # fmt: skip
    torch.manual_seed(0)
    adv = trainer._generate_and_score_completions(_rows(train_ds))["advantages"].view(2, 4)
    assert adv == pytest.approx(base * torch.tensor([0.5, 0.0]).view(2, 1), abs=1e-6)
    assert (adv[1] == 0).all() and (base[1][2:] < 0).all()


def test_credit_gate_with_an_unsurvivable_probe_is_grpo_exactly(tiny_model_dir, train_ds, tmp_path):
    funcs = [_Pattern([1, 1, 0, 0]), format_reward]
    base = _grpo_advantages(tmp_path / "grpo", funcs, train_ds, tiny_model_dir)
    trainer, _ = _credit_trainer(
        tiny_model_dir, train_ds, tmp_path / "credit", funcs, [[0.0, 0.5], [0.0, 0.7]]
    )  # p̃ = 0 for a probe of w 1
    torch.manual_seed(0)
    assert torch.equal(trainer._generate_and_score_completions(_rows(train_ds))["advantages"], base)


def test_credit_gate_probes_only_groups_it_can_act_on(tiny_model_dir, train_ds, tmp_path):
    """Group 1 has no right answer (p = 0): nothing to gate, no probe generated, its advantages GRPO's."""
    funcs = [_Pattern([1, 0, 0, 0, 0, 0, 0, 0]), length_score]
    base = _grpo_advantages(tmp_path / "grpo", funcs, train_ds, tiny_model_dir).view(2, 4)
    trainer, asked = _credit_trainer(tiny_model_dir, train_ds, tmp_path / "credit", funcs, [[1.0, 1.0], [1.0, 1.0]])
    torch.manual_seed(0)
    adv = trainer._generate_and_score_completions(_rows(train_ds))["advantages"].view(2, 4)
    assert asked == [[True, False]]
    assert torch.equal(adv[1], base[1])
    assert adv[0] == pytest.approx(torch.where(base[0] > 0, torch.zeros(4), base[0]))  # probes as good: g = 0


def test_first_step_gradient_of_the_credit_gate_differs_from_grpo(tiny_model_dir, train_ds, tmp_path):
    """Real sampled probes (the trainer's own generation path, the blind probe among them) on the same rollouts."""

    def first_step(tmp, **kw):
        return _first_step(tiny_model_dir, train_ds, tmp, **kw)

    grpo, grpo_completions = first_step(tmp_path / "grpo", kf_preset="grpo")
    credit, credit_completions = first_step(tmp_path / "credit", kf_reward="credit",
                                            kf_probes=["shuffle", "swap_salient", "blind"],
                                            kf_probe_bonus=[1.0, 1.0, 1.0])  # fmt: skip
    assert credit_completions == grpo_completions
    assert credit["kf/credit/probed_groups"] > 0 and credit["kf/credit/mean"] < 1.0
    assert abs(credit["grad_norm"] - grpo["grad_norm"]) > 1e-3 * grpo["grad_norm"]


def test_rank_cap_holds_in_the_weighted_sum_trl_normalizes(tiny_model_dir, train_ds, tmp_path):
    """reward_weights [0.2, 1] (+ 1 for the column), G = 4, 2 correct: the low-reliance correct completion stays above
    the wrong ones (before: −0.74 against −0.37)."""
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [_Pattern([1, 1, 0, 0]), format_reward],
        args=_kf(tmp_path, max_steps=1, kf_reward="rank", reward_weights=[0.2, 1.0], kf_reliance_top_tokens=1),
        train_dataset=train_ds,
    )
    _stub_logps(trainer, [0.9, 0.1, 0.0, 0.0, 0.1, 0.9, 0.0, 0.0])
    trainer.model.train()
    adv = trainer._generate_and_score_completions(_rows(train_ds))["advantages"].view(2, 4)
    formats = list(trainer._logs["rewards"]["format_reward"])[-8:]
    assert len(set(formats)) == 1  # equal other rewards, as the cap assumes
    for a in adv:
        assert a[:2].min() > a[2:].max(), a


def test_gate_keeps_the_advantages_of_wrong_answers(tiny_model_dir, train_ds, tmp_path):
    """All-wrong groups where the length reward spreads the completions: the gate changes nothing (before, every
    ineligible completion's positive advantage was zeroed)."""
    funcs = [_Pattern([0, 0, 0, 0]), length_score]
    base = _grpo_advantages(tmp_path / "grpo", funcs, train_ds, tiny_model_dir)
    trainer = KFGRPOTrainer(tiny_model_dir, funcs, args=_kf(tmp_path / "gate", max_steps=1, kf_reward="gate"),
                            train_dataset=train_ds)  # fmt: skip
    _stub_logps(trainer, [0.5] * 8)
    trainer.model.train()
    torch.manual_seed(0)
    adv = trainer._generate_and_score_completions(_rows(train_ds))["advantages"]
    assert (base > 0).any() and torch.equal(adv, base)


def test_policy_scorer_runs_without_dropout(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(tiny_model_dir, [_hash_accuracy, format_reward],
                            args=_kf(tmp_path, max_steps=1, kf_reward="gate", kf_reliance_scorer="policy",
                                     disable_dropout=False), train_dataset=train_ds)  # fmt: skip
    for module in trainer.model.modules():
        if hasattr(module, "attention_dropout"):
            module.attention_dropout = 0.5
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.5
    trainer.model.train()
    rows = _rows(train_ds, groups=(0,), g=2)
    frames = [list(r["images"]) for r in rows]
    targets = [[10, 11, 12, 13], [14, 15, 16, 17]]
    a = trainer._kf_teacher_forced_logps(rows, frames, targets, "policy")[0]
    b = trainer._kf_teacher_forced_logps(rows, frames, targets, "policy")[0]
    assert torch.equal(a, b)
    assert trainer.model.training  # train mode restored for the update


def test_two_generation_batches_in_one_step_draw_different_probes(tiny_model_dir, train_ds, tmp_path):
    """steps_per_generation < gradient_accumulation_steps: two generation batches share a global step; their probes
    differ (before, they were keyed by the global step alone)."""
    trainer = KFGRPOTrainer(tiny_model_dir, [_Pattern(PATTERN), format_reward],
                            args=_kf(tmp_path, max_steps=1, kf_reward="gate"), train_dataset=train_ds)  # fmt: skip
    calls = _stub_logps(trainer, RELIANCE)
    trainer.model.train()
    rows = _rows(train_ds)
    trainer._generate_and_score_completions(rows)
    first = calls[1]  # the shuffle probe's frames of the first batch
    del calls[:]
    trainer._generate_and_score_completions(rows)
    assert trainer.state.global_step == 0 and calls[1] != first


def test_real_probes_leave_the_update_alone_when_every_group_keeps_full_credit(tiny_model_dir, train_ds, tmp_path):
    """g ≡ 1 (kf_credit_floor 1): generating and scoring real probes must not touch what the loss trains on."""
    grpo, grpo_completions = _first_step(tiny_model_dir, train_ds, tmp_path / "grpo", kf_preset="grpo")
    credit, credit_completions = _first_step(tiny_model_dir, train_ds, tmp_path / "credit", kf_reward="credit",
                                             kf_probes=["shuffle", "swap_salient", "blind"],
                                             kf_probe_bonus=[1.0, 1.0, 1.0], kf_credit_floor=1.0)  # fmt: skip
    assert credit_completions == grpo_completions
    assert credit["kf/credit/probed_groups"] > 0
    assert credit["grad_norm"] == grpo["grad_norm"] and credit["loss"] == pytest.approx(grpo["loss"], rel=1e-6)
