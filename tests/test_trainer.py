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


@pytest.mark.parametrize("preset,mode", [("t-grpo", "sample"), ("kf-grpo", "sample"), ("kf-grpo", "likelihood")])
def test_presets_train_and_log_probe_metrics(tiny_model_dir, train_ds, tmp_path, preset, mode):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [accuracy_reward, format_reward],
        args=_kf(tmp_path, max_steps=2, kf_preset=preset, kf_probe_mode=mode),
        train_dataset=train_ds,
    )
    trainer.train()
    logs = trainer.state.log_history[0]
    assert trainer.reward_func_names[-1] == "kf_contrastive_reward"
    for probe in trainer.args.kf_probes:
        assert f"kf/{probe}/gap" in logs and f"kf/{probe}/bonus" in logs
        if mode == "sample":
            assert f"kf/{probe}/accuracy" in logs
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
        args=_kf(tmp_path, max_steps=1, kf_preset="kf-grpo", kf_saliency_weight=0.0),
        train_dataset=train_ds,
    )
    # Probes that never succeed: every group has p = 0.5 > μ·0, so both probes pay α = 0.3 each.
    trainer._kf_probe_accuracy = lambda rows, frames, n: torch.zeros(len(rows))
    rows = [train_ds[i] for i in (0, 1) for _ in range(4)]
    trainer.model.train()  # as inside trainer.train(): probes shape training rewards only
    out = trainer._generate_and_score_completions(rows)
    table = trainer._logs["rewards"]
    kf = list(table["kf_contrastive_reward"])[-8:]
    assert kf == pytest.approx([0.6, 0.6, 0.0, 0.0, 0.6, 0.6, 0.0, 0.0])
    adv = out["advantages"].view(2, 4)
    assert torch.allclose(adv.sum(dim=1), torch.zeros(2), atol=1e-4)


def test_constant_reward_group_has_zero_advantage(tiny_model_dir, train_ds, tmp_path):
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [accuracy_reward, lambda completions, **kw: [1.0] * len(completions)],
        args=_kf(tmp_path, max_steps=1, kf_preset="kf-grpo"),
        train_dataset=train_ds,
    )
    trainer._kf_probe_accuracy = lambda rows, frames, n: torch.ones(len(rows))  # probes as good as real: no bonus
    rows = [train_ds[i] for i in (0, 1) for _ in range(4)]
    trainer.model.train()
    out = trainer._generate_and_score_completions(rows)
    assert torch.allclose(out["advantages"], torch.zeros(8))


def test_works_without_tad_columns(tiny_model_dir, train_ds, tmp_path):
    tad = {"saliency", "distractor_images", "distractor_timestamps", "distractor_saliency", "is_apex", "frames_key"}
    plain_rows = datasets.Dataset.from_list([{k: v for k, v in row.items() if k not in tad} for row in train_ds])
    trainer = KFGRPOTrainer(
        tiny_model_dir,
        [accuracy_reward],
        args=_kf(
            tmp_path,
            max_steps=1,
            kf_preset="kf-grpo",
            kf_probes=["shuffle", "swap_salient", "drop_salient", "drop_random", "reverse"],
            kf_probe_bonus=[0.1] * 5,
        ),
        train_dataset=plain_rows,
    )
    trainer.train()
    assert "kf/swap_salient/gap" in trainer.state.log_history[0]


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
        args=_kf(tmp_path, max_steps=1, kf_preset="kf-grpo", kf_probe_mode="likelihood"),
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
