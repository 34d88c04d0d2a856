"""``kfgrpo train`` that records what KF-GRPO computes across ranks, for ``tests/test_multirank.py``.

    accelerate launch ... -m kfgrpo.testing.multirank RECORD_DIR <kfgrpo train arguments>

Every rank writes ``RECORD_DIR/rank<r>.json``: the ids of the prompts of the groups it held at each generation, and
the gathered per-group tensors the bonus is computed from (real accuracy, probe statistics, saliency gap) with the
bonus itself (``kf_reward: group``), or the gathered per-completion reliance, real-frame log-likelihood, centred rank
and reward column (``rank | shape | gate``); rank 0 adds the logged ``kf/*`` metrics. ``text_hash_score`` is an accuracy for random-weight models: a
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


def main(argv: list[str]) -> None:
    import kfgrpo.trainer as trainer_module
    from kfgrpo.train import cli

    record_dir = Path(argv[0])
    record_dir.mkdir(parents=True, exist_ok=True)
    steps: list[dict] = []
    original_bonus, original_sets = trainer_module.keyframe_bonus, trainer_module.KFGRPOTrainer._kf_probe_sets

    def bonus(real_acc, scores, alphas, saliency_gap=None, **rule):
        out, per_probe = original_bonus(real_acc, scores, alphas, saliency_gap=saliency_gap, **rule)
        steps[-1].update(
            real_accuracy=real_acc.tolist(),
            probe_scores=scores.tolist(),
            saliency_gap=saliency_gap.tolist() if saliency_gap is not None else None,
            bonus=out.tolist(),
        )
        return out, per_probe

    def probe_sets(self, rows):
        steps.append(dict(step=self.state.global_step, local_ids=[r["id"] for r in rows]))
        return original_sets(self, rows)

    original_reliance = trainer_module.KFGRPOTrainer._kf_reliance

    def reliance(self, *args, **kwargs):
        original_reliance(self, *args, **kwargs)
        scores = self.kf_last_scores
        steps[-1].update(
            real_accuracy=scores["accuracy"].tolist(),
            probe_scores=scores["per_probe"].tolist(),
            real_logp=scores["real_logp"].tolist(),
            centred=scores["centred"].tolist(),
            bonus=scores["column"].tolist(),
            saliency_gap=None,
        )

    trainer_module.keyframe_bonus = bonus
    trainer_module.KFGRPOTrainer._kf_probe_sets = probe_sets
    trainer_module.KFGRPOTrainer._kf_reliance = reliance
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
    main(sys.argv[1:])
