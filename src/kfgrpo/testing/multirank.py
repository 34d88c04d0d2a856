"""``kfgrpo train`` that records what KF-GRPO computes across ranks, for ``tests/test_multirank.py``.

    accelerate launch ... -m kfgrpo.testing.multirank RECORD_DIR <kfgrpo train arguments>

Every rank writes ``RECORD_DIR/rank<r>.json``: the ids of the prompts of the groups it held at each generation, and
the gathered tensors the ``kf_reward`` rule is computed from (real accuracy; probe statistics: sampled accuracy or
likelihood gap per group, or per-completion reliance with its real-frame log-likelihood and centred rank; saliency
gap) with the rule's reward column and advantage factor; rank 0 adds the logged ``kf/*`` metrics. ``text_hash_score`` is an accuracy for random-weight models: a
deterministic function of the completion's text spread over [0, 1], so the bonus, its gates and the probe accuracies
all take non-trivial values that depend on what the model generated from the frames.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def text_hash_score(completions, **kwargs) -> list[float]:
    """A score in [0, 1) that only the completion's text decides (its SHA-256, read as a fraction)."""
    import hashlib

    from ..rewards.utils import completion_text

    return [int(hashlib.sha256(completion_text(c).encode()).hexdigest()[:8], 16) / 16**8 for c in completions]


def position_score(completions, **kwargs) -> list[float]:
    """i mod 4 / 4 for the i-th completion of a call: a reward with spread inside every group of 4 even when the G
    completions are one text (``top_k: 1``), the same on one process as on ranks that hold whole groups."""
    return [(i % 4) / 4 for i in range(len(completions))]


def main(argv: list[str]) -> None:
    import kfgrpo.trainer as trainer_module
    from kfgrpo.train import cli

    record_dir = Path(argv[0])
    record_dir.mkdir(parents=True, exist_ok=True)
    steps: list[dict] = []
    original_sets = trainer_module.KFGRPOTrainer._kf_probe_sets
    original_rewards = trainer_module.KFGRPOTrainer._calculate_rewards

    def probe_sets(self, rows):
        steps.append(dict(step=self.state.global_step, local_ids=[r["id"] for r in rows]))
        return original_sets(self, rows)

    def calculate_rewards(self, *args, **kwargs):
        rewards = original_rewards(self, *args, **kwargs)
        batch, pending = self.kf_last_batch, self._kf_pending
        if batch is None or not steps or "real_accuracy" in steps[-1]:
            return rewards
        listed = lambda t: None if t is None else t.tolist()  # noqa: E731
        scores = next(t for t in (batch.probe_accuracy, batch.probe_logp_gap, batch.per_probe) if t is not None)
        steps[-1].update(
            real_accuracy=batch.accuracy.tolist(),
            probe_scores=scores.tolist(),
            saliency_gap=batch.saliency_gap.tolist(),
            real_logp=listed(batch.real_logp),
            centred=listed(batch.derived.get("centred")),
            bonus=rewards[:, self._kf_index].tolist(),
            factor=listed(pending["factor"]),
        )
        return rewards

    trainer_module.KFGRPOTrainer._kf_probe_sets = probe_sets
    trainer_module.KFGRPOTrainer._calculate_rewards = calculate_rewards
    trainer = cli(argv[1:])
    rank = trainer.accelerator.process_index
    record = dict(rank=rank, world_size=trainer.accelerator.num_processes, steps=steps)
    if rank == 0:
        record["metrics"] = [
            {k: v for k, v in entry.items() if k.startswith("kf/") and "probe_time" not in k}
            for entry in trainer.state.log_history
            if any(k.startswith("kf/") for k in entry)
        ]
        record["distributed_type"] = str(trainer.accelerator.distributed_type)
    (record_dir / f"rank{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    from kfgrpo.cli import end_distributed

    main(sys.argv[1:])
    end_distributed(0)
