"""Pictures of a selection: the variation curve with apexes and keyframes marked, above a contact sheet."""

from __future__ import annotations

import math
import os

import numpy as np

from .select import Selection


def config_label(config=None, name: str | None = None) -> str:
    """``"<name>"`` or ``"TADConfig defaults"``, plus the fields that differ from the defaults."""
    from dataclasses import fields

    from .config import TADConfig

    label = name or "TADConfig defaults"
    if config is None:
        return label
    default = TADConfig()
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in fields(config)
        if getattr(config, f.name) != getattr(default, f.name)
    ]
    return label + (f" ({', '.join(changed)})" if changed else "")


def plot_selection(
    selection: Selection,
    output: str | os.PathLike,
    title: str | None = None,
    columns: int = 8,
    config=None,
    config_name: str | None = None,
):
    """Writes :func:`selection_figure` as a PNG; returns ``output``."""
    import matplotlib.pyplot as plt

    fig = selection_figure(selection, title, columns, config, config_name)
    fig.savefig(output, bbox_inches="tight")
    plt.close(fig)
    return output


def selection_figure(
    selection: Selection, title: str | None = None, columns: int = 8, config=None, config_name: str | None = None
):
    """A matplotlib figure: top, normalised variation v̂ and saliency per candidate with the apexes (filled ▲: given a
    slot; hollow △: left without one) and the keyframes (red: apex, blue: coverage fill; dotted grey: distractors);
    bottom, the keyframes with their timestamps and saliency. The title names the TAD configuration (``config_name``,
    e.g. the recipe file, and the fields of ``config`` that differ from the defaults)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    c = selection.curve
    k = len(selection.frames)
    cols = min(columns, max(1, k))
    rows = math.ceil(k / cols)
    fig = plt.figure(figsize=(2.0 * cols, 2.9 + 1.7 * rows), dpi=100)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[2.5] + [1.6] * rows, hspace=0.45)
    ax = fig.add_subplot(grid[0, :])
    ax.plot(c.timestamps, c.normalized, color="0.3", lw=1.2)
    ax.set_ylabel("v̂ (robust z)")
    ax2 = ax.twinx()
    ax2.fill_between(c.timestamps, 0, c.saliency, color="tab:orange", alpha=0.25, step="mid")
    ax2.set_ylim(0, 1.05)
    ax2.set_ylabel("saliency")
    chosen = set(int(p) for p in selection.positions) if selection.positions is not None else set()
    used = np.array([a for a in c.apexes if int(a) in chosen], dtype=int)
    unused = np.array([a for a in c.apexes if int(a) not in chosen], dtype=int)
    if len(used):
        ax.scatter(c.timestamps[used], c.normalized[used], marker="^", color="k", zorder=3)
    if len(unused):
        ax.scatter(c.timestamps[unused], c.normalized[unused], marker="^", facecolors="none", edgecolors="k", zorder=3)
    for t, apex in zip(selection.timestamps, selection.is_apex):
        ax.axvline(t, color="tab:red" if apex else "tab:blue", lw=1.0, alpha=0.8)
    for t in selection.distractor_timestamps:
        ax.axvline(t, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(float(c.timestamps[-1]), 1e-3))
    n_apex = sum(selection.is_apex)
    handles = [
        (Line2D([], [], color="0.3", lw=1.2), "variation v̂"),
        (plt.Rectangle((0, 0), 1, 1, color="tab:orange", alpha=0.25), "saliency (right axis)"),
        (Line2D([], [], marker="^", color="k", ls=""), f"apex with a slot ({len(used)})"),
        (
            Line2D([], [], marker="^", markerfacecolor="none", markeredgecolor="k", ls=""),
            f"apex without a slot ({len(unused)})",
        ),
        (Line2D([], [], color="tab:red", lw=1.0), f"keyframe: apex ({n_apex})"),
        (Line2D([], [], color="tab:blue", lw=1.0), f"keyframe: coverage fill ({k - n_apex})"),
        (Line2D([], [], color="0.6", lw=0.8, ls=":"), f"distractor ({len(selection.distractor_timestamps)})"),
    ]
    ax.legend(*zip(*handles), loc="upper left", bbox_to_anchor=(1.06, 1.0), fontsize=7, frameon=False)
    head = title or "TAD keyframes"
    ax.set_title(
        f"{head}\n{selection.method}, {k} keyframes of {len(c.timestamps)} candidates; config: "
        f"{config_label(config, config_name)}",
        fontsize=9,
        wrap=True,
    )
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
    return fig
