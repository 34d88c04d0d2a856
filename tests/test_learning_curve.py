import pytest

from kfgrpo.learning_curve import plot_learning_curve, running_mean


def test_learning_curve_png(tmp_path):
    history = [
        {
            "step": s,
            "reward": s / 10,
            "rewards/accuracy_reward/mean": s / 20,
            "kf/real/accuracy": 0.5,
            "kf/shuffle/accuracy": 0.2,
        }
        for s in range(1, 11)
    ] + [{"step": 10, "train_runtime": 1.0}]
    out = plot_learning_curve(history, tmp_path / "lc.png", title="t")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000


def test_learning_curve_needs_rewards(tmp_path):
    with pytest.raises(ValueError, match="reward"):
        plot_learning_curve([{"step": 1, "loss": 1.0}], tmp_path / "lc.png")


def test_running_mean():
    assert running_mean([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
