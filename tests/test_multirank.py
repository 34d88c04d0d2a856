"""KF-GRPO on 2 ranks (CPU, gloo) through ``accelerate launch`` with the project's own DDP and ZeRO-3 configs equals one
process that sees the same prompts: the same groups, per-group real accuracy, probe statistics (sampled accuracy or
likelihood gap), saliency gap and bonus, and the same logged ``kf/*`` metrics, at each of 2 steps.

Generation uses ``top_k: 1``, so a completion does not depend on the sampling RNG of the rank that makes it (each
rank's generator draws differently; with sampling the comparison could only be statistical). Everything else is
deterministic on CPU; the runs agree to 1e-6, not bit for bit: a rank's forwards run on half the batch, and float32
matmuls of another batch size may differ in the last bits. With ``top_k: 1`` a group's G completions are
identical, so advantages are 0 and the weights do not move: the comparison covers what KF-GRPO adds (probe building,
probe generation or forward under DDP / ZeRO-3 partitioning, gathering, the per-group bonus, the metrics), not the
optimizer step, which is TRL's and DeepSpeed's. For the per-completion reliance (``gate``) the same holds completion
by completion: reliance per probe and real-frame log-likelihood of every correct completion (NaN for the others),
centred rank and reward column; ranks with different numbers of completions to score run the same number of forwards
(ZeRO-3). The ranking itself is tested in-process (tests/test_trainer.py). The accuracy is ``kfgrpo.testing.multirank.text_hash_score``, which
spreads a random-weight model's answers over [0, 1] so that every gate of the bonus is exercised.
"""

import json
import os
import subprocess
import sys
from itertools import chain
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = 2


# The recipes' static rendezvous on a port accelerate asks the OS for (`--main_process_port 0`). Not the c10d
# rendezvous: on one machine it ignores that port and hosts its store on localhost:29400, so a second run on the same
# machine (another test suite, another user's job) found the port taken and joined the first run's store as a client,
# failing both ("The connection to the C10d store has failed").
RENDEZVOUS = ["--main_process_port", "0", "--rdzv_backend", "static"]


def _args(model, cache, out, mode, per_device):
    # mode: `sample` / `likelihood` probes of the group rule, or `gate` (per-completion reliance, scored for every
    # correct completion; the random model's completions are unlikely, so its likelihood floor is lowered); a
    # `-video` suffix gives the keyframes as one video (visual_input: video: per-sample videos split with the rollouts)
    video = mode.endswith("-video")
    mode = mode.removesuffix("-video")
    kf = {
        "gate": ["--kf_reward", "gate", "--kf_likelihood_floor=-1e9"],
        # the credit gate with the blind probe: every probe of a rank's groups sampled in one collective call
        # (a position reward spreads each group of identical completions, so the gate has advantages to act on)
        "credit": ["--kf_reward", "credit", "--kf_probes", "shuffle", "swap_salient", "blind",
                   "--kf_probe_bonus", "1", "1", "1", "--kf_probe_generations", "2"],
    }.get(mode, ["--kf_reward", "group", "--kf_probe_mode", mode, "--kf_probe_generations", "2"])  # fmt: skip
    return kf + (["--visual_input", "video"] if video else []) + [
        "--config", str(ROOT / "recipes" / "tiny-cpu" / "kfgrpo.yaml"),
        "--model_name_or_path", model, "--dataset_name", str(cache), "--output_dir", str(out),
        "--max_steps", str(STEPS), "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none",
        "--reward_funcs", "kfgrpo.testing.multirank.text_hash_score", "format",
        *(["kfgrpo.testing.multirank.position_score"] if mode == "credit" else []),
        "--kf_accuracy_reward", "text_hash_score", "--top_k", "1",
        "--max_completion_length", "16", "--num_generations", "4",
        "--per_device_train_batch_size", str(per_device),
    ]  # fmt: skip


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_PORT")}
    return {**env, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def _run(cmd, record):
    out = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    records = [json.loads(p.read_text()) for p in sorted(record.glob("rank*.json"))]
    assert records, f"no rank recorded in {record}:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    return records


def _one_process(model, cache, tmp, mode):
    record = tmp / f"single-{mode}"
    cmd = [sys.executable, "-m", "kfgrpo.testing.multirank", str(record)]
    return _run(cmd + _args(model, cache, tmp / "out", mode, per_device=16), record)


def _two_ranks(model, cache, tmp, mode, backend):
    record = tmp / f"{backend}-{mode}"
    config = ROOT / "recipes" / "accelerate" / f"{backend}.yaml"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "2",
           "--mixed_precision", "no", *RENDEZVOUS, "-m", "kfgrpo.testing.multirank",
           str(record)]  # fmt: skip
    # CPU overrides of the GPU configs: DDP runs as accelerate's MULTI_CPU (gloo); DeepSpeed needs use_cpu false and
    # an explicit gloo backend (accelerate finds no backend of its own without an accelerator).
    cpu = ["--use_cpu", "true"] if backend == "ddp" else ["--use_cpu", "false", "--ddp_backend", "gloo"]
    return _run(cmd + _args(model, cache, tmp / "out", mode, per_device=8) + cpu, record)


def _flat(x):
    return list(chain.from_iterable(x)) if x and isinstance(x[0], list) else list(x)


def _assert_same(single, ranks, distributed_type):
    (ref,) = single
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["distributed_type"] == distributed_type
    assert len(ref["steps"]) == len(ranks[0]["steps"]) == STEPS
    for step, (a, b0, b1) in enumerate(zip(ref["steps"], ranks[0]["steps"], ranks[1]["steps"])):
        # the same prompts, each group on one rank, in the same global order
        assert a["local_ids"] == b0["local_ids"] + b1["local_ids"], step
        assert len(b0["local_ids"]) == len(b1["local_ids"]) == 2
        for key in ("real_accuracy", "probe_scores", "saliency_gap", "bonus", "real_logp", "centred", "factor"):
            if a.get(key) is None:  # not recorded by this kind of reward
                assert b0.get(key) is None, (step, key)
                continue
            # every rank computes the bonus on the same gathered tensors (NaN where a completion was not scored)
            assert json.dumps(b0[key]) == json.dumps(b1[key]), (step, key)
            assert _flat(a[key]) == pytest.approx(_flat(b0[key]), abs=1e-6, nan_ok=True), (step, key)
    assert len(ref["metrics"]) == len(ranks[0]["metrics"]) == STEPS
    for m_ref, m in zip(ref["metrics"], ranks[0]["metrics"]):
        assert m.keys() == m_ref.keys()
        assert m == pytest.approx(m_ref, abs=1e-6, nan_ok=True)
    # the comparison is not vacuous: some groups earn a bonus, some do not; per-completion reliance varies
    bonus = [b for s in ref["steps"] for b in _flat(s["bonus"])]
    if ref["steps"][0].get("real_logp") is not None:
        reliance = [x for s in ref["steps"] for x in _flat(s["probe_scores"]) if x == x]
        assert len(set(reliance)) > 2 and len(bonus) == 2 * 16  # some completions were scored, with distinct D
    elif ref["steps"][0].get("factor") is not None:
        factor = [f for s in ref["steps"] for f in s["factor"]]
        assert len(set(factor)) > 2 and min(factor) < 1.0  # groups got different credits, some below 1
    else:
        assert any(b > 0 for b in bonus)


@pytest.fixture(scope="module")
def runs(frame_cache, tmp_path_factory):
    from kfgrpo.testing import build_tiny_model

    # `small` (the demo's size): its random answers change with the frames, unlike the `tiny` test model's
    model = str(build_tiny_model(tmp_path_factory.mktemp("small-model"), seed=0, size="small"))
    return dict(model=model, cache=frame_cache, tmp=tmp_path_factory.mktemp("multirank"), single={})


def _single(runs, mode):
    if mode not in runs["single"]:
        runs["single"][mode] = _one_process(runs["model"], runs["cache"], runs["tmp"], mode)
    return runs["single"][mode]


@pytest.mark.parametrize("mode", ["sample", "likelihood", "gate", "credit", "gate-video", "credit-video"])
def test_ddp_two_ranks_equal_one_process(runs, mode):
    ranks = _two_ranks(runs["model"], runs["cache"], runs["tmp"], mode, "ddp")
    _assert_same(_single(runs, mode), ranks, "DistributedType.MULTI_CPU")


@pytest.mark.parametrize("mode", ["sample", "likelihood", "gate", "credit", "gate-video", "credit-video"])
def test_zero3_two_ranks_equal_one_process(runs, mode):
    pytest.importorskip("deepspeed")
    ranks = _two_ranks(runs["model"], runs["cache"], runs["tmp"], mode, "zero3")
    _assert_same(_single(runs, mode), ranks, "DistributedType.DEEPSPEED")


def test_groups_that_would_straddle_ranks_are_a_config_error(runs):
    """2 ranks × 6 completions = 12 = 3 groups of 4: TRL accepts the global batch, but a group would straddle the two
    ranks, and each rank builds the probes of the groups it holds. KF-GRPO stops with a clear error on every rank."""
    config = ROOT / "recipes" / "accelerate" / "ddp.yaml"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "2",
           "--mixed_precision", "no", *RENDEZVOUS, "-m", "kfgrpo.cli", "train"]  # fmt: skip
    args = _args(runs["model"], runs["cache"], runs["tmp"] / "straddle", "sample", per_device=6) + [
        "--use_cpu",
        "true",
    ]
    out = subprocess.run(cmd + args, env=_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode != 0
    assert "KF-GRPO probes need whole groups on every rank" in out.stderr
    assert "must be a multiple of num_generations (4)" in out.stderr
