"""``learning_curve.png``: reward and accuracy per optimizer step, from a trainer's ``log_history``.

``kfgrpo train`` writes it into ``output_dir`` at the end of every run. Panels: the total reward and the accuracy
reward of the sampled groups (``rewards/accuracy_reward/mean``), and, when probes ran, the accuracy of the real
keyframes next to each probe (``kf/<probe>/accuracy``, the group rule's sampled probes), or the frame reliance of the
scored completions per probe (``kf/<probe>/reliance``, the per-completion reward). Faint lines are the raw per-step
values, solid ones a running mean over ``smooth`` steps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _series(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
    return [p[0] for p in points], [float(p[1]) for p in points]


def running_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value and up to ``window - 1`` before it (a trailing window that starts short)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _label(ax, ylabel: str, title: str):
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")


def load_log_history(path: str | os.PathLike) -> list[dict]:
    """``log_history`` of a ``trainer_state.json`` (or of the folder that holds one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "trainer_state.json"
    return json.loads(path.read_text())["log_history"]


def plot_learning_curve(history: list[dict], output: str | os.PathLike, title: str | None = None, smooth: int = 10):
    """Writes the PNG; returns its path. Raises ``ValueError`` when ``history`` logged no reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any("reward" in h for h in history):
        raise ValueError("log history has no `reward` entries (was logging_steps > max_steps?)")

    def probes_with(suffix):
        found = {k.split("/")[1] for h in history for k in h if k.startswith("kf/") and k.endswith(suffix)}
        return sorted(found - {"real", "reliance"})

    probes, reliance = probes_with("/accuracy"), probes_with("/reliance")
    panels = 2 if probes or reliance else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    for key, label, color in (
        ("reward", "reward (total)", "tab:blue"),
        ("rewards/accuracy_reward/mean", "accuracy reward", "tab:green"),
    ):
        x, y = _series(history, key)
        if x:
            ax.plot(x, y, color=color, alpha=0.25, lw=1)
            ax.plot(x, running_mean(y, smooth), color=color, lw=2, label=label)
    _label(ax, "mean over the step's completions", "rollouts on the real keyframes")
    if probes:
        ax = axes[0][1]
        for key, color in [("real", "black")] + list(
            zip(probes, ("tab:red", "tab:orange", "tab:purple", "tab:brown"))
        ):
            x, y = _series(history, f"kf/{key}/accuracy")
            if x:
                ax.plot(x, running_mean(y, smooth), color=color, lw=2, label=f"{key} frames")
        _label(ax, "accuracy of probe completions", "real keyframes vs perturbed (KF-GRPO probes)")
    elif reliance:
        ax = axes[0][1]
        for key, color in zip(reliance, ("tab:red", "tab:orange", "tab:purple", "tab:brown")):
            x, y = _series(history, f"kf/{key}/reliance")
            if x:
                # logged only at the steps where a group could be ranked: a marker shows even a single one
                ax.plot(x, running_mean(y, smooth), color=color, lw=2, marker="o", ms=4, label=f"{key}")
        _label(ax, "frame reliance D of the scored completions", "how much less likely on perturbed frames")
    if panels == 2:
        axes[0][1].set_xlim(axes[0][0].get_xlim())  # the same steps on both panels
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110)
    plt.close(fig)
    return output
