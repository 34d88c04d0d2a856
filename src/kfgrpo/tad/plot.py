"""Pictures of a selection: the variation curve with apexes and keyframes marked, above a contact sheet."""

from __future__ import annotations

import math
import os

import numpy as np

from .select import Selection


def plot_selection(selection: Selection, output: str | os.PathLike, title: str | None = None, columns: int = 8):
    """Writes a PNG: top, normalised variation v̂ and saliency per candidate with detected apexes (▲) and selected
    keyframes (red: apex, blue: coverage fill); bottom, the keyframes with their timestamps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = selection.curve
    k = len(selection.frames)
    cols = min(columns, max(1, k))
    rows = math.ceil(k / cols)
    fig = plt.figure(figsize=(2.0 * cols, 2.6 + 1.7 * rows), dpi=100)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[2.2] + [1.6] * rows, hspace=0.45)
    ax = fig.add_subplot(grid[0, :])
    ax.plot(c.timestamps, c.normalized, color="0.3", lw=1.2, label="variation v̂")
    ax.set_ylabel("v̂ (robust z)")
    ax2 = ax.twinx()
    ax2.fill_between(c.timestamps, 0, c.saliency, color="tab:orange", alpha=0.25, step="mid", label="saliency")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("saliency")
    if len(c.apexes):
        ax.scatter(c.timestamps[c.apexes], c.normalized[c.apexes], marker="^", color="k", zorder=3, label="apex")
    for t, apex in zip(selection.timestamps, selection.is_apex):
        ax.axvline(t, color="tab:red" if apex else "tab:blue", lw=1.0, alpha=0.8)
    for t in selection.distractor_timestamps:
        ax.axvline(t, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(float(c.timestamps[-1]), 1e-3))
    ax.set_title(
        title
        or f"{selection.method}: {k} keyframes of {len(c.timestamps)} candidates "
        "(red: apex, blue: fill, dotted: distractors)",
        fontsize=9,
    )
    lines = ax.get_legend_handles_labels()
    fills = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + fills[0], lines[1] + fills[1], loc="upper right", fontsize=7)
    for i, (img, t, s, apex) in enumerate(
        zip(selection.frames, selection.timestamps, selection.saliency, selection.is_apex)
    ):
        a = fig.add_subplot(grid[1 + i // cols, i % cols])
        a.imshow(np.asarray(img))
        a.set_xticks([])
        a.set_yticks([])
        for side in a.spines.values():
            side.set_edgecolor("tab:red" if apex else "tab:blue")
            side.set_linewidth(2)
        a.set_title(f"{t:.2f}s  s={s:.2f}", fontsize=8)
    fig.savefig(output, bbox_inches="tight")
    plt.close(fig)
    return output
